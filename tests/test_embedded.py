"""The zero-setup default: `persistd serve` on an embedded PostgreSQL; outages give 503."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from persistd.db import head_revisions, migrate
from persistd.embedded import free_port
from tests.support import ROOT, Service, embedded_server

pytestmark = pytest.mark.embedded


def _serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """The README's run command, exactly: scripts/serve (embedded PostgreSQL by default)."""
    env = {k: v for k, v in os.environ.items() if "DATABASE_URL" not in k}
    cmd = ["scripts/serve", "--port", str(port), "--data-dir", str(data_dir)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def _round_trip_signal(url: str, row: dict[str, object] | None) -> object:
    """Write (when `row` is given) and read a signal through the Python client's seed adapter."""
    script = f"""
import asyncio, json
from persistd_client.adapters import PersistBase, PersistSignalAdapter
async def main():
    PersistSignalAdapter.use_persist_signal_adapter(PersistBase)
    row = {row!r}
    if row is not None:
        await PersistSignalAdapter.write_signal_data(row, "BTCUSDT", "my-strategy")
    print(json.dumps(await PersistSignalAdapter.read_signal_data("BTCUSDT", "my-strategy")))
asyncio.run(main())
"""
    env = {**os.environ, "PERSISTD_URL": url}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"persistd serve exited with {proc.returncode}"
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("persistd serve did not become ready")


def _postgres_running(data_dir: Path) -> bool:
    return (data_dir / "pgdata" / "postmaster.pid").exists()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    data_dir, port = tmp_path / "data", free_port()
    yield data_dir, port
    if _postgres_running(data_dir):  # a failed test must not leave a server behind
        from persistd.embedded import EmbeddedPostgres

        EmbeddedPostgres(data_dir).stop("immediate")


def test_serve_without_database_url_runs_embedded_and_keeps_data_across_restarts(
    served: tuple[Path, int],
) -> None:
    data_dir, port = served
    url = f"http://127.0.0.1:{port}"
    signal_row = {
        "id": "s1", "position": "long", "priceOpen": 1, "priceTakeProfit": 2, "priceStopLoss": 0.5,
    }  # fmt: skip
    proc = _serve(data_dir, port)
    try:
        _wait_ready(url, proc)
        assert _round_trip_signal(url, signal_row) == signal_row
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert not _postgres_running(data_dir), "stopping the service must stop its PostgreSQL"

    proc = _serve(data_dir, port)
    try:
        _wait_ready(url, proc)
        assert _round_trip_signal(url, None) == signal_row
        record = f"{url}/v1/default/signal/BTCUSDT_my-strategy/records/BTCUSDT"
        assert httpx.get(record).json() == signal_row
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    assert not _postgres_running(data_dir)


def test_database_outage_gives_503_with_retry_after_then_recovers(tmp_path: Path) -> None:
    with embedded_server(tmp_path / "pg") as server:
        db_url: str = server.url
        migrate(db_url)
        env = {"PERSISTD_POOL_TIMEOUT": "2", "PERSISTD_STATEMENT_TIMEOUT": "2"}
        with Service(db_url, env=env) as svc, httpx.Client(base_url=svc.url, timeout=30) as client:
            record = "/v1/default/misc/e/records/k"
            assert client.put(record, json=1).status_code == 201
            server.stop("fast")
            for call in (lambda: client.get(record), lambda: client.put(record, json=2)):
                started = time.monotonic()
                resp = call()
                assert time.monotonic() - started < 5
                assert resp.status_code == 503
                assert resp.headers["content-type"] == "application/problem+json"
                assert resp.json()["code"] == "unavailable"
                assert int(resp.headers["retry-after"]) >= 1
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200

            server.start()
            assert server.url == db_url
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the service did not recover"
                time.sleep(0.2)
            assert client.get(record).json() == 1


def test_migrations_downgrade_and_upgrade_cleanly(tmp_path: Path) -> None:
    with embedded_server(tmp_path / "pg") as server:
        db_url: str = server.url
        migrate(db_url)
        from alembic import command

        from persistd.db import alembic_config

        command.downgrade(alembic_config(db_url), "base")
        migrate(db_url)
        command.check(alembic_config(db_url))
        assert head_revisions()
