"""Bearer tokens: scopes, namespace patterns, revocation, and the auth switch."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from persistd.auth import auth_required, create_token
from persistd.config import Settings
from persistd.db import asyncpg_dsn
from persistd.main import create_app
from persistd.store import Store
from tests.support import ROOT, Service

CACHE_TTL = 0.5


def persistd(
    database_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "persistd.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PERSISTD_DATABASE_URL": database_url, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def new_token(database_url: str, scopes: str, namespace: str) -> str:
    done = persistd(database_url, "token", "create", "--scope", scopes, "--namespace", namespace)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("pd_")
    return token


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth") / "service.log"


@pytest.fixture(scope="module")
def secured(database_url: str, log_file: Path) -> Iterator[Service]:
    """A service on loopback with tokens required (PERSISTD_AUTH=on) and a short cache TTL."""
    env = {
        "PERSISTD_AUTH": "on",
        "PERSISTD_AUTH_CACHE_TTL": str(CACHE_TTL),
        "PERSISTD_LOG_LEVEL": "info",
    }
    with Service(database_url, env=env, log=log_file) as svc:
        yield svc


@pytest.fixture
def prefix() -> str:
    """A namespace prefix of this test's own, for patterns like `<prefix>-*`."""
    return f"a{uuid.uuid4().hex[:8]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_request_without_token_returns_401_with_challenge(secured: Service, ns: str) -> None:
    r = httpx.get(f"{secured.url}/v1/{ns}/misc/e/records/k")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "unauthorized"


BAD_HEADERS = ["Bearer pd_1_nope", "Bearer junk", "Basic dXNlcjpwdw==", "Bearer pd_x_y", "Bearer"]


@pytest.mark.parametrize("header", BAD_HEADERS)
def test_invalid_token_returns_401(secured: Service, ns: str, header: str) -> None:
    r = httpx.get(f"{secured.url}/v1/{ns}/misc/e/records/k", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"


OPEN = ("/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json", "/v1/_contract")


def test_service_endpoints_stay_open(secured: Service) -> None:
    for path in OPEN:
        assert httpx.get(secured.url + path).status_code == 200, path


def test_read_write_token_reads_and_writes_its_namespaces(
    secured: Service, database_url: str, prefix: str
) -> None:
    token = new_token(database_url, "read,write", f"{prefix}-*")
    url = f"{secured.url}/v1/{prefix}-one/misc/e/records/k"
    with httpx.Client(headers=bearer(token)) as http:
        assert http.put(url, json={"n": 1}).status_code == 201
        assert http.get(url).json() == {"n": 1}
        assert http.head(url).status_code == 200
        base = f"{secured.url}/v1/{prefix}-one/misc/e"
        assert http.get(base + "/records").json()["keys"] == ["k"]
        assert http.post(base + "/batch-get", json={"keys": ["k"]}).status_code == 200
        items = {"items": [{"key": "b", "value": 2}]}
        assert http.post(base + "/batch-put", json=items).status_code == 200
        assert http.post(base + "/init", json={"initial": True}).json() == {"keys": 2}
        assert http.delete(url).status_code == 204


def test_token_outside_its_namespace_pattern_returns_403(
    secured: Service, database_url: str, prefix: str
) -> None:
    token = new_token(database_url, "read,write", f"{prefix}-*")
    url = f"{secured.url}/v1/other-{prefix}/misc/e/records/k"
    r = httpx.put(url, json=1, headers=bearer(token))
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    r = httpx.get(f"{secured.url}/v1/other-{prefix}", headers=bearer(token))
    assert r.status_code == 403


def test_read_token_cannot_write(secured: Service, database_url: str, prefix: str) -> None:
    token = new_token(database_url, "read", f"{prefix}-*")
    base = f"{secured.url}/v1/{prefix}-r/misc/e"
    with httpx.Client(headers=bearer(token)) as http:
        assert http.get(base + "/records/k").status_code == 404  # allowed, just absent
        for r in (
            http.put(base + "/records/k", json=1),
            http.delete(base + "/records/k"),
            http.post(base + "/batch-put", json={"items": [{"key": "k", "value": 1}]}),
        ):
            assert r.status_code == 403
            assert r.json()["code"] == "forbidden"


def test_write_only_token_cannot_read(secured: Service, database_url: str, prefix: str) -> None:
    token = new_token(database_url, "write", f"{prefix}-*")
    base = f"{secured.url}/v1/{prefix}-w/misc/e"
    with httpx.Client(headers=bearer(token)) as http:
        assert http.put(base + "/records/k", json=1).status_code == 201
        assert http.get(base + "/records/k").status_code == 403
        assert http.post(base + "/batch-get", json={"keys": ["k"]}).status_code == 403


def test_admin_scope_implies_read_and_write(
    secured: Service, database_url: str, prefix: str
) -> None:
    token = new_token(database_url, "admin", f"{prefix}-*")
    url = f"{secured.url}/v1/{prefix}-adm/misc/e/records/k"
    assert httpx.put(url, json=1, headers=bearer(token)).status_code == 201
    assert httpx.get(url, headers=bearer(token)).json() == 1


def test_namespace_listing_shows_only_the_tokens_namespaces(
    secured: Service, database_url: str, prefix: str
) -> None:
    everything = new_token(database_url, "read,write", "*")
    for ns in (f"{prefix}-a", f"{prefix}-b", f"z{prefix}"):
        url = f"{secured.url}/v1/{ns}/misc/e/records/k"
        assert httpx.put(url, json=1, headers=bearer(everything)).status_code == 201
    narrow = new_token(database_url, "read", f"{prefix}-*")

    def names(token: str) -> list[str]:
        listing = httpx.get(f"{secured.url}/v1", headers=bearer(token)).json()
        return [item["name"] for item in listing["items"]]

    assert names(narrow) == [f"{prefix}-a", f"{prefix}-b"]
    assert {f"{prefix}-a", f"{prefix}-b", f"z{prefix}"} <= set(names(everything))


def test_revoked_token_stops_working_within_the_cache_ttl(
    secured: Service, database_url: str, prefix: str
) -> None:
    token = new_token(database_url, "read,write", f"{prefix}-*")
    url = f"{secured.url}/v1/{prefix}-rev/misc/e/records/k"
    assert httpx.put(url, json=1, headers=bearer(token)).status_code == 201
    token_id = token.split("_")[1]
    listed = persistd(database_url, "token", "list")
    assert listed.returncode == 0
    assert any(line.split("\t")[0] == token_id for line in listed.stdout.splitlines())
    assert token.split("_")[2] not in listed.stdout  # the secret is never shown again
    revoked = persistd(database_url, "token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + CACHE_TTL + 2
    while httpx.get(url, headers=bearer(token)).status_code == 200:
        assert time.monotonic() < deadline, "the revoked token still works after the TTL"
        time.sleep(0.1)
    assert httpx.get(url, headers=bearer(token)).status_code == 401
    assert persistd(database_url, "token", "revoke", token_id).returncode == 1


def test_tampered_secret_is_rejected(secured: Service, database_url: str, prefix: str) -> None:
    token = new_token(database_url, "read", f"{prefix}-*")
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    r = httpx.get(f"{secured.url}/v1/{prefix}-t/misc/e/records/k", headers=bearer(tampered))
    assert r.status_code == 401


def test_tokens_are_stored_hashed(database_url: str) -> None:
    async def create() -> str:
        store = await Store.open(
            asyncpg_dsn(database_url),
            min_size=0,
            max_size=1,
            acquire_timeout=5,
            statement_timeout=5,
            retry_after=1,
        )
        try:
            return await create_token(store, ["read"], "x-*", "hash-check")
        finally:
            await store.close()

    token = asyncio.run(create())

    async def stored() -> list[str]:
        import asyncpg

        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            row = await conn.fetchrow(
                "SELECT * FROM tokens WHERE id = $1", int(token.split("_")[1])
            )
        finally:
            await conn.close()
        return [str(v) for v in row.values()]

    secret = token.split("_", 2)[2]
    assert not any(secret in value for value in asyncio.run(stored()))


def test_unknown_scope_is_refused_by_the_cli(database_url: str) -> None:
    done = persistd(database_url, "token", "create", "--scope", "read,root")
    assert done.returncode == 2
    assert "unknown scope 'root'" in done.stderr


def test_tokens_never_appear_in_the_logs(
    secured: Service, database_url: str, prefix: str, log_file: Path
) -> None:
    token = new_token(database_url, "read", f"{prefix}-*")
    httpx.get(f"{secured.url}/v1/{prefix}-log/misc/e/records/k", headers=bearer(token))
    httpx.get(f"{secured.url}/v1/{prefix}-log/misc/e/records/k", headers=bearer(token + "x"))
    time.sleep(0.2)
    logged = log_file.read_text()
    assert f"/v1/{prefix}-log/misc/e/records/k" in logged  # the access log is there ...
    assert token.split("_", 2)[2] not in logged  # ... without the token


# ---- the switch ----


@pytest.mark.parametrize(
    ("mode", "host", "required"),
    [
        ("auto", "127.0.0.1", False),
        ("auto", "localhost", False),
        ("auto", "::1", False),
        ("auto", "0.0.0.0", True),
        ("auto", "10.1.2.3", True),
        ("on", "127.0.0.1", True),
        ("off", "127.0.0.1", False),
    ],
)
def test_auto_mode_requires_tokens_off_loopback(mode: str, host: str, required: bool) -> None:
    assert auth_required(mode, host) is required


def test_auth_off_on_a_public_host_refuses_to_start() -> None:
    with pytest.raises(RuntimeError, match="PERSISTD_AUTH=off is refused"):
        create_app(Settings(auth="off", host="0.0.0.0", database_url="postgresql://x/y"))


def test_serve_with_auth_off_on_a_public_host_exits_with_a_clear_error(database_url: str) -> None:
    done = persistd(
        database_url, "serve", "--host", "0.0.0.0", "--no-migrate", env={"PERSISTD_AUTH": "off"}
    )
    assert done.returncode == 2
    assert "PERSISTD_AUTH=off is refused" in done.stderr


def test_default_loopback_service_needs_no_token(http: httpx.Client, ns: str) -> None:
    assert http.put(f"/v1/{ns}/misc/e/records/k", json=1).status_code == 201
