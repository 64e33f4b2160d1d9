"""HTTP layer: read, check, write and delete one record."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from .. import body
from ..auth import require
from ..errors import InvalidRequest
from ..shapes import check_write
from .common import (
    ENTITY,
    Domain,
    Entity,
    Key,
    Namespace,
    address_of,
    json_response,
    meta_headers,
    parse_create_only,
    parse_fence,
    parse_if_match,
    settings_of,
    store_of,
    writer_of,
)
from .history import VERSION_DOC, read_version, version_param
from .schemas import FENCE_PARAMETER, JSON, VersionOut, errors_doc

router = APIRouter()

RECORD = ENTITY + "/records/{key}"


@router.get(
    RECORD,
    summary="Read a record",
    tags=["records"],
    responses={
        200: {"content": {JSON: {}}, "description": "the stored JSON value"},
        **errors_doc(404, 409, 410),
    },
    openapi_extra=VERSION_DOC,
)
async def get_record(
    request: Request, namespace: Namespace, domain: Domain, entity: Entity, key: Key
) -> Response:
    addr = address_of(namespace, domain, entity, key)
    await require(request, "read", addr.namespace)
    version = version_param(request)
    if version is not None:
        return await read_version(request, addr, version)
    item = await store_of(request).get(addr)
    return Response(item.value.encode(), headers=meta_headers(item), media_type=JSON)


@router.head(
    RECORD, summary="Check that a record exists", tags=["records"], responses=errors_doc(404)
)
async def head_record(
    request: Request, namespace: Namespace, domain: Domain, entity: Entity, key: Key
) -> Response:
    addr = address_of(namespace, domain, entity, key)
    await require(request, "read", addr.namespace)
    meta = await store_of(request).head(addr)
    return Response(headers=meta_headers(meta), media_type=JSON)


@router.put(
    RECORD,
    summary="Write a record (whole-document replace)",
    tags=["records"],
    status_code=200,
    response_model=VersionOut,
    responses={
        201: {"model": VersionOut, "description": "created"},
        **errors_doc(409, 412, 413, 415, 422),
    },
    openapi_extra={
        **FENCE_PARAMETER,
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"description": "any JSON value, null included"}}},
        },
    },
)
async def put_record(
    request: Request, namespace: Namespace, domain: Domain, entity: Entity, key: Key
) -> Response:
    addr = address_of(namespace, domain, entity, key)
    principal = await require(request, "write", addr.namespace)
    if_match = parse_if_match(request)
    create_only = parse_create_only(request)
    if if_match is not None and create_only:
        raise InvalidRequest("If-Match and If-None-Match cannot be combined")
    limit = settings_of(request).max_value_bytes
    raw = await body.read_body(request, limit)
    check_write(addr.domain, body.parse_json(raw), len(raw), limit)
    # After the body is read: a refused request leaves its connection ready for the next one.
    fence = parse_fence(request)
    meta = await store_of(request).put(
        addr,
        raw.decode(),
        if_match=if_match,
        create_only=create_only,
        fence=fence,
        writer=writer_of(principal),
    )
    status = 201 if meta.version == 1 else 200
    return json_response({"version": meta.version}, status, meta_headers(meta))


@router.delete(
    RECORD,
    summary="Delete a record",
    tags=["records"],
    status_code=204,
    responses=errors_doc(404, 409, 412),
    openapi_extra=FENCE_PARAMETER,
)
async def delete_record(
    request: Request, namespace: Namespace, domain: Domain, entity: Entity, key: Key
) -> Response:
    addr = address_of(namespace, domain, entity, key)
    principal = await require(request, "write", addr.namespace)
    if_match, fence = parse_if_match(request), parse_fence(request)
    await store_of(request).delete(
        addr, if_match=if_match, fence=fence, writer=writer_of(principal)
    )
    return Response(status_code=204)
