"""HTTP layer: history, point-in-time reads, the change feed, restore and watch."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from .. import body
from ..auth import require, require_namespaces
from ..errors import InvalidRequest
from ..names import ascii_int, check_name, check_slug
from ..store import Address, Item
from ..store import history as log
from ..watch import Hub, Namespaces, change_json
from .common import (
    ENTITY,
    Domain,
    Entity,
    Key,
    Namespace,
    address_of,
    decode_cursor,
    encode_cursor,
    json_response,
    meta_headers,
    store_of,
    validated,
    writer_of,
)
from .schemas import JSON, errors_doc, request_schema

OnlyDomain = Annotated[str | None, Query(description="only this domain")]
OnlyEntity = Annotated[str | None, Query(description="only this entity")]

router = APIRouter()

MAX_SEQ = log.MAX_SEQ
_RESTORE_BODY_LIMIT = 4096


class HistoryEntry(BaseModel):
    seq: int
    op: Literal["put", "delete"]
    version: int
    at: str
    token_id: int | None
    value: Any = Field(None, description="with values=true; null for a delete")


class HistoryPage(BaseModel):
    items: list[HistoryEntry]
    next_cursor: str | None


class ChangeOut(BaseModel):
    seq: int
    namespace: str
    domain: str
    entity: str
    key: str
    version: int
    op: Literal["put", "delete"]
    value: Any
    at: str
    token_id: int | None


class ChangesPage(BaseModel):
    items: list[ChangeOut]
    next_since: int = Field(description="pass as since= for the next page (the last seq seen)")


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: datetime = Field(description="RFC 3339 time with an offset")
    domain: str | None = None
    entity: str | None = None
    dry_run: bool = False


class PlannedOut(BaseModel):
    domain: str
    entity: str
    key: str
    op: Literal["put", "delete"]
    value: Any


class RestoreOut(BaseModel):
    puts: int
    deletes: int
    dry_run: bool
    changes: list[PlannedOut] | None = Field(
        None, description="dry run: the changes it would make (the first 1000)"
    )


def parse_seq(name: str, text: str) -> int:
    number = ascii_int(text.strip())
    if number is None or number > MAX_SEQ:
        raise InvalidRequest(f"{name} must be a sequence number (0 to 2^63-1); got {text!r}")
    return number


def version_param(request: Request) -> int | None:
    """`?version=N` of a record GET, read here because the fast path calls the handler as is."""
    text = request.query_params.get("version")
    if text is None:
        return None
    number = ascii_int(text)
    if number is None or not 1 <= number <= MAX_SEQ:
        raise InvalidRequest(f"version must be a positive integer; got {text!r}")
    return number


VERSION_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "version",
            "in": "query",
            "required": False,
            "description": "that version from the history (404 never existed, 410 pruned)",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
        }
    ]
}


async def read_version(request: Request, addr: Address, number: int) -> Response:
    item: Item = await log.version(store_of(request), addr, number)
    return Response(item.value.encode(), headers=meta_headers(item), media_type=JSON)


def _time(value: datetime) -> str:
    return value.isoformat()


@router.get(
    ENTITY + "/records/{key}/history",
    summary="A record's versions, newest first",
    tags=["history"],
    response_model=HistoryPage,
    responses=errors_doc(409),
)
async def record_history(
    request: Request,
    namespace: Namespace,
    domain: Domain,
    entity: Entity,
    key: Key,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    values: Annotated[bool, Query(description="include each version's value")] = False,
) -> Response:
    addr = address_of(namespace, domain, entity, key)
    await require(request, "read", addr.namespace)
    before = None if cursor is None else parse_seq("cursor", decode_cursor(cursor))
    entries = await log.history(store_of(request), addr, before, limit + 1, values)
    items = [
        {
            "seq": e.seq,
            "op": e.op,
            "version": e.version,
            "at": _time(e.at),
            "token_id": e.token_id,
            **({"value": None if e.value is None else orjson.Fragment(e.value)} if values else {}),
        }
        for e in entries[:limit]
    ]
    more = len(entries) > limit
    return json_response(
        {
            "items": items,
            "next_cursor": encode_cursor(str(entries[limit - 1].seq)) if more else None,
        }
    )


def _scope(domain: str | None, entity: str | None) -> tuple[str | None, str | None]:
    return (
        None if domain is None else check_slug("domain", domain),
        None if entity is None else check_name("entity", entity),
    )


@router.get(
    "/v1/{namespace}/changes",
    summary="Changes in sequence order (the catch-up feed)",
    tags=["history"],
    response_model=ChangesPage,
    responses=errors_doc(),
)
async def list_changes(
    request: Request,
    namespace: Namespace,
    since: Annotated[int, Query(ge=0, le=MAX_SEQ, description="the last seq already seen")] = 0,
    domain: OnlyDomain = None,
    entity: OnlyEntity = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 100,
) -> Response:
    ns = check_slug("namespace", namespace)
    await require(request, "read", ns)
    dom, ent = _scope(domain, entity)
    page = await log.changes(store_of(request), ns, since, limit, dom, ent)
    return json_response(
        {"items": [change_json(c) for c in page], "next_since": page[-1].seq if page else since}
    )


@router.post(
    "/v1/{namespace}/restore",
    summary="Write the state at a time back as new versions (admin)",
    tags=["history"],
    response_model=RestoreOut,
    responses=errors_doc(409, 410, 413, 415),
    openapi_extra=request_schema(RestoreRequest),
)
async def restore(request: Request, namespace: Namespace) -> Response:
    ns = check_slug("namespace", namespace)
    principal = await require(request, "admin", ns)
    raw = await body.read_body(request, _RESTORE_BODY_LIMIT)
    req: RestoreRequest = validated(RestoreRequest, body.parse_json(raw))
    if req.at.tzinfo is None:
        raise InvalidRequest("at must be an RFC 3339 time with an offset")
    dom, ent = _scope(req.domain, req.entity)
    done = await log.restore(
        store_of(request),
        ns,
        req.at,
        domain=dom,
        entity=ent,
        dry_run=req.dry_run,
        writer=writer_of(principal),
    )
    out: dict[str, Any] = {"puts": done.puts, "deletes": done.deletes, "dry_run": req.dry_run}
    if req.dry_run:
        out["changes"] = [
            {
                "domain": p.domain,
                "entity": p.entity,
                "key": p.key,
                "op": p.op,
                "value": None if p.value is None else orjson.Fragment(p.value),
            }
            for p in done.planned
        ]
    return json_response(out)


_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
    **errors_doc(),
}
Since = Annotated[
    int | None, Query(ge=0, le=MAX_SEQ, description="start after this seq (default: from now)")
]
MaxSeconds = Annotated[
    float | None, Query(gt=0, le=86400, description="end the stream after this long")
]
LastEventId = Annotated[str | None, Header(description="resume after this seq (wins over since)")]


# Before /v1/{namespace} (inspection): a namespace starts with a letter or digit, so "_watch"
# can never be one.
@router.get(
    "/v1/_watch",
    summary="Server-Sent Events of every namespace the token may read, in one stream",
    tags=["history"],
    responses=_STREAM_DOC,
)
async def watch_all(
    request: Request,
    namespaces: Annotated[
        str | None,
        Query(description="only these namespaces, comma-separated (default: every one)"),
    ] = None,
    domain: OnlyDomain = None,
    entity: OnlyEntity = None,
    since: Since = None,
    max_seconds: MaxSeconds = None,
    last_event_id: LastEventId = None,
) -> Response:
    principal = await require(request, "read")
    names = None
    if namespaces is not None:
        names = frozenset(check_slug("namespace", n) for n in namespaces.split(","))
        require_namespaces(principal, names)
    # Without a list, the token's pattern filters the stream as GET /v1 filters the listing.
    filter_ = Namespaces(names, principal)
    return await _event_stream(request, filter_, domain, entity, since, max_seconds, last_event_id)


@router.get(
    "/v1/{namespace}/watch",
    summary="Server-Sent Events: one event per change, id = seq",
    tags=["history"],
    responses=_STREAM_DOC,
)
async def watch(
    request: Request,
    namespace: Namespace,
    domain: OnlyDomain = None,
    entity: OnlyEntity = None,
    since: Since = None,
    max_seconds: MaxSeconds = None,
    last_event_id: LastEventId = None,
) -> Response:
    ns = check_slug("namespace", namespace)
    await require(request, "read", ns)
    filter_ = Namespaces(frozenset((ns,)))
    return await _event_stream(request, filter_, domain, entity, since, max_seconds, last_event_id)


async def _event_stream(
    request: Request,
    namespaces: Namespaces,
    domain: str | None,
    entity: str | None,
    since: int | None,
    max_seconds: float | None,
    last_event_id: str | None,
) -> Response:
    dom, ent = _scope(domain, entity)
    start = since if last_event_id is None else parse_seq("Last-Event-ID", last_event_id)
    hub: Hub = request.app.state.watch
    await hub.admit()
    stream = hub.stream(namespaces, dom, ent, start, request.receive)
    if max_seconds is not None:
        stream = _bounded(stream, max_seconds)
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _bounded(stream: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    deadline = asyncio.get_running_loop().time() + seconds
    iterator = aiter(stream)
    try:
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            try:
                yield await asyncio.wait_for(anext(iterator), left)
            except (TimeoutError, StopAsyncIteration):
                return
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]
