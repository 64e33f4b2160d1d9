"""HTTP layer: an entity's records as a collection: listing, init and batches."""

from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from .. import body
from ..auth import require
from ..contract import MAX_NEWEST, MAX_PAGE
from ..errors import InvalidRequest, PayloadTooLarge
from ..names import check_name, parse_time
from ..shapes import check_write
from ..store import history as log
from .common import (
    ENTITY,
    Domain,
    Entity,
    Namespace,
    collection_of,
    decode_cursor,
    encode_cursor,
    item_json,
    json_response,
    parse_fence,
    settings_of,
    store_of,
    validated,
    writer_of,
)
from .schemas import (
    FENCE_PARAMETER,
    BatchGetOut,
    BatchGetRequest,
    BatchPutOut,
    BatchPutRequest,
    CountOut,
    InitRequest,
    KeysPage,
    errors_doc,
    request_schema,
)

router = APIRouter()


@router.get(
    ENTITY + "/records",
    summary="List keys (or records) of an entity",
    tags=["collections"],
    response_model=KeysPage,
    response_model_exclude_none=True,
    responses=errors_doc(),
)
async def list_records(
    request: Request,
    namespace: Namespace,
    domain: Domain,
    entity: Entity,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    values: Annotated[bool, Query(description="return {key, value, version, updated_at}")] = False,
    newest: Annotated[
        int | None,
        Query(ge=1, le=MAX_NEWEST, description="the N most recently written records, oldest first"),
    ] = None,
    at: Annotated[
        str | None, Query(description="the records as they stood at this RFC 3339 time")
    ] = None,
) -> Response:
    coll = collection_of(namespace, domain, entity)
    await require(request, "read", coll.namespace)
    store = store_of(request)
    if newest is not None:
        if cursor is not None or at is not None:
            raise InvalidRequest("newest cannot be combined with cursor or at")
        return json_response({"items": [item_json(i) for i in await store.newest(coll, newest)]})
    after = None if cursor is None else decode_cursor(cursor)
    # One extra row tells whether another page exists, so a full page never ends silently.
    page: dict[str, Any]
    if at is not None:
        items = await log.at(store, coll, parse_time("at", at), after, limit + 1)
        keys = [i.key for i in items]
        page = (
            {"items": [item_json(i) for i in items[:limit]]} if values else {"keys": keys[:limit]}
        )
    elif values:
        items = await store.items(coll, after, limit + 1)
        page = {"items": [item_json(i) for i in items[:limit]]}
        keys = [i.key for i in items]
    else:
        keys = await store.keys(coll, after, limit + 1)
        page = {"keys": keys[:limit]}
    page["next_cursor"] = encode_cursor(keys[limit - 1]) if len(keys) > limit else None
    return json_response(page)


_INIT_BODY_LIMIT = 1024


@router.post(
    ENTITY + "/init",
    summary="Initialise access to an entity (the adapter's waitForInit)",
    tags=["collections"],
    response_model=CountOut,
    responses=errors_doc(413, 415),
    openapi_extra=request_schema(InitRequest, required=False),
)
async def init_entity(
    request: Request, namespace: Namespace, domain: Domain, entity: Entity
) -> Response:
    coll = collection_of(namespace, domain, entity)
    await require(request, "read", coll.namespace)
    raw = await body.read_body(request, _INIT_BODY_LIMIT)
    if raw.strip():
        validated(InitRequest, body.parse_json(raw))
    return json_response({"keys": await store_of(request).count(coll)})


B = TypeVar("B", BatchGetRequest, BatchPutRequest)


async def _batch_body(request: Request, model: type[B]) -> tuple[bytes, B]:
    """A batch request's raw body and its validated model, within the batch limits."""
    settings = settings_of(request)
    raw = await body.read_body(request, settings.max_batch_bytes)
    req: B = validated(model, body.parse_json(raw))
    count = len(req.keys) if isinstance(req, BatchGetRequest) else len(req.items)
    if count > settings.max_batch_items:
        raise PayloadTooLarge(f"at most {settings.max_batch_items} entries per batch")
    return raw, req


@router.post(
    ENTITY + "/batch-get",
    summary="Read many records in one round trip",
    tags=["collections"],
    response_model=BatchGetOut,
    responses=errors_doc(413, 415),
    openapi_extra=request_schema(BatchGetRequest),
)
async def batch_get(
    request: Request, namespace: Namespace, domain: Domain, entity: Entity
) -> Response:
    coll = collection_of(namespace, domain, entity)
    await require(request, "read", coll.namespace)
    _, req = await _batch_body(request, BatchGetRequest)
    keys = [check_name(f"keys[{i}]", k) for i, k in enumerate(req.keys)]
    found = await store_of(request).batch_get(coll, keys)
    return json_response(
        {
            "items": [item_json(found[k]) for k in keys if k in found],
            "missing": [k for k in keys if k not in found],
        }
    )


@router.post(
    ENTITY + "/batch-put",
    summary="Write many records atomically (all or none)",
    tags=["collections"],
    response_model=BatchPutOut,
    responses=errors_doc(409, 413, 415, 422),
    openapi_extra={**request_schema(BatchPutRequest), **FENCE_PARAMETER},
)
async def batch_put(
    request: Request, namespace: Namespace, domain: Domain, entity: Entity
) -> Response:
    coll = collection_of(namespace, domain, entity)
    principal = await require(request, "write", coll.namespace)
    raw, req = await _batch_body(request, BatchPutRequest)
    fence = parse_fence(request)  # after the body, as for PUT
    settings = settings_of(request)
    seen: set[str] = set()
    for i, item in enumerate(req.items):
        check_name(f"items[{i}].key", item.key)
        if item.key in seen:
            raise InvalidRequest(f"items[{i}].key {item.key!r} appears twice in the batch")
        seen.add(item.key)
        size = len(orjson.dumps(item.value))
        check_write(coll.domain, item.value, size, settings.max_value_bytes, item.key)
    keys = [item.key for item in req.items]
    written = await store_of(request).batch_put(
        coll,
        keys,
        raw.decode(),
        insert_only=req.mode == "insert_if_absent",
        fence=fence,
        writer=writer_of(principal),
    )
    return json_response(
        {
            "items": [
                {"key": w.key, "version": w.version, "written": w.version is not None}
                for w in written
            ]
        }
    )
