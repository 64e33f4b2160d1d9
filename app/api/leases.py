"""HTTP layer: leases: acquire, renew, release and read a named lock with its fencing token."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from .. import body
from ..auth import require, require_namespaces
from ..contract import MAX_RENEW_LEASES
from ..errors import InvalidRequest, LeaseLost
from ..names import ascii_int, check_name, check_slug
from ..store import Lease
from .common import Namespace, json_response, store_of, validated
from .schemas import (
    AcquireRequest,
    LeaseOut,
    RenewLeasesOut,
    RenewLeasesRequest,
    RenewRequest,
    errors_doc,
    request_schema,
)

router = APIRouter()
log = logging.getLogger("persistd.leases")

LEASE = "/v1/{namespace}/leases/{name}"
Name = Annotated[str, Path(description="lease name: the same slug rule as a namespace")]
_BODY_LIMIT = 4096
_BATCH_LIMIT = 256 * MAX_RENEW_LEASES  # an item is under 200 bytes: two slugs and two numbers


def _names(namespace: str, name: str) -> tuple[str, str]:
    return check_slug("namespace", namespace), check_slug("lease name", name)


def _changed(request: Request, namespace: str, lease: Lease, event: str) -> Response:
    _event(request, namespace, lease, event)
    return _lease_json(lease)


def _event(request: Request, namespace: str, lease: Lease, event: str) -> None:
    fields = {"namespace": namespace, "lease": lease.name, "holder": lease.holder,
              "token": lease.token}  # fmt: skip
    if event == "renewed":
        # Routine (every third of a TTL, per bot): debug level only, and no metric.
        log.debug("lease renewed", extra={"fields": fields})
    else:
        request.app.state.metrics.lease_events.labels(event).inc()
        log.info(f"lease {event}", extra={"fields": fields})


def _log_lost(namespace: str, name: str, exc: LeaseLost) -> None:
    fields = {"namespace": namespace, "lease": name, "detail": exc.detail}
    log.info("lease lost", extra={"fields": fields})


@contextmanager
def _loss_logged(namespace: str, name: str) -> Iterator[None]:
    try:
        yield
    except LeaseLost as exc:
        _log_lost(namespace, name, exc)
        raise


def _lease_body(lease: Lease) -> dict[str, Any]:
    return {
        "name": lease.name,
        "holder": lease.holder,
        "token": lease.token,
        "ttl_ms": lease.ttl_ms,
        "expires_at": lease.expires_at.isoformat(),
        "held": lease.held,
    }


def _lease_json(lease: Lease) -> Response:
    return json_response(_lease_body(lease))


@router.post(
    LEASE,
    summary="Acquire a lease (a new fencing token)",
    tags=["leases"],
    response_model=LeaseOut,
    responses=errors_doc(409, 413, 415),
    openapi_extra=request_schema(AcquireRequest),
)
async def acquire_lease(request: Request, namespace: Namespace, name: Name) -> Response:
    ns, lease_name = _names(namespace, name)
    await require(request, "write", ns)
    req = validated(AcquireRequest, body.parse_json(await body.read_body(request, _BODY_LIMIT)))
    holder = check_name("holder", req.holder)
    lease = await store_of(request).acquire_lease(ns, lease_name, holder, req.ttl_ms)
    return _changed(request, ns, lease, "acquired")


@router.put(
    LEASE,
    summary="Renew a lease held with this token",
    tags=["leases"],
    response_model=LeaseOut,
    responses=errors_doc(404, 409, 413, 415),
    openapi_extra=request_schema(RenewRequest),
)
async def renew_lease(request: Request, namespace: Namespace, name: Name) -> Response:
    ns, lease_name = _names(namespace, name)
    await require(request, "write", ns)
    req = validated(RenewRequest, body.parse_json(await body.read_body(request, _BODY_LIMIT)))
    with _loss_logged(ns, lease_name):
        lease = await store_of(request).renew_lease(ns, lease_name, req.token, req.ttl_ms)
    return _changed(request, ns, lease, "renewed")


# A namespace starts with a letter or digit, so "_leases" can never be one.
@router.post(
    "/v1/_leases/renew",
    summary="Renew many leases (of any namespaces the token may write) in one request",
    tags=["leases"],
    response_model=RenewLeasesOut,
    responses=errors_doc(413, 415),
    openapi_extra=request_schema(RenewLeasesRequest),
)
async def renew_leases(request: Request) -> Response:
    principal = await require(request, "write")
    raw = await body.read_body(request, _BATCH_LIMIT)
    req = validated(RenewLeasesRequest, body.parse_json(raw))
    items = [
        (check_slug(f"leases[{i}].namespace", item.namespace),
         check_slug(f"leases[{i}].name", item.name), item.token, item.ttl_ms)
        for i, item in enumerate(req.leases)
    ]  # fmt: skip
    seen: dict[tuple[str, str], int] = {}
    for i, (ns, name, _, _) in enumerate(items):
        if (first := seen.setdefault((ns, name), i)) != i:
            raise InvalidRequest(f"leases[{i}] repeats leases[{first}]: lease {ns}/{name}")
    require_namespaces(principal, (item[0] for item in items))
    results = await store_of(request).renew_leases(items)
    out = []
    for (ns, name, _, _), result in zip(items, results, strict=True):
        if isinstance(result, Lease):
            _event(request, ns, result, "renewed")
            out.append({"namespace": ns, **_lease_body(result)})
            continue
        if isinstance(result, LeaseLost):
            request.app.state.metrics.lease_events.labels("lost").inc()
            _log_lost(ns, name, result)
        error = {"code": result.code, "detail": result.detail}
        out.append({"namespace": ns, "name": name, "error": error})
    return json_response({"leases": out})


# Read by the handler from the request, so that the route fits the fast path (app/fast.py).
_TOKEN_PARAMETER = {
    "name": "token",
    "in": "query",
    "required": True,
    "description": "the current fencing token",
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
}


def _token_param(request: Request) -> int:
    text = request.query_params.get("token")
    token = None if text is None else ascii_int(text)
    if token is None or not 0 < token < 2**63:
        raise InvalidRequest(f"token must be the current fencing token, 1 to 2^63-1; got {text!r}")
    return token


@router.delete(
    LEASE,
    summary="Release a lease held with this token",
    tags=["leases"],
    response_model=LeaseOut,
    responses=errors_doc(404, 409),
    openapi_extra={"parameters": [_TOKEN_PARAMETER]},
)
async def release_lease(request: Request, namespace: Namespace, name: Name) -> Response:
    ns, lease_name = _names(namespace, name)
    await require(request, "write", ns)
    token = _token_param(request)
    with _loss_logged(ns, lease_name):
        lease = await store_of(request).release_lease(ns, lease_name, token)
    return _changed(request, ns, lease, "released")


@router.get(
    LEASE,
    summary="Read a lease: holder, token and expiry",
    tags=["leases"],
    response_model=LeaseOut,
    responses=errors_doc(404),
)
async def read_lease(request: Request, namespace: Namespace, name: Name) -> Response:
    ns, lease_name = _names(namespace, name)
    await require(request, "read", ns)
    return _lease_json(await store_of(request).lease(ns, lease_name))
