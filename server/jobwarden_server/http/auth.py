"""Who is calling over HTTP: the gRPC port's rules (api/auth.py), carried the way browsers can.

- `Authorization: Bearer <token>`, as over gRPC (scripts, curl, a Prometheus scraper);
- or the `jobwarden_token` cookie, set by `POST /api/session` (the dashboard's login form) or by
  opening `/?token=...` once (the token is moved into the cookie and out of the address bar).
  EventSource cannot send headers, so a cookie is the one credential server-sent events can carry.
  It is HttpOnly (page scripts cannot read it), SameSite=Strict (other sites cannot make the browser
  send it), and Secure when the port serves TLS;
- or, under mutual TLS, the verified client certificate's common name (`[[tokens]] client_cn`).

Local mode (no tokens): everyone is the local owner, no login. Requests that change something must
send JSON (`Content-Type: application/json`), which a cross-site form cannot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from jobwarden_server.api.auth import CERT_COMMON_NAME, Authenticator
from jobwarden_server.api.errors import internal
from jobwarden_server.domain import errors
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.http import answers

logger = logging.getLogger(__name__)

COOKIE = "jobwarden_token"
PUBLIC_PATHS = frozenset({"/", "/favicon.ico"})
"""Reachable without credentials: the dashboard's page (its scripts show the login form)."""
PUBLIC_PREFIXES = ("/static/",)
_PRINCIPAL: web.AppKey[Authenticator] = web.AppKey("authenticator", Authenticator)
_CALLER: web.RequestKey[Principal] = web.RequestKey("principal", Principal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(app: web.Application, authenticator: Authenticator) -> None:
    """Authenticate every request of `app` but the public ones (see the module docstring)."""
    app[_PRINCIPAL] = authenticator
    app.middlewares.append(_middleware)


def authenticate(request: web.Request) -> Principal:
    """The caller of `request`, or Unauthenticated."""
    authenticator = request.app[_PRINCIPAL]
    header = request.headers.get("Authorization", "")
    metadata: list[tuple[str, str]] = []
    if header:
        metadata.append(("authorization", header))
    elif request.cookies.get(COOKIE):
        metadata.append(("authorization", f"Bearer {request.cookies[COOKIE]}"))
    return authenticator.authenticate(metadata, _certificate(request))


def authenticate_token(request: web.Request, token: str) -> Principal:
    """The owner of `token`, or Unauthenticated (local mode: the local owner)."""
    return request.app[_PRINCIPAL].authenticate([("authorization", f"Bearer {token}")])


def _certificate(request: web.Request) -> Mapping[str, list[bytes]] | None:
    """The verified client certificate's common names, shaped like gRPC's auth context."""
    transport = request.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    if not peer:
        return None
    names = [value.encode() for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
    return {CERT_COMMON_NAME: names}


def principal(request: web.Request) -> Principal:
    """The authenticated caller of a non-public route."""
    found: Principal = request[_CALLER]
    return found


def require(request: web.Request, role: Role) -> Principal:
    """The caller, if it holds `role`; PermissionDenied otherwise."""
    return principal(request).require(role)


def local_mode(request: web.Request) -> bool:
    """Whether the server runs without tokens (the dashboard then shows no login)."""
    return request.app[_PRINCIPAL].local_mode


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or path == "/api/session"


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if not _public(request.path):
            request[_CALLER] = authenticate(request)
            if request.method in {"POST", "PUT", "PATCH", "DELETE"} and request.content_type != (
                "application/json"
            ):
                raise errors.InvalidArgument("Content-Type", "must be application/json")
        return await handler(request)
    except errors.DomainError as err:
        return answers.error(err)
    except web.HTTPException:
        raise  # redirects, and the router's own 404 and 405
    except Exception:
        logger.exception("HTTP %s %s failed", request.method, request.path)
        return answers.error(internal())
