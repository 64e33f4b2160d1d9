"""HTTP layer: routes parse the request, call the store, and map the result to a response."""

import base64
import binascii
from email.utils import format_datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from app import body
from app.auth import require, visible
from app.config import Settings
from app.errors import InvalidName, InvalidRequest, PayloadTooLarge, Unavailable
from app.names import check_name, check_slug, decode_segment
from app.shapes import check_value
from app.store import ANY_VERSION, Address, Collection, Item, Meta, Store

router = APIRouter()

JSON = "application/json"
_ns = Annotated[str, Path(description="namespace: one bot, account or deployment")]
_domain = Annotated[str, Path(description="domain: signal, risk, schedule, partial, ...")]
_entity = Annotated[str, Path(description="entity name, percent-encoded as one path segment")]
_key = Annotated[str, Path(description="record key, percent-encoded as one path segment")]


# ---- request and response models (they also document the API in /docs) ----


class InitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    initial: bool = True


class BatchGetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[str]


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    value: Any = Field(description="any JSON value, null included")


class BatchPutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[BatchItem]
    mode: Literal["upsert", "insert_if_absent"] = "upsert"


class VersionOut(BaseModel):
    version: int


class CountOut(BaseModel):
    keys: int


class ItemOut(BaseModel):
    key: str
    value: Any
    version: int
    updated_at: str


class KeysPage(BaseModel):
    keys: list[str] | None = None
    items: list[ItemOut] | None = None
    next_cursor: str | None = None


class BatchGetOut(BaseModel):
    items: list[ItemOut]
    missing: list[str]


class WrittenOut(BaseModel):
    key: str
    version: int | None = Field(description="null when insert_if_absent found the key present")
    written: bool


class BatchPutOut(BaseModel):
    items: list[WrittenOut]


class Count(BaseModel):
    name: str
    records: int


class Listing(BaseModel):
    items: list[Count]


_PROBLEM: dict[str, Any] = {"application/problem+json": {}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid name, JSON or request", "content": _PROBLEM},
    401: {"description": "missing, invalid or revoked bearer token", "content": _PROBLEM},
    403: {"description": "the token's scope or namespace does not cover this", "content": _PROBLEM},
    503: {"description": "database unavailable; retry after Retry-After", "content": _PROBLEM},
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        404: "no record at this address",
        412: "the If-Match or If-None-Match condition failed",
        413: "the value is over the size limit",
        415: "the body is not application/json",
        422: "the value does not fit the domain's shape",
    }
    out = dict(_ERRORS)
    for code in codes:
        out[code] = {"description": described[code], "content": _PROBLEM}
    return out


# ---- helpers: one place each for addresses, conditions and response shapes ----


def _store(request: Request) -> Store:
    store: Store | None = request.app.state.store
    if store is None:
        raise Unavailable("the database is not configured yet")
    return store


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _collection(namespace: str, domain: str, entity: str) -> Collection:
    return Collection(
        check_slug("namespace", namespace),
        check_slug("domain", domain),
        decode_segment("entity", entity),
    )


def _address(namespace: str, domain: str, entity: str, key: str) -> Address:
    coll = _collection(namespace, domain, entity)
    return Address(coll.namespace, coll.domain, coll.entity, decode_segment("key", key))


def _parse_if_match(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    header = header.strip()
    if header == "*":
        return ANY_VERSION
    # isdigit() alone accepts non-ASCII digits such as "²", which int() rejects.
    digits = header[1:-1]
    quoted = len(header) > 2 and header[0] == header[-1] == '"'
    if quoted and digits.isascii() and digits.isdigit():
        version = int(digits)
        if version < 2**63:
            return version
    raise InvalidRequest(f'If-Match must be "*" or one version in quotes, like "3"; got {header!r}')


def _parse_create_only(request: Request) -> bool:
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    raise InvalidRequest(f'If-None-Match supports only "*" (create only); got {header!r}')


def _meta_headers(meta: Meta | Item) -> dict[str, str]:
    return {
        "ETag": f'"{meta.version}"',
        "Last-Modified": format_datetime(meta.updated_at, usegmt=True),
    }


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, headers=headers, media_type=JSON)


def _item(item: Item) -> dict[str, Any]:
    return {
        "key": item.key,
        "value": orjson.Fragment(item.value),
        "version": item.version,
        "updated_at": item.updated_at.isoformat(),
    }


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        return check_name("cursor", raw.decode("utf-8"))
    except (binascii.Error, ValueError, InvalidName):
        raise InvalidRequest("the cursor is not one this service issued") from None


def _validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidRequest(problems) from None


def _inline_defs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline_defs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_defs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_defs(v, defs) for v in node]
    return node


def _schema(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    # In OpenAPI a "#/..." reference points into the whole document, where a model's own
    # $defs are not found, so nested models are inlined.
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": required,
            "content": {JSON: {"schema": _inline_defs(schema, defs)}},
        }
    }


# ---- records ----

RECORD = "/v1/{namespace}/{domain}/{entity}/records/{key}"
ENTITY = "/v1/{namespace}/{domain}/{entity}"


@router.get(
    RECORD,
    summary="Read a record",
    tags=["records"],
    responses={
        200: {"content": {JSON: {}}, "description": "the stored JSON value"},
        **_errors(404),
    },
)
async def get_record(
    request: Request, namespace: _ns, domain: _domain, entity: _entity, key: _key
) -> Response:
    addr = _address(namespace, domain, entity, key)
    await require(request, "read", addr.namespace)
    item = await _store(request).get(addr)
    return Response(item.value.encode(), headers=_meta_headers(item), media_type=JSON)


@router.head(RECORD, summary="Check that a record exists", tags=["records"], responses=_errors(404))
async def head_record(
    request: Request, namespace: _ns, domain: _domain, entity: _entity, key: _key
) -> Response:
    addr = _address(namespace, domain, entity, key)
    await require(request, "read", addr.namespace)
    meta = await _store(request).head(addr)
    return Response(headers=_meta_headers(meta), media_type=JSON)


@router.put(
    RECORD,
    summary="Write a record (whole-document replace)",
    tags=["records"],
    status_code=200,
    response_model=VersionOut,
    responses={201: {"model": VersionOut, "description": "created"}, **_errors(412, 413, 415, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"description": "any JSON value, null included"}}},
        }
    },
)
async def put_record(
    request: Request, namespace: _ns, domain: _domain, entity: _entity, key: _key
) -> Response:
    addr = _address(namespace, domain, entity, key)
    await require(request, "write", addr.namespace)
    if_match = _parse_if_match(request)
    create_only = _parse_create_only(request)
    if if_match is not None and create_only:
        raise InvalidRequest("If-Match and If-None-Match cannot be combined")
    raw = await body.read_body(request, _settings(request).max_value_bytes)
    check_value(addr.domain, body.parse_json(raw))
    meta = await _store(request).put(addr, raw.decode(), if_match=if_match, create_only=create_only)
    status = 201 if meta.version == 1 else 200
    return _json({"version": meta.version}, status, _meta_headers(meta))


@router.delete(
    RECORD,
    summary="Delete a record",
    tags=["records"],
    status_code=204,
    responses=_errors(404, 412),
)
async def delete_record(
    request: Request, namespace: _ns, domain: _domain, entity: _entity, key: _key
) -> Response:
    addr = _address(namespace, domain, entity, key)
    await require(request, "write", addr.namespace)
    await _store(request).delete(addr, if_match=_parse_if_match(request))
    return Response(status_code=204)


# ---- collections ----


@router.get(
    ENTITY + "/records",
    summary="List keys (or records) of an entity",
    tags=["collections"],
    response_model=KeysPage,
    response_model_exclude_none=True,
    responses=_errors(),
)
async def list_records(
    request: Request,
    namespace: _ns,
    domain: _domain,
    entity: _entity,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    values: Annotated[bool, Query(description="return {key, value, version, updated_at}")] = False,
    newest: Annotated[
        int | None,
        Query(ge=1, le=10000, description="the N most recently written records, oldest first"),
    ] = None,
) -> Response:
    coll = _collection(namespace, domain, entity)
    await require(request, "read", coll.namespace)
    store = _store(request)
    if newest is not None:
        if cursor is not None:
            raise InvalidRequest("newest cannot be combined with cursor")
        return _json({"items": [_item(i) for i in await store.newest(coll, newest)]})
    after = None if cursor is None else _decode_cursor(cursor)
    # One extra row tells whether another page exists, so a full page never ends silently.
    if values:
        items = await store.items(coll, after, limit + 1)
        page: dict[str, Any] = {"items": [_item(i) for i in items[:limit]]}
        keys = [i.key for i in items]
    else:
        keys = await store.keys(coll, after, limit + 1)
        page = {"keys": keys[:limit]}
    page["next_cursor"] = _encode_cursor(keys[limit - 1]) if len(keys) > limit else None
    return _json(page)


_INIT_BODY_LIMIT = 1024


@router.post(
    ENTITY + "/init",
    summary="Initialise access to an entity (the adapter's waitForInit)",
    tags=["collections"],
    response_model=CountOut,
    responses=_errors(413, 415),
    openapi_extra=_schema(InitRequest, required=False),
)
async def init_entity(
    request: Request, namespace: _ns, domain: _domain, entity: _entity
) -> Response:
    coll = _collection(namespace, domain, entity)
    await require(request, "read", coll.namespace)
    raw = await body.read_body(request, _INIT_BODY_LIMIT)
    if raw.strip():
        _validated(InitRequest, body.parse_json(raw))
    return _json({"keys": await _store(request).count(coll)})


B = TypeVar("B", BatchGetRequest, BatchPutRequest)


async def _batch_body(request: Request, model: type[B]) -> tuple[bytes, B]:
    """A batch request's raw body and its validated model, within the batch limits."""
    settings = _settings(request)
    raw = await body.read_body(request, settings.max_batch_bytes)
    req: B = _validated(model, body.parse_json(raw))
    count = len(req.keys) if isinstance(req, BatchGetRequest) else len(req.items)
    if count > settings.max_batch_items:
        raise PayloadTooLarge(f"at most {settings.max_batch_items} entries per batch")
    return raw, req


@router.post(
    ENTITY + "/batch-get",
    summary="Read many records in one round trip",
    tags=["collections"],
    response_model=BatchGetOut,
    responses=_errors(413, 415),
    openapi_extra=_schema(BatchGetRequest),
)
async def batch_get(request: Request, namespace: _ns, domain: _domain, entity: _entity) -> Response:
    coll = _collection(namespace, domain, entity)
    await require(request, "read", coll.namespace)
    _, req = await _batch_body(request, BatchGetRequest)
    keys = [check_name(f"keys[{i}]", k) for i, k in enumerate(req.keys)]
    found = await _store(request).batch_get(coll, keys)
    return _json(
        {
            "items": [_item(found[k]) for k in keys if k in found],
            "missing": [k for k in keys if k not in found],
        }
    )


@router.post(
    ENTITY + "/batch-put",
    summary="Write many records atomically (all or none)",
    tags=["collections"],
    response_model=BatchPutOut,
    responses=_errors(413, 415, 422),
    openapi_extra=_schema(BatchPutRequest),
)
async def batch_put(request: Request, namespace: _ns, domain: _domain, entity: _entity) -> Response:
    coll = _collection(namespace, domain, entity)
    await require(request, "write", coll.namespace)
    raw, req = await _batch_body(request, BatchPutRequest)
    settings = _settings(request)
    seen: set[str] = set()
    for i, item in enumerate(req.items):
        check_name(f"items[{i}].key", item.key)
        if item.key in seen:
            raise InvalidRequest(f"items[{i}].key {item.key!r} appears twice in the batch")
        seen.add(item.key)
        if len(orjson.dumps(item.value)) > settings.max_value_bytes:
            raise PayloadTooLarge(
                f"items[{i}].value is over the limit of {settings.max_value_bytes} bytes"
            )
        check_value(coll.domain, item.value, item.key)
    keys = [item.key for item in req.items]
    written = await _store(request).batch_put(
        coll, keys, raw.decode(), insert_only=req.mode == "insert_if_absent"
    )
    return _json(
        {
            "items": [
                {"key": w.key, "version": w.version, "written": w.version is not None}
                for w in written
            ]
        }
    )


# ---- inspection ----


def _listing(rows: list[tuple[str, int]]) -> Response:
    return _json({"items": [{"name": name, "records": count} for name, count in rows]})


@router.get(
    "/v1", summary="Namespaces with record counts", tags=["inspection"], response_model=Listing
)
async def list_namespaces(request: Request) -> Response:
    # Each token sees the namespaces its pattern matches; with auth off, all of them.
    principal = await require(request, "read")
    return _listing(visible(principal, await _store(request).namespaces()))


@router.get(
    "/v1/{namespace}",
    summary="Domains of a namespace with record counts",
    tags=["inspection"],
    response_model=Listing,
    responses=_errors(),
)
async def list_domains(request: Request, namespace: _ns) -> Response:
    ns = check_slug("namespace", namespace)
    await require(request, "read", ns)
    return _listing(await _store(request).domains(ns))


@router.get(
    "/v1/{namespace}/{domain}",
    summary="Entities of a domain with record counts",
    tags=["inspection"],
    response_model=Listing,
    responses=_errors(),
)
async def list_entities(request: Request, namespace: _ns, domain: _domain) -> Response:
    ns, dom = check_slug("namespace", namespace), check_slug("domain", domain)
    await require(request, "read", ns)
    return _listing(await _store(request).entities(ns, dom))


# ---- health ----


@router.get("/healthz", summary="The process is up", tags=["service"])
async def healthz() -> Response:
    return _json({"status": "ok"})


@router.get("/readyz", summary="The database is reachable and migrated", tags=["service"])
async def readyz(request: Request) -> Response:
    expected: set[str] = request.app.state.head_revisions
    current = await _store(request).revisions()
    if current != expected:
        raise Unavailable(
            f"the database schema is at {sorted(current) or 'no revision'}, "
            f"expected {sorted(expected)}; run `persistd migrate`"
        )
    return _json({"status": "ready", "revision": sorted(current)})
