"""`scripts/bench --dashboard`: the web dashboard's API with a large store, on a real server.

The observability issue's goal: the dashboard is fast with 100,000 jobs in the store. The real
`jobwarden serve` runs with its HTTP port; seed.py fills the store through the gRPC API, requests.py
times the requests a browser makes on the dashboard's pages against the cheapest one on the same port,
and run.py prints them as a table (and JSON).
"""
