"""Metrics, request ids, structured logs, and readiness that follows the database."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from persistd.db import migrate
from tests.support import Service, embedded_server, scratch_database


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in the text format (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith("#") or not line.startswith(name + ("{" if labels else " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_route_template_and_status(http: httpx.Client, ns: str) -> None:
    route = "/v1/{namespace}/{domain}/{entity}/records/{key}"
    before = http.get("/metrics").text
    http.put(f"/v1/{ns}/misc/e/records/a", json=1)
    http.get(f"/v1/{ns}/misc/e/records/a")
    http.get(f"/v1/{ns}/misc/e/records/missing")
    after = http.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    name = "persistd_http_requests_total"
    for method, status in (("PUT", "201"), ("GET", "200"), ("GET", "404")):
        labels = {"route": route, "method": method, "status": status}
        assert sample(text, name, **labels) >= sample(before, name, **labels) + 1
    assert f"/v1/{ns}/" not in text  # templates, never raw paths
    hist = "persistd_http_request_duration_seconds_count"
    assert sample(text, hist, route=route, method="GET") >= 2
    assert sample(text, "persistd_errors_total", code="not_found") >= 1
    assert sample(text, "persistd_db_pool_size") >= 1
    assert "persistd_db_pool_in_use" in text


def test_error_codes_are_counted(http: httpx.Client, ns: str) -> None:
    before = sample(http.get("/metrics").text, "persistd_errors_total", code="invalid_json")
    r = http.put(
        f"/v1/{ns}/misc/e/records/k", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.json()["code"] == "invalid_json"
    after = sample(http.get("/metrics").text, "persistd_errors_total", code="invalid_json")
    assert after == before + 1


def test_request_id_is_echoed_or_generated(http: httpx.Client) -> None:
    r = http.get("/healthz", headers={"X-Request-ID": "bot-7.req-42"})
    assert r.headers["x-request-id"] == "bot-7.req-42"
    generated = http.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    assert generated != http.get("/healthz").headers["x-request-id"]
    # Something unsafe for a log line or header is replaced, not echoed.
    unsafe = http.get("/healthz", headers={"X-Request-ID": "a b\tc" + "x" * 200})
    assert unsafe.headers["x-request-id"] != "a b\tc" + "x" * 200


@pytest.fixture(scope="module")
def logged(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The log file of a service logging JSON at info level."""
    log = tmp_path_factory.mktemp("obs") / "service.log"
    env = {"PERSISTD_LOG_LEVEL": "info", "PERSISTD_LOG_FORMAT": "json"}
    with Service(database_url, env=env, log=log) as svc:
        with httpx.Client(base_url=svc.url) as client:
            client.get("/v1/obs/misc/e/records/k", headers={"X-Request-ID": "trace-me-1"})
        time.sleep(0.3)
        yield log


def test_access_log_is_json_with_the_request_id(logged: Path) -> None:
    lines = [json.loads(line) for line in logged.read_text().splitlines() if line.startswith("{")]
    hits = [entry for entry in lines if entry.get("request_id") == "trace-me-1"]
    assert hits, lines
    entry = hits[0]
    assert entry["msg"] == "request"
    assert entry["status"] == 404
    assert entry["code"] == "not_found"
    assert entry["route"] == "/v1/{namespace}/{domain}/{entity}/records/{key}"
    assert entry["method"] == "GET"
    assert isinstance(entry["duration_ms"], float)


def test_text_log_format(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "text.log"
    env = {"PERSISTD_LOG_LEVEL": "info", "PERSISTD_LOG_FORMAT": "text"}
    with Service(database_url, env=env, log=log) as svc:
        httpx.get(svc.url + "/healthz", headers={"X-Request-ID": "plain-1"})
        time.sleep(0.3)
    text = log.read_text()
    assert "persistd.access request" in text
    assert "/healthz" in text
    assert not any(line.startswith("{") for line in text.splitlines())


# ---- readiness ----


def wait_status(url: str, status: int, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(url, timeout=10)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


@pytest.mark.embedded
def test_readyz_is_503_while_the_database_is_down(tmp_path: Path) -> None:
    """A PostgreSQL of this test's own is stopped under a running service."""
    env = {"PERSISTD_POOL_TIMEOUT": "1", "PERSISTD_STATEMENT_TIMEOUT": "2"}
    with embedded_server(tmp_path / "pg") as server:
        url: str = server.url
        migrate(url)
        with Service(url, env=env) as svc:
            assert httpx.get(svc.url + "/readyz").status_code == 200
            server.stop("immediate")
            down = wait_status(svc.url + "/readyz", 503)
            assert down.status_code == 503
            assert down.json()["code"] == "unavailable"
            assert "retry-after" in down.headers
            assert httpx.get(svc.url + "/healthz").status_code == 200  # the process is up
            started = time.monotonic()
            assert httpx.get(svc.url + "/readyz", timeout=10).status_code == 503
            assert time.monotonic() - started < 5  # answered, not hanging


def test_readyz_is_503_while_migrations_are_behind(database_url: str) -> None:
    with (
        scratch_database(database_url, revision="0001") as url,
        Service(url, ready_path="/healthz") as svc,
    ):
        r = httpx.get(svc.url + "/readyz")
        assert r.status_code == 503
        assert "persistd migrate" in r.json()["detail"]
        migrate(url)
        assert wait_status(svc.url + "/readyz", 200).status_code == 200
