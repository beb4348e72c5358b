"""The HTTP port (`jobwarden serve --http-listen HOST:PORT`, or `[http] listen`): the web dashboard at
`/`, its JSON API under `/api/`, and its live updates as server-sent events. Off unless configured.

It runs in the `jobwarden serve` process, on the same event loop and the same services as the gRPC
port (api layer: it calls services, never the store), and stops with it. The same tokens and roles
apply as over gRPC (http/auth.py); an owner sees only its own jobs.

Modules: server.py (build the aiohttp application, start and stop it), auth.py (who is calling:
bearer header, or the HttpOnly cookie set by the login form), api.py (the JSON API), events.py
(server-sent events), shapes.py (records as JSON), static.py (the dashboard's files, in static/).

Adding a route (e.g. `GET /metrics`): pass it to the builder, one line in app.py,

    http.server.start(settings, services, authenticator, extra_routes=[("GET", "/metrics", handler)])

or register it before the server starts with `http.server.register("GET", "/metrics", handler)`.
Either way the route sits behind the same authentication middleware as the API: a request without a
valid token (in token mode) is answered 401 before the handler runs, and the handler finds the caller
with `http.auth.principal(request)` (and may demand a role with `http.auth.require(request, role)`).
"""
