"""`scripts/bench --peers`: jobwarden beside other job queues and raw-database floors, one workload.

N no-op jobs are queued up front, then drained by 2 worker processes of 16 concurrency each, every
system with its own worker runtime, its own venv and its own throw-away database. The orchestrator
(`orchestrate`) runs in jobwarden's .venv; each run is a `drive` subprocess inside the system's venv,
so the modules a driver imports (`drive`, `cpu`, `spawn` and the system's adapter) use only the
standard library and that system's own packages.
"""
