"""Build, start and stop the HTTP port's aiohttp application on the server's event loop.

Routes come from the modules (api, events, static) as (method, path, handler) triples, plus any extra
ones given to `start` or `register`ed before it (see the package docstring: `GET /metrics` is one line).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Sequence

from aiohttp import web

from jobwarden_server import listen
from jobwarden_server.api.auth import Authenticator
from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.http import api, auth, events, static
from jobwarden_server.service.wiring import Services
from jobwarden_server.settings import Settings

logger = logging.getLogger(__name__)

Route = tuple[str, str, auth.Handler]
_registered: list[Route] = []


def register(method: str, path: str, handler: auth.Handler) -> None:
    """Add a route to every HTTP port started after this call (behind the same authentication)."""
    _registered.append((method, path, handler))


def build(
    services: Services, authenticator: Authenticator, *, tls: bool, extra_routes: Sequence[Route] = ()
) -> web.Application:
    """The application: authentication middleware, then the API, the streams, the page, and the extras."""
    app = web.Application(client_max_size=1 << 20)
    app[api.SERVICES] = services
    app[api.TLS] = tls
    auth.install(app, authenticator)
    for method, path, handler in (
        *api.routes(),
        *events.routes(),
        *static.routes(),
        *_registered,
        *extra_routes,
    ):
        app.router.add_route(method, path, handler)
    static.add_static(app)
    return app


@dataclasses.dataclass(slots=True)
class HttpServer:
    """A started HTTP port."""

    runner: web.AppRunner
    host: str
    port: int
    scheme: str

    @property
    def url(self) -> str:
        """Where to open the dashboard."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/"

    async def stop(self) -> None:
        """Stop listening and end open requests (the event streams end when the bus closes first)."""
        await self.runner.cleanup()


def check(settings: Settings) -> None:
    """Before the database is touched: the HTTP port can be bound and its TLS files loaded (ConfigError
    otherwise, one line, as for the gRPC port). Nothing to check when it is off."""
    if not settings.http_listen:
        return
    problem = listen.bind_problem(listen.parse_listen(settings.http_listen))
    if problem is not None:
        raise ConfigError(problem.replace("--listen", "--http-listen"))
    if settings.tls is not None:
        settings.tls.ssl_context()


async def start(
    settings: Settings,
    services: Services,
    authenticator: Authenticator,
    *,
    extra_routes: Sequence[Route] = (),
) -> HttpServer:
    """Listen on settings.http_listen (checked by Settings.checked and, for the port, here first)."""
    address = listen.parse_listen(settings.http_listen)
    ssl_context = settings.tls.ssl_context() if settings.tls is not None else None
    app = build(services, authenticator, tls=ssl_context is not None, extra_routes=extra_routes)
    # handler_cancellation: a browser that goes away ends its event stream's handler at once, which
    # gives its stream slot back without waiting for the next heartbeat.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        sock = _bound(address)
    except BaseException:
        await runner.cleanup()
        raise
    try:
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    port = sock.getsockname()[1]
    scheme = "https" if ssl_context is not None else "http"
    logger.info("dashboard on %s://%s:%d/", scheme, address.host, port)
    return HttpServer(runner=runner, host=address.host, port=port, scheme=scheme)


def _bound(address: listen.ListenAddress) -> socket.socket:
    """A listening socket on the first address the host resolves to (port 0: a free one)."""
    family, kind, proto, _name, sockaddr = socket.getaddrinfo(
        address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {_shown(address)} for HTTP: {err.strerror or err}") from err
    sock.setblocking(False)
    return sock


def _shown(address: listen.ListenAddress) -> str:
    """host:port as written ([host]:port for IPv6)."""
    return f"[{address.host}]:{address.port}" if ":" in address.host else f"{address.host}:{address.port}"
