"""Hot path: the single-record routes dispatched straight to their handlers, as pure ASGI."""

from collections.abc import Iterable

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .api.records import RECORD
from .errors import AppError, render


class RecordRoutes:
    """Serve GET, HEAD, PUT and DELETE of one record without the router and dependency layers.

    The handlers are the very functions FastAPI registered (and documents in /openapi.json);
    only the per-request cost of scanning every route and solving each handler's parameters is
    skipped, which was most of the CPU of a read or a write (docs/performance.md). Errors take
    the same problem+json shape; anything else falls through to the full application.
    """

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.routes: dict[str, APIRoute] = {}
        for route in routes:
            if isinstance(route, APIRoute) and route.path == RECORD:
                if route.dependant.dependencies:
                    # They would silently not run here; the handlers take the request instead.
                    raise RuntimeError(f"{route.name} declares FastAPI dependencies")
                self.routes.update(dict.fromkeys(route.methods or (), route))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["method"]) if scope["type"] == "http" else None
        # The path is still percent-encoded (RawPathMiddleware): an encoded "/" is no separator.
        # "", "v1", namespace, domain, entity, "records", key
        parts: list[str] = scope["path"].split("/") if route is not None else []
        if route is None or len(parts) != 7 or parts[1] != "v1" or parts[5] != "records":
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # the route template labels the metrics and the access log
        try:
            response = await route.endpoint(Request(scope, receive), *parts[2:5], parts[6])
        except AppError as error:
            response = render(error)
        await response(scope, receive, send)
