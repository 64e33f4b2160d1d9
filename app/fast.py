"""Hot path: the single-record and lease routes dispatched straight to their handlers, as pure
ASGI."""

import inspect
from collections.abc import Iterable

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .api.leases import LEASE
from .api.records import RECORD
from .errors import AppError, render, unexpected

# The routes served here, by path template: exactly what __call__ passes to their handlers
# after the request, in order.
SEGMENTS = {RECORD: ("namespace", "domain", "entity", "key"), LEASE: ("namespace", "name")}


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
    """The record (or lease) routes by method, each checked against what the fast path passes."""
    found: dict[str, APIRoute] = {}
    for route in routes:
        if isinstance(route, APIRoute) and route.path in SEGMENTS:
            _check_handler(route, SEGMENTS[route.path])
            found.update(dict.fromkeys(route.methods or (), route))
    return found


class RecordRoutes:
    """Serve GET, HEAD, PUT and DELETE of one record, and the lease routes (every bot renews its
    lease every third of its TTL), without the router and dependency layers.

    The handlers are the very functions FastAPI registered (and documents in /openapi.json);
    only the per-request cost of scanning every route and solving each handler's parameters is
    skipped, which was most of the CPU of a read or a write (docs/performance.md); it also sits
    outside FastAPI's own error and body-limit layers (main.Persistd). Errors, unexpected ones
    included, take the same problem+json shape; anything else falls through to the full
    application.
    """

    def __init__(
        self, app: ASGIApp, routes: dict[str, APIRoute], leases: dict[str, APIRoute]
    ) -> None:
        self.app = app
        # From record_routes(), checked when the application is created.
        self.routes = routes
        self.leases = leases

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
        except Exception as exc:  # as the application's own error layer answers it
            response = unexpected(exc)
        await response(scope, receive, send)
