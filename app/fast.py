"""Hot path: the single-record and lease routes dispatched straight to their handlers, as pure
ASGI."""

from collections.abc import Iterable

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .api.leases import LEASE
from .api.records import RECORD
from .errors import AppError, render


class RecordRoutes:
    """Serve GET, HEAD, PUT and DELETE of one record, and the lease renewal and read (every bot
    renews every third of its TTL), without the router and dependency layers.

    The handlers are the very functions FastAPI registered (and documents in /openapi.json);
    only the per-request cost of scanning every route and solving each handler's parameters is
    skipped, which was most of the CPU of a read or a write (docs/performance.md). Errors take
    the same problem+json shape; anything else falls through to the full application.
    """

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.routes: dict[str, APIRoute] = {}
        self.leases: dict[str, APIRoute] = {}
        for route in routes:
            if not isinstance(route, APIRoute) or route.path not in (RECORD, LEASE):
                continue
            if route.dependant.dependencies:
                # They would silently not run here; the handlers take the request instead.
                raise RuntimeError(f"{route.name} declares FastAPI dependencies")
            if route.dependant.query_params:
                continue  # only path parameters are passed here (release takes ?token=)
            table = self.routes if route.path == RECORD else self.leases
            table.update(dict.fromkeys(route.methods or (), route))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http":
            # The path is still percent-encoded (RawPathMiddleware): an encoded "/" is no
            # separator. "", "v1", namespace, domain, entity, "records", key
            # or "", "v1", namespace, "leases", name
            parts: list[str] = scope["path"].split("/")
            if len(parts) == 7 and parts[1] == "v1" and parts[5] == "records":
                route, args = self.routes.get(scope["method"]), (*parts[2:5], parts[6])
            elif len(parts) == 5 and parts[1] == "v1" and parts[3] == "leases":
                route, args = self.leases.get(scope["method"]), (parts[2], parts[4])
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # the route template labels the metrics and the access log
        try:
            response = await route.endpoint(Request(scope, receive), *args)
        except AppError as error:
            response = render(error)
        await response(scope, receive, send)
