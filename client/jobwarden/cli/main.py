"""The ``jobwarden`` command: run the server; create, inspect, cancel and watch jobs; admin changes;
statistics (``stats``, ``top``)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import jobwarden
from jobwarden import errors
from jobwarden.cli import _admin, _batches, _jobs, _stats, _watch
from jobwarden.client import DEFAULT_TARGET, Client, TlsOptions

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

_SERVER_COMMANDS = ("serve", "migrate")

_TOKEN_HELP = "--token TOKEN or env JOBWARDEN_TOKEN"

_EPILOG = """\
exit status:
  0    success
  1    the server refused the request (the error's reason is printed), or another error
  2    usage error (also: a --params file that cannot be read, or is not a JSON object)
  3    the server could not be reached or did not answer in time (UNAVAILABLE, DEADLINE_EXCEEDED)
  4    'jobs watch' only: the job ended in a status other than COMPLETED
  130  interrupted (Ctrl-C)

environment:
  JOBWARDEN_ADDRESS  default for --address
  JOBWARDEN_TOKEN    default for --token
  JOBWARDEN_TLS_CA, JOBWARDEN_TLS_CERT, JOBWARDEN_TLS_KEY
                     defaults for --tls-ca, --tls-cert, --tls-key
  JOBWARDEN_DEBUG    set to 1 to show tracebacks of unexpected errors

'serve' and 'migrate' pass their arguments to the server ('jobwarden serve --help');
they need the server installed: pip install 'jobwarden[server]'.
"""


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # The same options are accepted after the subcommand too; there they default to SUPPRESS so they
    # override the top-level value only when given.
    parser.add_argument(
        "--address",
        default=argparse.SUPPRESS if suppress else os.environ.get("JOBWARDEN_ADDRESS", DEFAULT_TARGET),
        metavar="HOST:PORT",
        help=f"server address (env JOBWARDEN_ADDRESS, default {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--token",
        default=argparse.SUPPRESS if suppress else os.environ.get("JOBWARDEN_TOKEN"),
        help="bearer token (env JOBWARDEN_TOKEN; none for a server in local mode)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="use TLS, trusting the system's CAs (implied by the other --tls-* options)",
    )
    for flag, env, what in (
        ("--tls-ca", "JOBWARDEN_TLS_CA", "use TLS, trusting this CA certificate (PEM file)"),
        ("--tls-cert", "JOBWARDEN_TLS_CERT", "client certificate for mutual TLS (PEM file; needs --tls-key)"),
        ("--tls-key", "JOBWARDEN_TLS_KEY", "private key of --tls-cert (PEM file)"),
    ):
        parser.add_argument(
            flag,
            default=argparse.SUPPRESS if suppress else os.environ.get(env) or None,
            metavar="PEM",
            help=f"{what} (env {env})",
        )


def version() -> str:
    """The installed package's version (the source tree's, when it runs uninstalled)."""
    try:
        return importlib.metadata.version("jobwarden")
    except importlib.metadata.PackageNotFoundError:
        return jobwarden.__version__


def build_parser() -> argparse.ArgumentParser:
    """Builds the argument parser of the ``jobwarden`` command."""
    parser = argparse.ArgumentParser(
        prog="jobwarden",
        description="jobwarden: a gRPC job coordination service.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jobwarden {version()}")
    _connection_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # No options of their own (not even --help): everything after them goes to the server's parser.
    sub.add_parser("serve", help="run the server", add_help=False)
    sub.add_parser("migrate", help="create or upgrade the server's database", add_help=False)
    _jobs.add_parser(sub, common)
    _admin.add_parser(sub, common)
    _batches.add_parser(sub, common)
    _stats.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``jobwarden`` command and returns its exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(args_list)
        if args.command not in _SERVER_COMMANDS and rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command in _SERVER_COMMANDS:
        return _run_server(args.command, rest)
    return _client_command(args)


def _client_command(args: argparse.Namespace) -> int:
    """Runs a ``jobs`` command; every failure becomes one line on stderr and an exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        tls = _tls_options(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_run_client(args, tls))
    except _jobs.UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if sys.stdout.isatty():
            print(file=sys.stdout)
        return EXIT_INTERRUPTED
    except errors.JobwardenError as err:
        print(f"error: {_describe(err, args.address, token_given=bool(args.token))}", file=sys.stderr)
        if isinstance(err, errors.Unavailable | errors.DeadlineExceeded):
            return EXIT_UNAVAILABLE
        return EXIT_ERROR
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (`| head`); not worth a message
        return EXIT_ERROR
    except Exception as err:
        if os.environ.get("JOBWARDEN_DEBUG"):
            raise
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_ERROR


async def _run_client(args: argparse.Namespace, tls: TlsOptions | bool) -> int:
    fn = cast(_jobs.Command, args.func)
    # A person is waiting: find a server that comes back within seconds, not gRPC's up to 120 s.
    client = Client(args.address, token=args.token, tls=tls, max_reconnect_backoff=_watch.MAX_BACKOFF_S)
    async with client:
        return await fn(client, args)


def _tls_options(args: argparse.Namespace) -> TlsOptions | bool:
    """TLS settings from --tls and --tls-*: any of them turns TLS on.

    The files are read here, before any connection, so a wrong path is reported naming its option.

    Raises:
        ValueError: A file cannot be read, or --tls-cert and --tls-key were not given together.
    """
    paths = {"ca_cert": args.tls_ca, "client_cert": args.tls_cert, "client_key": args.tls_key}
    if not any(paths.values()):
        return bool(args.tls)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together; give both or neither")
    flags = {"ca_cert": "--tls-ca", "client_cert": "--tls-cert", "client_key": "--tls-key"}
    pem: dict[str, bytes | None] = {}
    for field, path in paths.items():
        try:
            pem[field] = Path(path).read_bytes() if path else None
        except OSError as err:
            raise ValueError(f"{flags[field]}: cannot read {path} ({err.strerror or err})") from err
    return TlsOptions(ca_cert=pem["ca_cert"], client_cert=pem["client_cert"], client_key=pem["client_key"])


def _describe(err: errors.JobwardenError, address: str, *, token_given: bool = False) -> str:
    label = err.reason or err.code.name
    message = err.message
    if isinstance(err, errors.Unauthenticated):
        hint = (
            f"check the token given with {_TOKEN_HELP}" if token_given else f"pass a token with {_TOKEN_HELP}"
        )
        message = f"{message}; {hint}" if message else hint
    elif isinstance(err, errors.Unavailable) and not err.reason:
        message = f"the server at {address} is unavailable ({message})"
    elif isinstance(err, errors.DeadlineExceeded):
        message = f"no answer from the server at {address} in time"
    # Violations often repeat the message ("job_type: is required"); add only what is new.
    extra = []
    for v in err.field_violations:
        text = v.description if v.description.startswith(v.field) else f"{v.field}: {v.description}"
        if text not in message:
            extra.append(text)
    if extra:
        message = f"{message} ({'; '.join(extra)})" if message else "; ".join(extra)
    return f"{label}: {message}" if message else label


def _run_server(command: str, rest: list[str]) -> int:
    # Imported only now: the server is an optional extra, and the SDK must not depend on it.
    try:
        app = importlib.import_module("jobwarden_server.app")
    except ImportError as err:
        missing = f" (missing {err.name})" if err.name else ""
        print(
            f"error: the jobwarden server is not installed{missing}: pip install 'jobwarden[server]'",
            file=sys.stderr,
        )
        return EXIT_ERROR
    server_main = cast(Callable[[list[str]], int], app.main)
    return server_main([command, *rest])


def _silence_stdout() -> None:
    # Python would report the broken pipe again when flushing stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
