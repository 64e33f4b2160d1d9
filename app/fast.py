"""Hot path: the single-record routes dispatched straight to their handlers, as pure ASGI."""

import inspect
from collections.abc import Iterable

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .api.records import RECORD
from .errors import AppError, render

# The routes served here, by path template: exactly what __call__ passes to their handlers
# after the request, in order.
SEGMENTS = {RECORD: ("namespace", "domain", "entity", "key")}


def _check_handler(route: APIRoute, segments: tuple[str, ...]) -> None:
    """Refuse a handler that expects anything the fast path does not pass: a Query, Header,
    Cookie or Body parameter, or a dependency, would silently be missing here."""
    params = list(inspect.signature(route.endpoint).parameters.values())
    dep = route.dependant
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    matches = (
        [p.name for p in params] == [dep.request_param_name, *segments]
        and all(p.kind is positional and p.default is inspect.Parameter.empty for p in params)
        and tuple(p.name for p in dep.path_params) == segments
        and not (dep.dependencies or dep.query_params or dep.header_params or dep.cookie_params
                 or dep.body_params)
    )  # fmt: skip
    if not matches:
        found = ", ".join(str(p) for p in params)
        raise RuntimeError(
            f"{route.name}({found}) cannot be served by the record fast path, which passes "
            f"exactly (request: Request, {', '.join(segments)}); read anything else from the "
            "request inside the handler"
        )


def record_routes(routes: Iterable[BaseRoute]) -> dict[str, APIRoute]:
    """The record routes by method, each checked against what the fast path passes."""
    found: dict[str, APIRoute] = {}
    for route in routes:
        if isinstance(route, APIRoute) and route.path in SEGMENTS:
            _check_handler(route, SEGMENTS[route.path])
            found.update(dict.fromkeys(route.methods or (), route))
    return found


class RecordRoutes:
    """Serve GET, HEAD, PUT and DELETE of one record without the router and dependency layers.

    The handlers are the very functions FastAPI registered (and documents in /openapi.json);
    only the per-request cost of scanning every route and solving each handler's parameters is
    skipped, which was most of the CPU of a read or a write (docs/performance.md). Errors take
    the same problem+json shape; anything else falls through to the full application.
    """

    def __init__(self, app: ASGIApp, routes: dict[str, APIRoute]) -> None:
        self.app = app
        self.routes = routes  # from record_routes(), checked when the application is created

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
