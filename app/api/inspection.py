"""HTTP layer: what is stored (namespaces, domains, entities) and the health probes."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..auth import require, visible
from ..errors import Unavailable
from ..names import check_slug
from .common import Domain, Namespace, json_response, store_of
from .schemas import Listing, errors_doc

router = APIRouter()

# ---- inspection ----


def _listing(rows: list[tuple[str, int]]) -> Response:
    return json_response({"items": [{"name": name, "records": count} for name, count in rows]})


@router.get(
    "/v1", summary="Namespaces with record counts", tags=["inspection"], response_model=Listing
)
async def list_namespaces(request: Request) -> Response:
    # Each token sees the namespaces its pattern matches; with auth off, all of them.
    principal = await require(request, "read")
    return _listing(visible(principal, await store_of(request).namespaces()))


@router.get(
    "/v1/{namespace}",
    summary="Domains of a namespace with record counts",
    tags=["inspection"],
    response_model=Listing,
    responses=errors_doc(),
)
async def list_domains(request: Request, namespace: Namespace) -> Response:
    ns = check_slug("namespace", namespace)
    await require(request, "read", ns)
    return _listing(await store_of(request).domains(ns))


@router.get(
    "/v1/{namespace}/{domain}",
    summary="Entities of a domain with record counts",
    tags=["inspection"],
    response_model=Listing,
    responses=errors_doc(),
)
async def list_entities(request: Request, namespace: Namespace, domain: Domain) -> Response:
    ns, dom = check_slug("namespace", namespace), check_slug("domain", domain)
    await require(request, "read", ns)
    return _listing(await store_of(request).entities(ns, dom))


# ---- health ----


@router.get("/healthz", summary="The process is up", tags=["service"])
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    summary="The database is reachable, migrated and (if required) synchronously replicated",
    tags=["service"],
)
async def readyz(request: Request) -> Response:
    expected: set[str] = request.app.state.head_revisions
    current = await store_of(request).revisions()
    if current != expected:
        raise Unavailable(
            f"the database schema is at {sorted(current) or 'no revision'}, "
            f"expected {sorted(expected)}; run `persistd migrate`"
        )
    # Durability made visible: is an acknowledged write on a second machine too?
    replication = await store_of(request).replication()
    standby = {
        "synchronous": replication.synchronous,
        "names": replication.standby_names,
        "synchronous_commit": replication.synchronous_commit,
        "attached": replication.attached,
    }
    if request.app.state.settings.require_sync_standby and not replication.synchronous:
        raise Unavailable(
            "no synchronous standby is attached to the primary "
            f"(synchronous_standby_names={replication.standby_names!r}, "
            f"synchronous_commit={replication.synchronous_commit}, "
            f"attached={replication.attached}) and PERSISTD_REQUIRE_SYNC_STANDBY is on"
        )
    return json_response(
        {"status": "ready", "revision": sorted(current), "synchronous_standby": standby}
    )
