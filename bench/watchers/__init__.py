"""`scripts/bench --watchers`: the two watcher goals of the performance issue, on a real server.

- latency: a progress report reaching a job's watcher, under a steady load of jobs (latency.py);
- fan-out: many concurrent WatchJob streams on one server, its resident memory, and a change
  reaching the watchers of a sample of jobs (fanout.py, with holder processes in hold.py).
"""
