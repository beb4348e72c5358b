"""What a server tells its operators: Prometheus metrics (metrics.py) and log records (logs.py).

A layer beside store and events: it knows the domain's records and nothing of the layers above, which
record into it (the write entry, the watch and work services, the RPC interceptor)."""
