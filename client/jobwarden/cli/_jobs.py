"""``jobwarden jobs ...``: create, inspect, cancel and watch jobs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from jobwarden.cli import _render, _watch
from jobwarden.client import Client, Job, JobStatus, RetryPolicy

EXIT_OK = 0

Command = Callable[[Client, argparse.Namespace], Awaitable[int]]

STATUS_NAMES = ", ".join(str(s) for s in JobStatus if s != JobStatus.UNSPECIFIED)


class UsageError(ValueError):
    """A usage error found after parsing (a --params file that cannot be read): one line, exit 2."""


# --- argument types (errors here are usage errors: exit 2) ---------------------------------------


def key_value(text: str) -> tuple[str, str]:
    """Parses ``key=value``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def param(text: str) -> tuple[str, Any]:
    """Parses ``key=value`` where value is JSON if it parses (``n=3``, ``ok=true``) and text otherwise."""
    key, value = key_value(text)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def load_params(spec: str) -> dict[str, Any]:
    """The job parameters that ``--params`` names: inline JSON, ``@FILE`` or ``-`` (standard input).

    Raises:
        UsageError: The file cannot be read, or the text is not a JSON object.
    """
    if spec == "-":
        where, text = " on standard input", sys.stdin.read()
    elif spec.startswith("@"):
        path = spec[1:]
        if not path:
            raise UsageError("--params: expected a file name after '@'")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise UsageError(f"--params: cannot read {path} ({err.strerror or err})") from err
        except UnicodeDecodeError as err:
            raise UsageError(f"--params: {path} is not UTF-8 text ({err.reason})") from err
        where = f" in {path}"
    else:
        where, text = "", spec
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"--params: invalid JSON{where}: {err}") from err
    if not isinstance(value, dict):
        raise UsageError(f"--params: expected a JSON object{where}, got {type(value).__name__}")
    return value


def status(text: str) -> JobStatus:
    """Parses a status name in any case."""
    try:
        return JobStatus(text.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown status {text!r} (one of {STATUS_NAMES})") from None


def when(text: str) -> datetime:
    """Parses an ISO 8601 time; without a zone it is local time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, got {text!r}") from err
    return value if value.tzinfo else value.astimezone()


def positive(text: str) -> int:
    """Parses an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# --- the parser ----------------------------------------------------------------------------------


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Adds ``jobs`` and its subcommands; ``common`` carries the connection options."""
    jobs = subparsers.add_parser("jobs", help="create, inspect, cancel and watch jobs")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="COMMAND", required=True)

    def command(name: str, fn: Command, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        p.set_defaults(func=fn)
        return p

    p = command("create", _create, "create a job and print its id")
    p.add_argument("job_type", metavar="TYPE", help="the kind of work; workers claim jobs by type")
    p.add_argument(
        "--params",
        dest="params_json",
        metavar="JSON|@FILE|-",
        help="parameters as a JSON object: inline, @FILE to read a file, or - to read standard input",
    )
    # The option's earlier name, still accepted.
    p.add_argument("--params-json", dest="params_json", help=argparse.SUPPRESS)
    p.add_argument(
        "--param",
        dest="params",
        action="append",
        type=param,
        default=[],
        metavar="KEY=VALUE",
        help="a parameter, on top of --params; VALUE is parsed as JSON when it can be (n=3, ok=true), "
        "else taken as text; repeatable",
    )
    p.add_argument("--priority", type=int, default=0, help="higher runs first (-1000..1000, default 0)")
    p.add_argument(
        "--label",
        dest="labels",
        action="append",
        type=key_value,
        default=[],
        metavar="K=V",
        help="a label, usable as a 'jobs list' filter; repeatable",
    )
    p.add_argument("--max-attempts", type=int, default=0, metavar="N", help="0: the server's default")
    p.add_argument("--retry-initial", type=float, metavar="S", help="seconds before the first retry")
    p.add_argument("--retry-max", type=float, metavar="S", help="longest wait between attempts, seconds")
    p.add_argument("--retry-multiplier", type=float, default=0.0, metavar="X", help="growth per retry")
    p.add_argument("--run-after", type=when, metavar="TIME", help="not before this ISO 8601 time")
    p.add_argument("--deadline", type=when, metavar="TIME", help="expire if not done by this time")
    p.add_argument(
        "--queue-timeout",
        type=float,
        metavar="S",
        help="expire if no worker starts it within S seconds (default: the server's for the type)",
    )
    p.add_argument(
        "--callback",
        "--callback-url",
        dest="callback_url",
        default="",
        metavar="URL",
        help="POST a signed JSON payload (Standard Webhooks) to URL when the job ends",
    )
    p.add_argument(
        "--callback-status",
        dest="callback_statuses",
        action="append",
        type=status,
        default=[],
        metavar="STATUS",
        help="only this terminal status fires the callback (repeatable; default: every terminal status)",
    )
    p.add_argument("--hold", action="store_true", help="create in CREATED; start with 'jobs release'")
    p.add_argument("--request-id", metavar="ID", help="idempotency key: a retry returns the first job")
    _validate_only(p, "create nothing")
    p.add_argument("--json", action="store_true", help="print the job as JSON")

    p = command("get", _get, "show a job")
    p.add_argument("job_id", metavar="ID", help="the job's id")
    p.add_argument("--json", action="store_true", help="print the job as JSON")

    p = command("list", _list, "list jobs, newest first")
    p.add_argument(
        "--status",
        dest="statuses",
        action="append",
        type=status,
        default=[],
        metavar="S",
        help=f"only jobs in this status, in any case; repeatable. One of: {STATUS_NAMES}",
    )
    p.add_argument(
        "--type", dest="job_types", action="append", default=[], metavar="T", help="only jobs of this type"
    )
    p.add_argument(
        "--label",
        dest="labels",
        action="append",
        type=key_value,
        default=[],
        metavar="K=V",
        help="only jobs with this label; repeatable (all must match)",
    )
    p.add_argument(
        "--stalled", action="store_true", help="only jobs flagged stalled (see [stall] in the config)"
    )
    p.add_argument("--limit", type=positive, default=50, metavar="N", help="at most N jobs (default 50)")
    p.add_argument("--oldest-first", action="store_true", help="oldest first instead of newest first")
    # Newest first used to be asked for with --desc; it is the default now, and the flag still accepted.
    p.add_argument("--desc", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--page-token",
        default="",
        metavar="TOKEN",
        help="continue where an earlier list stopped (it prints the token), with the same filters",
    )
    p.add_argument("--json", action="store_true", help="print the jobs as a JSON list")

    p = command("cancel", _cancel, "cancel a job (a running one stops at its next progress report)")
    p.add_argument("job_id", metavar="ID", help="the job's id")
    p.add_argument("--reason", default="", metavar="R", help="why, in words (kept in the job's history)")
    p.add_argument("--etag", default="", help="refuse if the job changed since this etag was read")
    _validate_only(p, "change nothing")
    p.add_argument("--json", action="store_true", help="print the job as JSON")

    p = command("retry", _retry, "admin: run an ended job again as a new job, and print its id")
    p.add_argument("job_id", metavar="ID", help="the ended job's id")
    p.add_argument("--request-id", metavar="ID", help="idempotency key: a retry returns the first new job")
    _validate_only(p, "create nothing")
    p.add_argument("--json", action="store_true", help="print the new job as JSON")

    p = command("release", _release, "start a held (CREATED) job")
    p.add_argument("job_id", metavar="ID", help="the job's id")
    p.add_argument("--json", action="store_true", help="print the job as JSON")

    p = command(
        "delete",
        _delete,
        "delete finished jobs for good, with their events and assets (a job that has not ended is "
        "refused: cancel it first)",
    )
    p.add_argument("job_ids", metavar="ID", nargs="+", help="the job's id; several may be given")

    p = command(
        "watch",
        _watch.watch,
        "follow a job until it ends (a live progress bar on a terminal, one line per event when "
        "piped); exit 0 if it COMPLETED, 4 if it ended otherwise",
    )
    p.add_argument("job_id", metavar="ID", help="the job's id")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="only events after this sequence")

    p = command("events", _events, "print a job's recorded events")
    p.add_argument("job_id", metavar="ID", help="the job's id")
    p.add_argument("--json", action="store_true", help="print the events as a JSON list")

    p = command("messages", _messages, "print the messages workers attached to a job, oldest first")
    p.add_argument("job_id", metavar="ID", help="the job's id")
    p.add_argument("--json", action="store_true", help="print the messages as a JSON list")

    p = command("assets", _assets, "list a job's assets")
    p.add_argument("job_id", metavar="ID", help="the job's id")
    p.add_argument("--json", action="store_true", help="print the assets as a JSON list")


def _validate_only(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--validate-only",
        action="store_true",
        help=f"only check: answer as the call would (or fail as it would), but {what}",
    )


# --- the commands --------------------------------------------------------------------------------


def _print(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


async def _create(client: Client, args: argparse.Namespace) -> int:
    parameters = load_params(args.params_json) if args.params_json is not None else {}
    parameters.update(args.params)
    job = await client.create_job(
        args.job_type,
        parameters,
        priority=args.priority,
        labels=dict(args.labels),
        max_attempts=args.max_attempts,
        retry_policy=_retry_policy(args),
        run_after=args.run_after,
        deadline=args.deadline,
        callback_url=args.callback_url,
        callback_statuses=args.callback_statuses,
        hold=args.hold,
        request_id=args.request_id,
        queue_timeout=args.queue_timeout,
        validate_only=args.validate_only,
    )
    if args.json:
        _print(_render.to_json(job))
    elif args.validate_only:
        _print(f"valid: the job would be created {job.status} (nothing was created)")
    else:
        _print(job.id)
    return EXIT_OK


async def _retry(client: Client, args: argparse.Namespace) -> int:
    job = await client.retry_job(args.job_id, request_id=args.request_id, validate_only=args.validate_only)
    if args.json:
        _print(_render.to_json(job))
    elif args.validate_only:
        _print(f"valid: job {args.job_id} would run again as a new {job.status} job (nothing was created)")
    else:
        _print(job.id)
    return EXIT_OK


def _retry_policy(args: argparse.Namespace) -> RetryPolicy | None:
    """The job's own retry timing from the --retry-* flags; None (the server's) when none is given."""
    if args.retry_initial is None and args.retry_max is None and not args.retry_multiplier:
        return None
    return RetryPolicy(
        initial_backoff=args.retry_initial, max_backoff=args.retry_max, multiplier=args.retry_multiplier
    )


async def _get(client: Client, args: argparse.Namespace) -> int:
    job = await client.get_job(args.job_id)
    _print(_render.to_json(job) if args.json else _render.job_details(job))
    return EXIT_OK


async def _list(client: Client, args: argparse.Namespace) -> int:
    jobs: list[Job] = []
    token = args.page_token
    while len(jobs) < args.limit:
        # Pages end exactly at the limit, so the token left over resumes right after the last job shown.
        page, token = await client.list_jobs(
            statuses=args.statuses,
            job_types=args.job_types,
            labels=dict(args.labels),
            page_size=min(args.limit - len(jobs), 500),
            page_token=token,
            descending=not args.oldest_first,
            stalled=args.stalled,
        )
        jobs.extend(page)
        if not token:
            break
    out = _render.console(sys.stdout)
    if args.json:
        _print(_render.to_json(jobs))
    else:
        _render.show(out, _render.jobs_table(jobs))
    if token:
        # On stderr: stdout stays the table (or JSON) alone.
        print(
            f"… more jobs; use --limit N for more at once, or --page-token {token} for the next ones",
            file=sys.stderr,
        )
    return EXIT_OK


async def _cancel(client: Client, args: argparse.Namespace) -> int:
    job = await client.cancel_job(args.job_id, args.reason, args.etag, validate_only=args.validate_only)
    if args.json:
        _print(_render.to_json(job))
    elif args.validate_only:
        done = "cancel requested" if job.cancel_requested and not job.is_terminal else str(job.status)
        _print(f"valid: job {job.id} would be {done} (nothing changed)")
    elif job.cancel_requested and not job.is_terminal:
        _print(f"job {job.id} {job.status}: cancel requested; it stops at the worker's next report")
    else:
        _print(f"job {job.id} {job.status}")
    return EXIT_OK


async def _release(client: Client, args: argparse.Namespace) -> int:
    job = await client.release_job(args.job_id)
    _print(_render.to_json(job) if args.json else f"job {job.id} {job.status}")
    return EXIT_OK


async def _delete(client: Client, args: argparse.Namespace) -> int:
    # One by one, in order: the first refusal stops the command (exit 1) and names its job, and the
    # lines printed before it say which were deleted.
    for job_id in args.job_ids:
        await client.delete_job(job_id)
        _print(f"job {job_id} deleted")
    return EXIT_OK


async def _events(client: Client, args: argparse.Namespace) -> int:
    events = [e async for e in client.iter_job_events(args.job_id)]
    if args.json:
        _print(_render.to_json(events))
    else:
        for event in events:
            _print(_render.event_line(event))
    return EXIT_OK


async def _messages(client: Client, args: argparse.Namespace) -> int:
    messages = [m async for m in client.iter_job_messages(args.job_id)]
    if args.json:
        _print(_render.to_json(messages))
    else:
        for message in messages:
            _print(_render.message_line(message))
    return EXIT_OK


async def _assets(client: Client, args: argparse.Namespace) -> int:
    assets = [a async for a in client.iter_assets(args.job_id)]
    if args.json:
        _print(_render.to_json(assets))
    else:
        _render.show(_render.console(sys.stdout), _render.assets_table(assets))
    return EXIT_OK
