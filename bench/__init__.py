"""jobwarden's performance bench: run it as `scripts/bench [--quick] [--database URL] [--json PATH]`.

It starts the real `jobwarden serve` over a fresh database and reports each operation as a ratio to
baselines measured in the same run (an empty gRPC round trip, a raw database commit, a streamed
message), because absolute numbers mostly describe the machine. Unit tests never time anything;
performance goals live here, and CI does not run it.
"""
