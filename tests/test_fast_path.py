"""The single-record fast path (app/fast.py) answers exactly as FastAPI's router does."""

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from starlette.responses import Response

from persistd.api import leases, records
from persistd.api.common import Domain, Entity, Key, Namespace
from persistd.api.records import RECORD
from persistd.api.schemas import VersionOut
from persistd.config import Settings
from persistd.fast import RecordRoutes, record_routes
from persistd.main import Persistd, create_app
from persistd.store import Store

SIGNAL = b'{"id":"s1","position":"long","priceOpen":1,"priceTakeProfit":2,"priceStopLoss":0.5}'
JSON = {"Content-Type": "application/json"}

# (method, path under /v1/<ns>, headers, body): one sequence, run against both applications.
CASES: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", "/signal/e/records/k", {}, None),
    ("PUT", "/signal/e/records/k", JSON, SIGNAL),
    ("PUT", "/signal/e/records/k", JSON, SIGNAL),
    ("GET", "/signal/e/records/k", {}, None),
    ("HEAD", "/signal/e/records/k", {}, None),
    ("PUT", "/signal/e/records/k", {**JSON, "If-Match": '"1"'}, SIGNAL),
    ("PUT", "/signal/e/records/k", {**JSON, "If-Match": "3"}, SIGNAL),
    ("PUT", "/signal/e/records/k", {**JSON, "If-None-Match": "*"}, SIGNAL),
    ("PUT", "/signal/e/records/k", JSON, b'{"id": 1}'),
    ("PUT", "/signal/e/records/k", JSON, b"{nope"),
    ("PUT", "/signal/e/records/k", {"Content-Type": "text/plain"}, b"1"),
    ("PUT", "/misc/a%2Fb/records/c%2Fd", JSON, b"null"),
    ("GET", "/misc/a%2Fb/records/c%2Fd", {}, None),
    ("GET", "/misc/e/records/%ZZ", {}, None),
    ("GET", "/Bad/e/records/k", {}, None),
    ("GET", "/misc/e/records/k/extra", {}, None),
    ("OPTIONS", "/signal/e/records/k", {}, None),
    ("PATCH", "/signal/e/records/k", JSON, b"1"),
    ("PUT", "/signal/e/records/k", {**JSON, "Persistd-Fence": "bot=1"}, SIGNAL),
    ("PUT", "/signal/e/records/k", {**JSON, "Persistd-Fence": "bot"}, SIGNAL),
    ("DELETE", "/signal/e/records/k", {"Persistd-Fence": "bot=1"}, None),
    ("POST", "/leases/bot", JSON, b'{"holder": "h", "ttl_ms": 60000}'),
    ("PUT", "/signal/e/records/k", {**JSON, "Persistd-Fence": "bot=1"}, SIGNAL),
    ("DELETE", "/signal/e/records/k", {"Persistd-Fence": "bot=2"}, None),
    ("PUT", "/leases/bot", JSON, b'{"token": 1}'),
    ("PUT", "/leases/bot", JSON, b'{"token": 2}'),
    ("PUT", "/leases/bot", JSON, b'{"token": "1"}'),
    ("GET", "/leases/bot", {}, None),
    ("GET", "/leases/Bot", {}, None),
    ("GET", "/leases/nobody", {}, None),
    ("DELETE", "/leases/bot?token=1", {}, None),
    ("DELETE", "/signal/e/records/k", {"If-Match": '"1"'}, None),
    ("DELETE", "/signal/e/records/k", {}, None),
    ("DELETE", "/signal/e/records/k", {}, None),
]
# Headers that differ between any two requests by design.
VOLATILE = {"date", "last-modified", "x-request-id"}
EXPIRY = re.compile(rb'"expires_at":"[^"]*"')


def _app(database_url: str, *, fast: bool) -> Persistd:
    app = create_app(Settings(database_url=database_url, auth="off"))
    assert isinstance(app, Persistd)
    if not fast:
        app.fast_path = False
        app.middleware_stack = app.build_middleware_stack()
    return app


def _serves_fast(app: Persistd) -> bool:
    found, layer = False, app.middleware_stack
    while layer is not None:
        found = found or isinstance(layer, RecordRoutes)
        layer = getattr(layer, "app", None)
    return found


async def _answers(app: FastAPI, ns: str) -> list[dict[str, Any]]:
    """Run CASES in namespace `ns` through the app (lifespan included) over ASGI."""
    out = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://persistd") as client,
    ):
        for method, path, headers, body in CASES:
            resp = await client.request(method, f"/v1/{ns}{path}", headers=headers, content=body)
            kept = {k: v for k, v in resp.headers.items() if k not in VOLATILE}
            out.append({
                "request": f"{method} {path}",
                "status": resp.status_code,
                "headers": kept,
                "body": EXPIRY.sub(b"<expiry>", resp.content.replace(ns.encode(), b"<ns>")),
            })  # fmt: skip
        metrics = (await client.get("/metrics")).text.splitlines()
        out.append({"counts": [m for m in metrics if m.startswith("persistd_http_requests_total")]})
    return out


def test_fast_path_and_router_give_identical_answers(database_url: str) -> None:
    fast_app, routed_app = _app(database_url, fast=True), _app(database_url, fast=False)
    assert _serves_fast(fast_app) and not _serves_fast(routed_app)
    fast = asyncio.run(_answers(fast_app, f"f-{uuid.uuid4().hex[:12]}"))
    routed = asyncio.run(_answers(routed_app, f"r-{uuid.uuid4().hex[:12]}"))
    for a, b in zip(fast, routed, strict=True):
        assert a == b
    counts = fast.pop()["counts"]
    statuses = [a["status"] for a in fast]
    assert statuses == [404, 201, 200, 200, 200, 412, 400, 412, 422, 400, 415, 201, 200, 400,
                        400, 404, 405, 405, 409, 400, 409, 200, 200, 409, 200, 409, 400,
                        200, 400, 404, 200, 412, 204, 404]  # fmt: skip
    # The fast path labels its requests with the route template, as the router does.
    route = 'route="/v1/{namespace}/{domain}/{entity}/records/{key}"'
    assert f'persistd_http_requests_total{{method="PUT",{route},status="201"}} 2.0' in counts
    lease = 'route="/v1/{namespace}/leases/{name}"'
    assert f'persistd_http_requests_total{{method="PUT",{lease},status="200"}} 1.0' in counts


async def _extra_query(
    request: Request,
    namespace: Namespace,
    domain: Domain,
    entity: Entity,
    key: Key,
    fields: Annotated[str | None, Query()] = None,
) -> Response:
    return Response()


async def _extra_header(
    request: Request,
    namespace: Namespace,
    domain: Domain,
    entity: Entity,
    key: Key,
    x_trace: Annotated[str | None, Header()] = None,
) -> Response:
    return Response()


async def _extra_body(
    request: Request,
    namespace: Namespace,
    domain: Domain,
    entity: Entity,
    key: Key,
    doc: VersionOut,
) -> Response:
    return Response()


async def _dependency(
    request: Request,
    namespace: Namespace,
    domain: Domain,
    entity: Entity,
    key: Key,
    settings: Annotated[Settings, Depends(Settings)],
) -> Response:
    return Response()


@pytest.mark.parametrize("handler", [_extra_query, _extra_header, _extra_body, _dependency])
def test_record_handler_with_a_parameter_the_fast_path_does_not_pass_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, handler: Callable[..., Awaitable[Response]]
) -> None:
    router = APIRouter()
    router.add_api_route(RECORD, handler, methods=["GET"])
    monkeypatch.setattr(records, "router", router)
    with pytest.raises(RuntimeError, match="record fast path"):
        create_app(Settings(database_url="postgresql://unused", auth="off"))


def test_the_shipped_record_handlers_pass_the_check() -> None:
    assert set(record_routes(records.router.routes)) == {"GET", "HEAD", "PUT", "DELETE"}


def test_the_shipped_lease_handlers_pass_the_check() -> None:
    assert set(record_routes(leases.router.routes)) == {"POST", "PUT", "DELETE", "GET"}


async def _unexpected(app: FastAPI) -> httpx.Response:
    # The router's error layer answers, then re-raises for the server to log: not to the client.
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://persistd") as client,
    ):
        return await client.get("/v1/ns/signal/e/records/k")


def test_an_unexpected_error_gets_the_same_problem_on_both_paths(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Store, addr: object) -> None:
        raise RuntimeError("a bug with a secret in its message")

    monkeypatch.setattr(Store, "get", broken)
    answers = [asyncio.run(_unexpected(_app(database_url, fast=f))) for f in (True, False)]
    for resp in answers:
        assert resp.status_code == 500
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert "secret" not in resp.text and "Traceback" not in resp.text
    assert answers[0].json() == answers[1].json()
