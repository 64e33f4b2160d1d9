"""HTTP layer: leases: acquire, renew, release and read a named lock with its fencing token."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from .. import body
from ..auth import require
from ..errors import InvalidRequest, LeaseLost
from ..names import ascii_int, check_name, check_slug
from ..store import Lease
from .common import Namespace, json_response, store_of, validated
from .schemas import AcquireRequest, LeaseOut, RenewRequest, errors_doc, request_schema

router = APIRouter()
log = logging.getLogger("persistd.leases")

LEASE = "/v1/{namespace}/leases/{name}"
Name = Annotated[str, Path(description="lease name: the same slug rule as a namespace")]
_BODY_LIMIT = 4096


def _names(namespace: str, name: str) -> tuple[str, str]:
    return check_slug("namespace", namespace), check_slug("lease name", name)


def _changed(request: Request, namespace: str, lease: Lease, event: str) -> Response:
    fields = {"namespace": namespace, "lease": lease.name, "holder": lease.holder,
              "token": lease.token}  # fmt: skip
    if event == "renewed":
        # Routine (every third of a TTL, per bot): debug level only, and no metric.
        log.debug("lease renewed", extra={"fields": fields})
    else:
        request.app.state.metrics.lease_events.labels(event).inc()
        log.info(f"lease {event}", extra={"fields": fields})
    return _lease_json(lease)


@contextmanager
def _loss_logged(namespace: str, name: str) -> Iterator[None]:
    try:
        yield
    except LeaseLost as exc:
        fields = {"namespace": namespace, "lease": name, "detail": exc.detail}
        log.info("lease lost", extra={"fields": fields})
        raise


def _lease_json(lease: Lease) -> Response:
    return json_response(
        {
            "name": lease.name,
            "holder": lease.holder,
            "token": lease.token,
            "ttl_ms": lease.ttl_ms,
            "expires_at": lease.expires_at.isoformat(),
            "held": lease.held,
        }
    )


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
