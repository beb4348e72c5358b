"""``jobwarden admin ...``: an admin's direct changes to jobs (tokens with the admin role)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jobwarden.cli import _jobs, _render
from jobwarden.client import Client

EXIT_OK = 0


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Adds ``admin`` and its subcommands; ``common`` carries the connection options."""
    admin = subparsers.add_parser("admin", help="admin-only changes to jobs (audited)")
    sub = admin.add_subparsers(dest="admin_command", metavar="COMMAND", required=True)
    text = (
        "move a job to STATUS directly: along its lifecycle table, or with --force to a status the "
        "table has no edge to; recorded with your identity and --reason"
    )
    p = sub.add_parser("set-status", parents=[common], help=text, description=text)
    p.set_defaults(func=_set_status)
    p.add_argument("job_id", metavar="ID", help="the job's id")
    p.add_argument("status", metavar="STATUS", type=_jobs.status, help="the status to set, in any case")
    p.add_argument("--reason", required=True, metavar="R", help="why, in words (required; kept in history)")
    p.add_argument("--force", action="store_true", help="allow a change the job's lifecycle table lacks")
    p.add_argument("--request-id", metavar="ID", help="idempotency key")
    p.add_argument(
        "--validate-only",
        action="store_true",
        help="only check: answer as the call would (or fail as it would), but change nothing",
    )
    p.add_argument("--json", action="store_true", help="print the job as JSON")


async def _set_status(client: Client, args: argparse.Namespace) -> int:
    job = await client.set_job_status(
        args.job_id,
        args.status,
        args.reason,
        force=args.force,
        request_id=args.request_id,
        validate_only=args.validate_only,
    )
    if args.json:
        line = _render.to_json(job)
    elif args.validate_only:
        line = f"valid: job {job.id} would be {job.status} (nothing changed)"
    else:
        line = f"job {job.id} {job.status}"
    print(line, file=sys.stdout, flush=True)
    return EXIT_OK
