"""The dashboard's files: one page (`/`) and its scripts and styles under /static/, shipped inside the
package (jobwarden_server/http/static/). Plain ES modules and CSS: nothing to build, nothing fetched
from elsewhere. Opening `/?token=...` once moves the token into the login cookie (http/auth.py) and
reloads `/` without it, so it stays out of the address bar and the history."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from jobwarden_server.domain import errors
from jobwarden_server.http import api, auth

ROOT = Path(__file__).parent / "static"
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # Only our own files: no inline script, nothing from another origin.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def routes() -> list[tuple[str, str, auth.Handler]]:
    """The page's (method, path, handler) routes; /static/ is added by `add_static`."""
    return [("GET", "/", page)]


def add_static(app: web.Application) -> None:
    """Serve static/ under /static/."""
    app.router.add_static("/static/", ROOT, append_version=False)


async def page(request: web.Request) -> web.StreamResponse:
    """The dashboard; with ?token=, log in first and come back without it."""
    token = request.query.get("token", "")
    if token:
        try:
            auth.authenticate_token(request, token)
        except errors.Unauthenticated:
            raise web.HTTPFound("/#login-failed") from None
        response = web.HTTPFound("/")
        api.set_cookie(request, response, token)
        raise response
    return web.FileResponse(ROOT / "index.html", headers=_PAGE_HEADERS)
