"""``jobwarden batches ...``: create a batch of jobs, and show one with its children."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jobwarden.cli import _jobs, _render
from jobwarden.client import Client, Job, NewJob

CHILD_FIELDS = frozenset(
    {"job_type", "parameters", "priority", "labels", "max_attempts", "callback_url", "hold", "queue_timeout"}
)
"""What a child may say in a --children file: the fields of ``jobs create``."""


def child(text: str) -> NewJob:
    """Parses ``--child TYPE`` or ``--child 'TYPE:{"key": "value"}'`` (the parameters as a JSON object)."""
    job_type, sep, params = text.partition(":")
    if not job_type:
        raise argparse.ArgumentTypeError(f"expected TYPE or TYPE:JSON, got {text!r}")
    parameters: Any = {}
    if sep:
        try:
            parameters = json.loads(params)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f"invalid JSON after {job_type}: {err}") from None
        if not isinstance(parameters, dict):
            raise argparse.ArgumentTypeError(f"expected a JSON object after {job_type}:")
    return NewJob(job_type, parameters)


def load_children(spec: str) -> list[NewJob]:
    """The children that ``--children`` names (a JSON list of objects): inline, ``@FILE`` or ``-``.

    Raises:
        _jobs.UsageError: The file cannot be read, or is not a list of child objects.
    """
    if spec == "-":
        where, text = " on standard input", sys.stdin.read()
    elif spec.startswith("@"):
        try:
            text = Path(spec[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise _jobs.UsageError(f"--children: cannot read {spec[1:]} ({err})") from err
        where = f" in {spec[1:]}"
    else:
        where, text = "", spec
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise _jobs.UsageError(f"--children: invalid JSON{where}: {err}") from err
    if not isinstance(items, list):
        raise _jobs.UsageError(f"--children: expected a JSON list{where}, got {type(items).__name__}")
    children = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("job_type"), str):
            raise _jobs.UsageError(f"--children: item {i}{where} is not an object with a job_type")
        unknown = sorted(set(item) - CHILD_FIELDS)
        if unknown:
            raise _jobs.UsageError(f"--children: item {i}{where} has unknown fields: {', '.join(unknown)}")
        children.append(NewJob(**item))
    return children


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Adds ``batches`` and its subcommands; ``common`` carries the connection options."""
    batches = subparsers.add_parser("batches", help="create a batch of jobs, show a batch")
    sub = batches.add_subparsers(dest="batches_command", metavar="COMMAND", required=True)

    def command(name: str, fn: _jobs.Command, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        p.set_defaults(func=fn)
        return p

    p = command("create", _create, "create a batch (a parent and its children) and print the parent's id")
    p.add_argument("job_type", metavar="TYPE", help="the parent's job type (no worker claims it)")
    p.add_argument(
        "--children",
        metavar="JSON|@FILE|-",
        help='the children as a JSON list of objects, e.g. [{"job_type": "resize", "parameters": {"w": 64}}]'
        " (fields as for jobs create): inline, @FILE, or - for standard input",
    )
    p.add_argument(
        "--child",
        dest="child_list",
        metavar="TYPE[:JSON]",
        type=child,
        action="append",
        default=[],
        help="one more child: its type, and its parameters as a JSON object (repeatable)",
    )
    p.add_argument("--params", dest="params_json", metavar="JSON|@FILE|-", help="the parent's parameters")
    p.add_argument(
        "--label",
        dest="labels",
        metavar="KEY=VALUE",
        type=_jobs.key_value,
        action="append",
        default=[],
        help="a label of the parent (repeatable)",
    )
    p.add_argument("--callback-url", default="", metavar="URL", help="called once, when the batch ends")
    p.add_argument("--request-id", default=None, help="idempotency key of the whole batch")
    p.add_argument("--validate-only", action="store_true", help="check the batch; create nothing")
    p.add_argument("--json", action="store_true", help="print the parent as JSON")

    p = command("show", _show, "show a batch's parent, its counts, and its children")
    p.add_argument("job_id", metavar="ID", help="the parent's id")
    p.add_argument("--limit", type=_jobs.positive, default=50, help="children to show (default 50)")
    p.add_argument("--json", action="store_true", help='print {"batch": parent, "children": [...]}')


async def _create(client: Client, args: argparse.Namespace) -> int:
    children = load_children(args.children) if args.children is not None else []
    children.extend(args.child_list)
    if not children:
        raise _jobs.UsageError("give the children with --children or --child")
    parameters = _jobs.load_params(args.params_json) if args.params_json is not None else {}
    parent = await client.create_batch(
        args.job_type,
        children,
        parameters=parameters,
        labels=dict(args.labels),
        callback_url=args.callback_url,
        request_id=args.request_id,
        validate_only=args.validate_only,
    )
    if args.json:
        print(_render.to_json(parent), flush=True)
    elif args.validate_only:
        print(f"valid: a batch of {len(children)} children (nothing was created)", flush=True)
    else:
        print(parent.id, flush=True)
    return _jobs.EXIT_OK


async def _show(client: Client, args: argparse.Namespace) -> int:
    parent = await client.get_job(args.job_id)
    children: list[Job] = []
    token = ""
    while len(children) < args.limit:
        page, token = await client.list_jobs(
            parent_id=parent.id, page_size=min(args.limit - len(children), 500), page_token=token
        )
        children.extend(page)
        if not token:
            break
    if args.json:
        print(_render.to_json({"batch": parent, "children": children}), flush=True)
        return _jobs.EXIT_OK
    out = _render.console(sys.stdout)
    print(_render.job_details(parent), flush=True)
    print(flush=True)
    _render.show(out, _render.jobs_table(children))
    if token:
        print(
            f"… more children; use --limit N to see more (of {parent.batch.total if parent.batch else '?'})",
            file=sys.stderr,
        )
    return _jobs.EXIT_OK
