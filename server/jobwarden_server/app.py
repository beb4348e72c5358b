"""Composition root: settings -> store -> services -> grpc.aio server; and the `serve`/`migrate` commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from jobwarden.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)
from jobwarden_server import listen, store
from jobwarden_server import settings as settings_mod
from jobwarden_server.api.admin_servicer import AdminServicer
from jobwarden_server.api.auth import Authenticator
from jobwarden_server.api.guard import Guard
from jobwarden_server.api.job_servicer import JobServicer
from jobwarden_server.api.observe import RpcObserver
from jobwarden_server.api.worker_servicer import WorkerServicer
from jobwarden_server.domain.errors import ConfigError, DomainError
from jobwarden_server.events.bus import EventBus
from jobwarden_server.events.relay import BusRelay
from jobwarden_server.http import metrics as http_metrics
from jobwarden_server.http import server as http_server
from jobwarden_server.observability import logs
from jobwarden_server.observability.metrics import Metrics
from jobwarden_server.service import wiring
from jobwarden_server.service.callbacks import CallbackDispatcher
from jobwarden_server.service.reaper import ReaperSettings
from jobwarden_server.service.writer import Clock, utc_now
from jobwarden_server.settings import Settings

logger = logging.getLogger(__name__)

SERVICE_NAMES = (
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)
# Headroom above our own request limit, so oversized requests get our INVALID_ARGUMENT/TOO_LARGE
# answer (with ErrorInfo) instead of the transport's bare RESOURCE_EXHAUSTED.
TRANSPORT_LIMIT_FACTOR = 4


@dataclasses.dataclass(slots=True)
class RunningServer:
    """A started server: where it listens and how to stop it."""

    server: grpc.aio.Server
    store: store.Store
    health: health.aio.HealthServicer
    port: int
    host: str
    background: asyncio.Task[None]
    stopping: asyncio.Event
    bus: EventBus
    guard: Guard
    metrics: Metrics
    http: http_server.HttpServer | None = None
    """The HTTP port (dashboard), when settings.http_listen asks for one."""

    @property
    def address(self) -> str:
        """host:port to dial ([host]:port for IPv6)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def stop(self, grace: float | None) -> None:
        """Stop answering, let in-flight RPCs finish within `grace` seconds, release the store."""
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Streams and long polls would otherwise hold the whole grace period: end them now, with a
        # retryable status; unary calls in flight get the grace period to finish.
        await self.bus.close()
        if self.http is not None:
            await self.http.stop()
        await self.server.stop(grace)
        await self.guard.drain(within_s=5.0)
        self.stopping.set()
        await self.background
        await self.store.close()


async def start(settings: Settings, *, migrate: bool = True, clock: Clock = utc_now) -> RunningServer:
    """Open the store (migrating it up to date), wire the services and start listening."""
    settings.checked()
    address = listen.parse_listen(settings.listen)
    # Before migrating: a server that cannot listen must not touch the database, and must say why in
    # one line (gRPC's own bind failure says only "Failed to bind", after logging a line of its own).
    problem = listen.bind_problem(address)
    if problem is not None:
        raise ConfigError(problem)
    http_server.check(settings)
    if migrate:
        await store.migrate(settings.database)
    db = store.open_store(
        settings.database,
        pool_size=settings.database_pool_size,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    await _check_lifecycles_in_use(db, settings)
    bus = EventBus(subscriber_queue_size=settings.subscriber_queue_size)
    metrics = Metrics()
    services = wiring.build(
        db,
        bus,
        settings.lifecycles,
        settings.retry,
        clock=clock,
        max_streams_per_owner=settings.max_streams_per_owner,
        cancel_grace_s=settings.cancel_grace_s,
        queue_timeouts=settings.queue_timeouts,
        reaper=ReaperSettings(interval_s=settings.reaper_interval_s, stall=settings.stall),
        retention=settings.retention,
        metrics=metrics,
    )
    transport_limit = settings.max_request_bytes * TRANSPORT_LIMIT_FACTOR
    authenticator = Authenticator(settings.principals_by_hash, settings.principals_by_cn)
    guard = Guard(authenticator, max_request_bytes=settings.max_request_bytes)
    server = grpc.aio.server(
        # The observer outermost: it times the whole call and sees the code the guard answered with.
        interceptors=[RpcObserver(metrics), guard],
        options=[
            ("grpc.max_receive_message_length", transport_limit),
            ("grpc.max_send_message_length", transport_limit),
            listen.EXCLUSIVE_BIND,
        ],
    )
    job_service_pb2_grpc.add_JobServiceServicer_to_server(
        JobServicer(
            services.jobs,
            services.watch,
            settings.callbacks,
            batches=services.batches,
            stats=services.stats,
        ),
        server,
    )
    worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(WorkerServicer(services.work), server)
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(services.admin), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    try:
        if settings.tls is None:
            port = server.add_insecure_port(settings.listen)
        else:
            port = server.add_secure_port(settings.listen, settings.tls.server_credentials())
    except RuntimeError as err:
        await db.close()
        # Taken since the check above (a race), or unusable for a reason only gRPC knows.
        problem = listen.bind_problem(address)
        if problem is not None:
            raise ConfigError(problem) from err
        # gRPC reports a certificate it cannot use (e.g. a key of another certificate) only as a
        # failed bind, so name that possibility too.
        hint = " (or the TLS certificate and key do not belong together)" if settings.tls else ""
        raise ConfigError(f"cannot listen on {settings.listen}{hint}: {err}") from err
    await server.start()
    try:
        http = None
        if settings.http_listen:
            routes = [http_metrics.route(metrics)]
            http = await http_server.start(settings, services, authenticator, extra_routes=routes)
    except BaseException:
        await server.stop(None)
        await db.close()
        raise
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = address.host
    stopping = asyncio.Event()
    dispatcher = CallbackDispatcher(db, bus, settings.callbacks, clock, metrics)
    loops = [services.reaper.run(stopping), dispatcher.run(stopping)]
    if services.retention.enabled:
        loops.append(services.retention.run(stopping))
    # PostgreSQL: other replicas' commits wake this replica's watchers and claimers (None on SQLite).
    feed = db.change_feed(BusRelay(bus))
    if feed is not None:
        loops.append(feed.run(stopping))
    background = asyncio.create_task(_together(loops), name="jobwarden-background")
    transport = settings.tls.mode if settings.tls else "plaintext"
    logger.info(
        "jobwarden listening on %s:%d, %s (database %s)",
        host,
        port,
        transport,
        store.display_url(settings.database),
    )
    return RunningServer(
        server=server,
        store=db,
        health=health_servicer,
        port=port,
        host=host,
        background=background,
        stopping=stopping,
        bus=bus,
        guard=guard,
        metrics=metrics,
        http=http,
    )


async def _check_lifecycles_in_use(db: store.Store, settings: Settings) -> None:
    """Refuse to start without a lifecycle table that unfinished jobs use: nothing could decide their
    moves (completing, cancelling, rescuing them). Finished jobs need no table."""
    try:
        missing = settings.lifecycles.missing(await db.job_lifecycles_in_use())
    except BaseException:
        await db.close()
        raise
    if missing:
        await db.close()
        uses = ", ".join(f"{name!r} ({count} unfinished jobs)" for name, count in missing.items())
        raise ConfigError(
            f"lifecycle tables in use but not in the config: {uses}; "
            "put them back under [lifecycles] (and their job types under [job_types])"
        )


async def _together(loops: Sequence[Coroutine[Any, Any, None]]) -> None:
    # Each loop survives its own failures (store down, lost connection) and ends when told to stop.
    await asyncio.gather(*loops)


@contextlib.asynccontextmanager
async def running(settings: Settings, **kwargs: object) -> AsyncIterator[RunningServer]:
    """A started server for the duration of the block (tests and embedding)."""
    srv = await start(settings, **kwargs)  # type: ignore[arg-type]
    try:
        yield srv
    finally:
        await srv.stop(grace=1.0)


GC_THRESHOLDS = (10_000, 10, 10)
"""The collector's thresholds while serving (Python's default is 700, 10, 10)."""


def settle_collector() -> None:
    """Tune the cyclic garbage collector for a long-running server, once start-up is done.

    What start-up built (modules, compiled statements, the wiring) lives as long as the process: it is
    frozen out of the collector's sight, so a full collection no longer walks every import. Young
    objects are collected less often: reference counting frees nearly all of a job's garbage, and with
    the defaults the collector's walks were about 3% of a drain's CPU. A process-wide choice, so only
    `jobwarden serve` makes it, not a server embedded in another program."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(settings: Settings) -> int:
    srv = await start(settings)
    settle_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"jobwarden serving on {srv.address} (database {store.display_url(settings.database)})", flush=True)
    if srv.http is not None:
        print(f"jobwarden dashboard on {srv.http.url}", flush=True)
    await stop.wait()
    logger.info("shutting down (grace %.1fs)", settings.shutdown_grace_s)
    await srv.stop(settings.shutdown_grace_s)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobwarden", description="jobwarden server commands")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (migrates the database first)")
    migrate = sub.add_parser("migrate", help="bring the database schema up to date and exit")
    for p in (serve, migrate):
        p.add_argument("--config", help=f"TOML config file (env {settings_mod.ENV_CONFIG})")
        p.add_argument(
            "--database",
            help=f"SQLite path or postgresql:// URL (env {settings_mod.ENV_DATABASE}; default jobwarden.db)",
        )
        p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
        p.add_argument(
            "--log-format",
            help="text (default) or json: one JSON object per line, with job_id and trace_id when known",
        )
    serve.add_argument("--listen", help=f"host:port (env {settings_mod.ENV_LISTEN}; default 127.0.0.1:50051)")
    serve.add_argument(
        "--tls-cert", metavar="PEM", help="serve TLS with this certificate (chain); needs --tls-key"
    )
    serve.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    serve.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="mutual TLS: require client certificates signed by this CA ([[tokens]] client_cn maps them)",
    )
    serve.add_argument(
        "--http-listen",
        metavar="HOST:PORT",
        help=f"also serve the web dashboard on this address (env {settings_mod.ENV_HTTP_LISTEN}; default off)",
    )
    serve.add_argument(
        "--http-insecure",
        action="store_true",
        default=None,
        help="serve --http-listen in plaintext on a non-loopback address (behind a TLS-terminating proxy)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`jobwarden serve` and `jobwarden migrate`. Returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = settings_mod.load(
            args.config,
            database=args.database,
            listen=getattr(args, "listen", None),
            tls_cert=getattr(args, "tls_cert", None),
            tls_key=getattr(args, "tls_key", None),
            tls_client_ca=getattr(args, "tls_client_ca", None),
            log_format=args.log_format,
            http_listen=getattr(args, "http_listen", None),
            http_insecure=getattr(args, "http_insecure", None),
        )
        # Only once the settings are read: the config file may choose the format. Nothing logs before.
        logs.configure(str(args.log_level), settings.log_format)
        if args.command == "migrate":
            asyncio.run(store.migrate(settings.database))
            print(f"database {store.display_url(settings.database)} is up to date")
            return 0
        return asyncio.run(_serve(settings))
    except (ConfigError, DomainError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
