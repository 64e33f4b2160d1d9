"""No route ships open: every operation in /openapi.json, with tokens required, answers 401
without a token and 403 with a token of the wrong scope or for another namespace.

The tables below name each operation's scope. An operation missing from them fails the test, so
a new route is added here, with its scope, or to the public allow-list on purpose.
"""

import asyncio
import uuid
from collections.abc import Iterable, Iterator

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route

from persistd.auth import Scope, create_token
from persistd.config import Settings
from persistd.db import asyncpg_dsn
from persistd.main import create_app
from persistd.store import Store
from tests.support import Service

# The documented public routes: health, readiness, metrics, the docs and the schema.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/docs/assets"),  # the docs' static files (a mount)
    ("GET", "/console"),  # the console page: it reads records through the guarded routes
    ("GET", "/console/assets"),  # the console's static files (a mount)
    ("GET", "/v1/_contract"),  # rules and limits, no records (docs/contract.md)
}

# Every guarded operation and the scope it needs.
SCOPES: dict[tuple[str, str], Scope] = {
    ("GET", "/v1"): "read",
    ("GET", "/v1/{namespace}"): "read",
    ("GET", "/v1/{namespace}/{domain}"): "read",
    ("GET", "/v1/{namespace}/{domain}/{entity}/records"): "read",
    ("POST", "/v1/{namespace}/{domain}/{entity}/init"): "read",
    ("POST", "/v1/{namespace}/{domain}/{entity}/batch-get"): "read",
    ("POST", "/v1/{namespace}/{domain}/{entity}/batch-put"): "write",
    ("GET", "/v1/{namespace}/{domain}/{entity}/records/{key}"): "read",
    ("HEAD", "/v1/{namespace}/{domain}/{entity}/records/{key}"): "read",
    ("PUT", "/v1/{namespace}/{domain}/{entity}/records/{key}"): "write",
    ("DELETE", "/v1/{namespace}/{domain}/{entity}/records/{key}"): "write",
    ("GET", "/v1/{namespace}/{domain}/{entity}/records/{key}/history"): "read",
    ("GET", "/v1/{namespace}/changes"): "read",
    ("GET", "/v1/{namespace}/watch"): "read",
    ("GET", "/v1/_watch"): "read",
    ("POST", "/v1/{namespace}/restore"): "admin",
    ("POST", "/v1/{namespace}/leases/{name}"): "write",
    ("PUT", "/v1/{namespace}/leases/{name}"): "write",
    ("DELETE", "/v1/{namespace}/leases/{name}"): "write",
    ("GET", "/v1/{namespace}/leases/{name}"): "read",
    ("POST", "/v1/_leases/renew"): "write",
}

# Operations without a namespace in the path: a token for another namespace may call them,
# and sees only its own namespaces (GET /v1 filters the listing, GET /v1/_watch the stream).
NAMESPACE_FREE = {("GET", "/v1"), ("GET", "/v1/_watch")}

# A valid request body for operations that take one: the answer must not depend on it.
BODIES: dict[str, bytes] = {"PUT": b"1", "POST": b"{}"}
# Operations whose namespaces are in the body, not the path: a body naming the test namespace.
NAMED_IN_BODY = {
    ("POST", "/v1/_leases/renew"): '{{"leases": [{{"namespace": "{namespace}", "name": "bot", '
    '"token": 1}}]}}',
}


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[Service]:
    with Service(database_url, env={"PERSISTD_AUTH": "on"}) as svc:
        yield svc


@pytest.fixture(scope="module")
def namespace() -> str:
    return f"ra{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def tokens(database_url: str, namespace: str) -> dict[str, str]:
    """Tokens valid for `namespace`, one per scope, and an admin token for other namespaces."""

    async def make() -> dict[str, str]:
        store = await Store.open(
            asyncpg_dsn(database_url),
            min_size=0,
            max_size=1,
            acquire_timeout=5,
            statement_timeout=5,
            retry_after=1,
        )
        try:
            return {
                "read": await create_token(store, ["read"], namespace, "route-auth read"),
                "write": await create_token(store, ["write"], namespace, "route-auth write"),
                "admin": await create_token(store, ["admin"], namespace, "route-auth admin"),
                "elsewhere": await create_token(
                    store, ["admin"], f"{namespace}-other-*", "route-auth elsewhere"
                ),
            }
        finally:
            await store.close()

    return asyncio.run(make())


def _operations(schema: dict[str, object]) -> list[tuple[str, str]]:
    paths = schema["paths"]
    assert isinstance(paths, dict)
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


def _url(path: str, namespace: str) -> str:
    values = {"namespace": namespace, "domain": "misc", "entity": "e", "key": "k", "name": "bot"}
    try:
        return path.format(**values)
    except KeyError as exc:
        pytest.fail(f"{path}: no test value for the path parameter {exc}; add one here")


def _call(
    service: Service, method: str, path: str, token: str | None, body: bytes | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = service.url + path
    content = body if body is not None else BODIES.get(method)
    with httpx.stream(method, url, headers=headers, content=content, timeout=10) as r:
        # An event stream (watch) never ends: its status and headers are the answer.
        if not r.headers.get("content-type", "").startswith("text/event-stream"):
            r.read()
        return r


def _code(response: httpx.Response) -> str | None:
    if response.request.method == "HEAD":
        return None  # no body to read the code from
    code = response.json()["code"]
    assert isinstance(code, str)
    return code


def test_every_operation_is_guarded_or_public_on_purpose(
    secured: Service, tokens: dict[str, str], namespace: str
) -> None:
    schema = httpx.get(secured.url + "/openapi.json", timeout=10).json()
    operations = _operations(schema)
    unknown = [op for op in operations if op not in SCOPES and op not in PUBLIC]
    assert not unknown, f"operations with no declared scope (add them to SCOPES): {unknown}"
    checked = 0
    for method, template in operations:
        path = _url(template, namespace)
        if (method, template) in PUBLIC:
            continue
        scope = SCOPES[(method, template)]
        named = NAMED_IN_BODY.get((method, template))
        body = None if named is None else named.format(namespace=namespace).encode()

        anonymous = _call(secured, method, path, None, body)
        assert anonymous.status_code == 401, (method, template, anonymous.text)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert _code(anonymous) in ("unauthorized", None)

        # read and write are independent; admin implies both, so neither suffices for it.
        other = tokens["write" if scope == "read" else "read"]
        wrong_scope = _call(secured, method, path, other, body)
        assert wrong_scope.status_code == 403, (method, template, "scope", wrong_scope.text)
        assert _code(wrong_scope) in ("forbidden", None)

        if (method, template) not in NAMESPACE_FREE:
            elsewhere = _call(secured, method, path, tokens["elsewhere"], body)
            assert elsewhere.status_code == 403, (method, template, "namespace", elsewhere.text)
            assert _code(elsewhere) in ("forbidden", None)

        allowed = _call(secured, method, path, tokens[scope], body)
        assert allowed.status_code not in (401, 403), (method, template, allowed.text)
        checked += 1
    assert checked == len(SCOPES), "an operation in SCOPES is no longer in /openapi.json"


def test_public_routes_answer_without_a_token(secured: Service) -> None:
    mounts = {("GET", "/docs/assets"), ("GET", "/console/assets")}  # folders, not pages
    for method, path in sorted(PUBLIC - mounts):
        response = httpx.request(method, secured.url + path, timeout=10)
        assert response.status_code == 200, (method, path)


def _flat(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router, kept whole
        if inner is None:
            yield route
        else:
            yield from _flat(inner.routes)


def test_routes_hidden_from_the_schema_are_public_on_purpose(database_url: str) -> None:
    # A route left out of /openapi.json would escape the walk above.
    app = create_app(Settings(database_url=database_url, auth="on"))
    documented = set(_operations(app.openapi()))
    for route in _flat(app.routes):
        if isinstance(route, Mount):
            assert ("GET", route.path) in PUBLIC, route.path
            continue
        assert isinstance(route, Route), route
        for method in route.methods or ():
            op = (method, route.path)
            assert op in documented or op in PUBLIC, f"{op} is neither documented nor public"
