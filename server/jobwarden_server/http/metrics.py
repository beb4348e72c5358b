"""`GET /metrics`: the server's Prometheus metrics (observability/metrics.py), on the HTTP port.

The metrics count every owner's jobs, so in token mode only a token holding the `metrics` role (made
for a scraper: it can do nothing else) or `admin-global` may read them; without tokens anyone on the
loopback address may, as with everything else.
"""

from __future__ import annotations

from aiohttp import web

from jobwarden_server.domain.auth import Role
from jobwarden_server.http import auth
from jobwarden_server.observability.metrics import Metrics, render

PATH = "/metrics"


def route(metrics: Metrics) -> tuple[str, str, auth.Handler]:
    """The (method, path, handler) of the metrics endpoint, for http.server.start's extra routes."""

    async def scrape(request: web.Request) -> web.StreamResponse:
        auth.require(request, Role.METRICS)
        body, content_type = await render(metrics)
        return web.Response(body=body, headers={"Content-Type": content_type})

    return ("GET", PATH, scrape)
