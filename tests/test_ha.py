"""High availability: PostgreSQL failover, a demoted primary, instances behind haproxy, PgBouncer.

Every test runs PostgreSQL servers of its own (Debian's binaries, temporary folders, free loopback
ports), never the machine's shared one. Writes are classified as in tests/test_faults.py (acked,
rejected, uncertain: tests/support.py Load) and checked against what is stored afterwards.
Measured times are printed; docs/ha.md quotes them.
"""

import asyncio
import configparser
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.ext.asyncio import create_async_engine

from persistd.db import asyncpg_dsn, hosts, migrate, sqlalchemy_url
from persistd.embedded import free_port
from tests.support import ROOT, Attempt, Load, Service, postgres_processes

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# PostgreSQL and PgBouncer refuse to run as root: as root, they run as Debian's postgres user.
RUN_AS = "postgres" if os.geteuid() == 0 else None

POOL_TIMEOUT = 1.0
STATEMENT_TIMEOUT = 2.0
REQUEST_BOUND = POOL_TIMEOUT + STATEMENT_TIMEOUT + 1.0
HA_ENV = {
    "PERSISTD_POOL_TIMEOUT": str(POOL_TIMEOUT),
    "PERSISTD_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT),
    "PERSISTD_RETRY_AFTER": "1",
    "PERSISTD_POOL_MAX_SIZE": "8",
}
# Only the process is killed, not the machine: what PostgreSQL wrote survives in the page cache,
# so fsync buys nothing here and would only slow the shared test machine down.
PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
wal_level = replica
max_wal_senders = 4
wal_keep_size = '64MB'
synchronous_commit = on
"""


def run(cmd: list[str], timeout: float = 60) -> str:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, user=RUN_AS, check=False
    )
    assert done.returncode == 0, f"{cmd[0]} failed: {done.stderr or done.stdout}"
    return done.stdout


def sql(url: str, query: str) -> object:
    """The first value of the first row (None without rows), over a connection of its own."""
    out = subprocess.run(
        [str(PG_BIN / "psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", query],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    first = out.stdout.split("\n", 1)[0]
    return first or None


class Node:
    """One PostgreSQL server of the test's own, in `root/name`."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.pgdata = root / name
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def init_primary(self) -> "Node":
        run([str(PG_BIN / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"])  # fmt: skip
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(PRIMARY_CONF)
        return self.start()

    def init_standby(self, primary: "Node", via: int | None = None) -> "Node":
        """A streaming standby of `primary` (pg_basebackup -R), named after this node;
        `via`: the port of a Link to stream through instead of the primary's own."""
        run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
             "-U", "postgres", "-D", str(self.pgdata), "-R", "-X", "stream", "-c", "fast",
             "--no-sync"])  # fmt: skip
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(f"cluster_name = '{self.name}'\n")  # its application_name upstream
        if via is not None:
            with (self.pgdata / "postgresql.auto.conf").open("a") as conf:
                conf.write(f"primary_conninfo = 'host=127.0.0.1 port={via} user=postgres'\n")
        return self.start()

    def start(self) -> "Node":
        run([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.pgdata / "log"),
             "-o", f"-p {self.port}", "-w", "-t", "60", "start"])  # fmt: skip
        return self

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once: the host is gone."""
        for pid in postgres_processes(self.pgdata):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def promote(self) -> None:
        run([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60", "promote"])

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            subprocess.run(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                user=RUN_AS,
                check=False,
            )

    def wait_for_standby(self, state: str, timeout: float = 30) -> None:
        """Until a standby streams from this primary in `state` (sync, async)."""
        deadline = time.monotonic() + timeout
        query = f"SELECT count(*) FROM pg_stat_replication WHERE sync_state = '{state}'"
        while sql(self.url, query) != "1":
            assert time.monotonic() < deadline, f"no {state} standby attached"
            time.sleep(0.1)


class Link:
    """A TCP relay standing for the network between a standby and its primary.

    stall() stops forwarding what the primary sends (a congested or partitioned network: the
    standby falls behind); cut() closes everything, and what was held back is lost with it.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._cut = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._cut.is_set():
            try:
                down, _ = self._listener.accept()
                up = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                return
            self._sockets += [down, up]
            threading.Thread(target=self._pump, args=(up, down, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(down, up, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_primary: bool) -> None:
        try:
            while True:
                if from_primary:
                    while not self._flowing.wait(0.05):
                        if self._cut.is_set():
                            return
                data = src.recv(65536)
                if not data or self._cut.is_set():
                    return
                dst.sendall(data)
        except OSError:
            return
        finally:
            with suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def stall(self) -> None:
        self._flowing.clear()

    def cut(self) -> None:
        self._cut.set()
        for sock in self._sockets:
            with suppress(OSError):
                sock.close()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A temporary folder the servers' own user may write to."""
    path = Path(tempfile.mkdtemp(prefix="persistd-ha-"))
    if RUN_AS:
        shutil.chown(path, RUN_AS, RUN_AS)
    try:
        yield path
    finally:
        for child in sorted(path.iterdir()):
            if (child / "PG_VERSION").exists():
                Node(path, child.name).stop()
        shutil.rmtree(path, ignore_errors=True)


def cluster(workdir: Path, standby_names: str, link: bool = False) -> tuple[Node, Node, Link]:
    """A migrated primary and a streaming standby of it, linked directly or through a Link."""
    primary = Node(workdir, "a").init_primary()
    relay = Link(primary.port)
    standby = Node(workdir, "b").init_standby(primary, via=relay.port if link else None)
    # Set once the standby exists: before, every commit would wait for it.
    sql(primary.url, f"ALTER SYSTEM SET synchronous_standby_names = '{standby_names}'")
    sql(primary.url, "SELECT pg_reload_conf()")
    primary.wait_for_standby("sync" if standby_names else "async")
    # Through the migration path's own multi-host URL handling (SQLAlchemy reads it differently).
    migrate(multi_host(standby, primary))
    return primary, standby, relay


def multi_host(*nodes: Node) -> str:
    """One URL naming every node; persistd adds target_session_attrs=read-write itself."""
    return f"postgresql://postgres@{','.join(n.address for n in nodes)}/postgres"


# ---- load beyond single PUTs: batches and If-Match counters ----


def batch_writer(load: Load, stop: threading.Event, writer: int, size: int = 4) -> None:
    """Atomic batch-puts of its own keys, recorded per key like the single PUTs of `load`."""
    keys = [f"b{writer}-k{i}" for i in range(size)]
    url = f"/v1/{load.ns}/misc/faults/batch-put"
    with httpx.Client(timeout=load.bound + 15) as client:
        while not stop.is_set():
            seq, started = load.next_seq(), time.monotonic()
            items = [{"key": k, "value": {"writer": -writer, "seq": seq}} for k in keys]
            status, versions = None, {}
            try:
                resp = client.post(load.base_url() + url, json={"items": items})
            except httpx.ConnectError:
                outcome = "rejected"
            except httpx.TransportError:
                outcome = "uncertain"
            else:
                status = resp.status_code
                if status == 200:
                    outcome = "acked"
                    versions = {w["key"]: int(w["version"]) for w in resp.json()["items"]}
                elif status == 503 or status in load.proxied:
                    outcome = "uncertain"
                else:
                    outcome = "rejected"
                    load.errors.append(f"batch: unexpected {status}: {resp.text[:300]}")
            seconds = time.monotonic() - started
            for key in keys:
                load.record(Attempt(key, seq, outcome, status, versions.get(key), started, seconds))
            if outcome != "acked":
                time.sleep(random.uniform(0.02, 0.1))


@dataclass
class Counters:
    """If-Match increments of shared counters, each one resolved to done or not done.

    A counter's document keeps the ids of its last increments, so a client whose PUT got no
    answer (503, a dropped connection) can tell whether it was applied: it retries the same
    conditional PUT, and on 412 reads whether its id is there. Nothing is counted twice.
    """

    base_url: Callable[[], str]
    ns: str
    counters: int = 3
    done: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    resolved: int = 0  # increments applied although their own PUT got no answer
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def path(self, n: int) -> str:
        return f"/v1/{self.ns}/risk-counters/shared/records/c{n}"

    def create(self) -> None:
        with httpx.Client(timeout=10) as client:
            for n in range(self.counters):
                body = {"count": 0, "ops": []}
                resp = client.put(self.base_url() + self.path(n), json=body)
                assert resp.status_code == 201, resp.text

    def _read(self, client: httpx.Client, path: str, stop: Callable[[], bool]) -> httpx.Response:
        while True:
            try:
                got = client.get(self.base_url() + path)
                if got.status_code == 200:
                    return got
                if got.status_code not in (502, 503, 504):
                    self.errors.append(f"GET {got.status_code} {got.text[:200]}")
            except httpx.TransportError:
                pass
            if stop():
                raise TimeoutError("the counter stayed unreadable")
            time.sleep(0.05)

    def run(self, client_id: int, stop: threading.Event, deadline: float) -> None:
        try:
            self._increments(client_id, stop, deadline)
        except Exception as exc:  # a thread's failure must reach the test
            self.errors.append(f"client {client_id}: {exc!r}")

    def _increments(self, client_id: int, stop: threading.Event, deadline: float) -> None:
        rng = random.Random(client_id)
        give_up = lambda: time.monotonic() > deadline  # noqa: E731
        with httpx.Client(timeout=REQUEST_BOUND + 15) as client:
            op = 0
            while not stop.is_set():
                op += 1
                path = self.path(rng.randrange(self.counters))
                me = f"{client_id}-{op}"
                got = self._read(client, path, give_up)
                while True:  # one increment, until it is known to be done or not done
                    doc, etag = got.json(), got.headers["etag"]
                    body = {"count": doc["count"] + 1, "ops": (doc["ops"] + [me])[-64:]}
                    answered = False
                    while not answered:  # the same conditional PUT, until it gets an answer
                        try:
                            put = client.put(
                                self.base_url() + path, json=body, headers={"If-Match": etag}
                            )
                            answered = put.status_code in (200, 412)
                            if not answered and put.status_code not in (502, 503, 504):
                                self.errors.append(f"PUT {put.status_code} {put.text[:200]}")
                                return
                        except httpx.TransportError:
                            pass
                        if not answered:
                            assert not give_up(), "a counter PUT never got an answer"
                            time.sleep(0.05)
                    if put.status_code == 200:
                        with self._lock:
                            self.done[path] += 1
                        break
                    got = self._read(client, path, give_up)
                    if me in got.json()["ops"]:  # an earlier try of this PUT was applied
                        with self._lock:
                            self.done[path] += 1
                            self.resolved += 1
                        break
                    # Someone else's increment came first: compute this one again on top of it.

    def verify(self, client: httpx.Client) -> None:
        for n in range(self.counters):
            path = self.path(n)
            got = client.get(path)
            assert got.status_code == 200, got.text
            count, version = got.json()["count"], int(got.headers["etag"].strip('"'))
            assert count == self.done[path], f"{path}: holds {count}, done {self.done[path]}"
            assert version == count + 1, (path, version, count)


@dataclass
class Traffic:
    """16 concurrent clients: 8 single-PUT writers, 4 batch writers, 4 counter incrementers."""

    base_url: Callable[[], str]
    ns: str
    proxied: frozenset[int] = frozenset()
    load: Load = field(init=False)
    counters: Counters = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.load = Load(
            self.base_url, self.ns, writers=8, bound=REQUEST_BOUND, proxied=self.proxied
        )
        self.counters = Counters(self.base_url, self.ns)

    def start(self) -> "Traffic":
        self.counters.create()
        self.load.start()
        deadline = time.monotonic() + 90
        for n in range(4):
            for target, args in (
                (batch_writer, (self.load, self._stop, n)),
                (self.counters.run, (n, self._stop, deadline)),
            ):
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.load.stop()
        for thread in self._threads:
            thread.join(REQUEST_BOUND + 20)
            assert not thread.is_alive(), "a client is stuck"

    def check(self, client: httpx.Client) -> dict[str, int]:
        assert not self.load.errors, self.load.errors[:5]
        assert not self.counters.errors, self.counters.errors[:5]
        statuses = {a.status for a in self.load.attempts()}
        assert statuses <= {200, 201, 503, None} | self.proxied, statuses
        counts = self.load.verify(client)
        self.counters.verify(client)
        counts["increments"] = sum(self.counters.done.values())
        counts["increments resolved after no answer"] = self.counters.resolved
        return counts


def first_ack_after(load: Load, moment: float) -> float:
    """Seconds from `moment` to the first write acknowledged that was sent after it."""
    done = [
        a.started + a.seconds
        for a in load.attempts()
        if a.outcome == "acked" and a.started >= moment
    ]
    assert done, "no write was acknowledged after the fault"
    return min(done) - moment


def wait_for_acks(load: Load, after: float, count: int = 30, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while load.acked_after(after) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert load.acked_after(after) >= count, "writes did not resume by themselves"


def readiness(svc: Service) -> httpx.Response:
    return httpx.get(svc.url + "/readyz", timeout=10)


# ---- URLs naming several hosts ----


def test_multi_host_urls_target_the_primary_in_every_form_persistd_uses() -> None:
    url = "postgresql://u:p%40w@db-a:5433,db-b/persistd?sslmode=disable"
    dsn = asyncpg_dsn(url)
    assert dsn == url + "&target_session_attrs=read-write"
    assert asyncpg_dsn(url + "&target_session_attrs=primary").endswith("=primary")
    assert asyncpg_dsn("postgresql://u@db/p") == "postgresql://u@db/p"  # one host: unchanged
    assert hosts(dsn) == [("db-a", 5433), ("db-b", 5432)]
    engine = create_async_engine(sqlalchemy_url(url))
    try:
        _, params = engine.dialect.create_connect_args(engine.url)
    finally:
        asyncio.run(engine.dispose())
    assert params["host"] == ["db-a", "db-b"] and params["port"] == [5433, 5432]
    assert params["password"] == "p@w" and params["database"] == "persistd"
    assert params["target_session_attrs"] == "read-write"


# ---- 1. synchronous standby: failover loses nothing acknowledged ----


def test_failover_to_a_synchronous_standby_loses_no_acknowledged_write(
    workdir: Path, ns: str
) -> None:
    bound = time.monotonic() + 90
    primary, standby, _ = cluster(workdir, standby_names="*")
    log = workdir / "persistd.log"
    env = {**HA_ENV, "PERSISTD_REQUIRE_SYNC_STANDBY": "true", "PERSISTD_LOG_LEVEL": "info"}
    with Service(multi_host(primary, standby), env=env, log=log) as svc:
        ready = readiness(svc).json()["synchronous_standby"]
        assert ready == {"synchronous": True, "names": "*", "synchronous_commit": "on",
                         "attached": 1}  # fmt: skip
        assert "synchronous standby: yes" in log.read_text()
        traffic = Traffic(lambda: svc.url, ns).start()
        try:
            time.sleep(2.0)
            assert traffic.load.acked_after(0) > 0
            primary.kill()
            killed = time.monotonic()
            time.sleep(1.0)  # no primary at all for a while, as before a failover manager acts
            promoting = time.monotonic()
            standby.promote()
            promoted = time.monotonic()
            wait_for_acks(traffic.load, promoted)
            time.sleep(0.5)
        finally:
            traffic.stop()
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            counts = traffic.check(client)
        # Without a primary every request answers 503 at once (none hangs, none is a 500); a
        # request sent just before the promotion may end on the promoted standby.
        during = [a for a in traffic.load.attempts() if killed + 0.1 < a.started < promoting]
        statuses = {a.status for a in during}
        assert during and statuses <= {503, 200, 201}, statuses
        assert all(a.started + a.seconds > promoting for a in during if a.outcome == "acked")
        slow = [a for a in traffic.load.attempts() if a.seconds > REQUEST_BOUND]
        assert not slow, f"{len(slow)} requests took longer than {REQUEST_BOUND} s: {slow[:3]}"
        # The promoted standby has no standby of its own: readiness says so, as required.
        assert readiness(svc).status_code == 503
        slowest = max(a.seconds for a in during)
        print(
            f"synchronous failover: 503 for {promoting - killed:.1f} s without a primary (slowest "
            f"{slowest:.2f} s), promotion {promoted - promoting:.2f} s, promotion -> first "
            f"acknowledged write {first_ack_after(traffic.load, promoting):.2f} s; {counts}"
        )
        assert counts["acked"] > 0 and counts["increments"] > 0
    assert time.monotonic() < bound, "the test ran past its bound"


def test_failover_away_from_a_partitioned_primary_needs_no_restart(workdir: Path, ns: str) -> None:
    bound = time.monotonic() + 90
    primary, standby, _ = cluster(workdir, standby_names="*")
    with Service(multi_host(primary, standby), env=HA_ENV) as svc:
        load = Load(lambda: svc.url, ns, writers=8, bound=REQUEST_BOUND).start()
        try:
            time.sleep(1.5)
            # SIGSTOP: the primary's host is cut off; connecting to it hangs instead of failing.
            for pid in postgres_processes(primary.pgdata):
                os.kill(pid, signal.SIGSTOP)
            cut = time.monotonic()
            standby.promote()
            wait_for_acks(load, cut)
            time.sleep(0.5)
        finally:
            load.stop()
            primary.kill()
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            counts = load.verify(client)
        # A request on a connection to the cut-off primary waits out the statement timeout,
        # after waiting up to the pool timeout for that connection.
        limit = POOL_TIMEOUT + STATEMENT_TIMEOUT + 2.0
        slow = [a for a in load.attempts() if a.seconds > limit]
        assert not slow, f"{len(slow)} requests took longer than {limit} s: {slow[:3]}"
        assert not load.errors, load.errors[:5]
        print(f"partitioned primary: cut -> first acknowledged write "
              f"{first_ack_after(load, cut):.2f} s; {counts}")  # fmt: skip
    assert time.monotonic() < bound, "the test ran past its bound"


# ---- 2. asynchronous standby: what a failover can lose, and readiness refusing it ----


def test_failover_to_an_asynchronous_standby_loses_what_it_lagged_behind(
    workdir: Path, ns: str
) -> None:
    bound = time.monotonic() + 90
    primary, standby, link = cluster(workdir, standby_names="", link=True)
    url = multi_host(primary, standby)
    strict = {**HA_ENV, "PERSISTD_REQUIRE_SYNC_STANDBY": "true"}
    with Service(url, env=strict, ready_path="/healthz") as svc:
        refused = readiness(svc)
        assert refused.status_code == 503, refused.text
        assert "no synchronous standby" in refused.json()["detail"]
    with Service(url, env=HA_ENV) as svc:
        ready = readiness(svc).json()["synchronous_standby"]
        assert ready["synchronous"] is False and ready["attached"] == 0
        load = Load(lambda: svc.url, ns, writers=16, bound=REQUEST_BOUND).start()
        try:
            time.sleep(1.5)
            link.stall()  # the standby falls behind, as over a congested network
            stalled = time.monotonic()
            time.sleep(1.0)
            primary.kill()
            killed = time.monotonic()
        finally:
            load.stop()
        link.cut()
        standby.promote()
        promoted = time.monotonic()
        acked = [a for a in load.attempts() if a.outcome == "acked"]
        # What survived, key by key: an acknowledged version above the stored one is lost.
        lost: list[float] = []
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            deadline = time.monotonic() + 20
            for key in sorted(load.history):
                got = client.get(load.path(key))
                while got.status_code == 503 and time.monotonic() < deadline:
                    time.sleep(0.1)
                    got = client.get(load.path(key))
                assert got.status_code in (200, 404), got.text
                stored = int(got.headers["etag"].strip('"')) if got.status_code == 200 else 0
                lost += [
                    a.started - stalled for a in acked if a.key == key and (a.version or 0) > stored
                ]
            recovered = client.put(f"/v1/{ns}/misc/faults/records/after", json=1)
            assert recovered.status_code == 201, recovered.text
    assert not load.errors, load.errors[:5]
    at_risk = [a for a in acked if a.started >= stalled]
    print(
        f"asynchronous failover: {len(acked)} writes acknowledged, {len(at_risk)} of them while "
        f"the standby lagged ({killed - stalled:.1f} s), {len(lost)} lost; "
        f"promoted {promoted - killed:.2f} s after the kill"
    )
    # Exactly what the standby had not received is gone: writes acknowledged during the lag
    # (and the few still on their way as it began), never an older one.
    assert lost, "the lagging standby lost nothing: the link did not stall"
    assert min(lost) > -1.0, sorted(lost)[:5]
    assert time.monotonic() < bound, "the test ran past its bound"


# ---- 3. a demoted primary: read-only, never written to ----


def test_demoted_primary_is_never_written_to_and_its_connections_are_dropped(
    workdir: Path, ns: str
) -> None:
    bound = time.monotonic() + 90
    primary, standby, _ = cluster(workdir, standby_names="*")
    # The old primary first in the list: every new connection tries it before the new one.
    env = {**HA_ENV, "PERSISTD_POOL_MIN_SIZE": "8"}
    with Service(multi_host(primary, standby), env=env) as svc:
        load = Load(lambda: svc.url, ns, writers=8, bound=REQUEST_BOUND).start()
        try:
            time.sleep(1.5)
            # Fenced, as a failover manager demotes it: its open sessions turn read-only too.
            sql(primary.url, "ALTER SYSTEM SET default_transaction_read_only = on")
            sql(primary.url, "SELECT pg_reload_conf()")
            fenced = time.monotonic()
            time.sleep(1.0)
            promoting = time.monotonic()
            standby.promote()
            promoted = time.monotonic()
            wait_for_acks(load, promoted)
            # The old primary comes back as a standby of the new one: still read-only.
            primary.kill()
            (primary.pgdata / "standby.signal").touch()
            with (primary.pgdata / "postgresql.auto.conf").open("a") as conf:
                conf.write(f"primary_conninfo = 'host=127.0.0.1 port={standby.port}'\n")
            primary.start()
            back = time.monotonic()
            wait_for_acks(load, back)
            time.sleep(1.0)
        finally:
            load.stop()
        assert sql(primary.url, "SELECT pg_is_in_recovery()") == "t"
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            counts = load.verify(client)
        # Once the new primary serves, pooled connections to the fenced one are gone: no
        # request meets a read-only server again (before the fix they lingered for minutes).
        settled = promoted + POOL_TIMEOUT + 1.0
        late = [a for a in load.attempts() if a.started > settled and a.outcome != "acked"]
        assert not late, f"{len(late)} writes failed after the failover settled: {late[:3]}"
        # A session reads the reloaded setting at its next statement: allow it a moment.
        during = [a for a in load.attempts() if fenced + 0.3 < a.started < promoting]
        # Nothing is acknowledged between the fence and the promotion (a request sent then may
        # wait for its connection and end on the promoted standby).
        acked = [
            round(a.started - fenced, 3)
            for a in during
            if a.outcome == "acked" and a.started + a.seconds < promoting
        ]
        assert during and not acked, f"acknowledged while fenced, seconds after: {acked[:10]}"
        assert not load.errors, load.errors[:5]
        first = first_ack_after(load, promoted)
        print(f"demoted primary: {counts}, promotion -> first acknowledged write {first:.2f} s")
    assert time.monotonic() < bound, "the test ran past its bound"


# ---- 4. two instances behind haproxy, one killed under load ----

HAPROXY_CONF = """
global
  maxconn 512
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  # A connection refused never reached an instance: it is retried on the other one.
  retries 3
  option redispatch 1
frontend persistd
  bind 127.0.0.1:{port}
  default_backend instances
backend instances
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 300ms fall 2 rise 2
{servers}
"""


@contextmanager
def haproxy(workdir: Path, services: list[Service]) -> Iterator[str]:
    """Debian's haproxy in front of `services`, health-checking /readyz; yields its URL."""
    port = free_port()
    servers = "\n".join(
        f"  server s{n} 127.0.0.1:{svc.port} check" for n, svc in enumerate(services)
    )
    conf = workdir / "haproxy.cfg"
    conf.write_text(HAPROXY_CONF.format(port=port, servers=servers))
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(binary).exists(), "haproxy is not installed (scripts/bootstrap)"
    proc = subprocess.Popen([binary, "-db", "-f", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=(workdir / "haproxy.log").open("w"))  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (workdir / "haproxy.log").read_text()
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "haproxy did not come up"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_instances_behind_haproxy_one_killed_under_load_lose_nothing(
    workdir: Path, ns: str
) -> None:
    bound = time.monotonic() + 90
    node = Node(workdir, "a").init_primary()
    migrate(node.url)
    services = [Service(node.url, env=HA_ENV).start() for _ in range(2)]
    try:
        with haproxy(workdir, services) as url:
            traffic = Traffic(lambda: url, ns, proxied=frozenset({502, 503, 504})).start()
            try:
                time.sleep(2.0)
                assert traffic.load.acked_after(0) > 0
                victim = services[0].process
                assert victim is not None
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                services[0].process = None
                killed = time.monotonic()
                wait_for_acks(traffic.load, killed, count=100)
                time.sleep(1.0)
            finally:
                traffic.stop()
            with httpx.Client(base_url=url, timeout=10) as client:
                counts = traffic.check(client)
            failed = [a for a in traffic.load.attempts() if a.outcome != "acked"]
            first = first_ack_after(traffic.load, killed)
            print(
                f"haproxy, one of two instances killed: {counts}; kill -> first acknowledged "
                f"write {first:.2f} s, {len(failed)} attempts to retry"
            )
            # The balancer retries refused connections on the survivor and stops sending to the
            # dead instance within its health checks: only requests in flight at the kill (or
            # sent on a connection haproxy had open to it) fail, and their clients retry.
            assert all(killed - 0.5 < a.started < killed + 2.0 for a in failed), failed[:5]
            assert len(failed) < 0.05 * len(traffic.load.attempts()), len(failed)
    finally:
        for svc in services:
            svc.stop()
    assert time.monotonic() < bound, "the test ran past its bound"


# ---- 5. PgBouncer in transaction mode ----


PGBOUNCER_INI = """
[databases]
* = host=127.0.0.1 port={db_port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 10
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
admin_users = postgres
"""


def misconfigured_through(pooled_url: str) -> tuple[dict[int, int], list[str]]:
    """Concurrent requests to a service with asyncpg's statement cache on, through the pooler."""
    statuses: dict[int, int] = defaultdict(int)
    hints: list[str] = []
    lock = threading.Lock()

    def client(n: int, base: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            for i in range(30):
                path = f"/v1/misconfigured/misc/e{n}/records/k{i % 3}"
                resp = http.put(path, json=i) if i % 2 else http.get(path)
                with lock:
                    statuses[resp.status_code] += 1
                    if resp.status_code == 503:
                        hints.append(resp.json()["detail"])

    with Service(pooled_url, env={"PERSISTD_LOG_LEVEL": "critical"}, ready_path="/healthz") as svc:
        threads = [threading.Thread(target=client, args=(n, svc.url)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    return dict(statuses), hints


def test_records_suite_passes_through_pgbouncer_in_transaction_mode(workdir: Path) -> None:
    node = Node(workdir, "a").init_primary()
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    assert Path(binary).exists(), "pgbouncer is not installed (scripts/bootstrap)"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    port = free_port()
    bouncer_dir = workdir / "pgbouncer"
    bouncer_dir.mkdir()
    (bouncer_dir / "userlist.txt").write_text('"postgres" ""\n')
    ini = bouncer_dir / "pgbouncer.ini"
    ini.write_text(PGBOUNCER_INI.format(db_port=node.port, port=port, dir=bouncer_dir))
    if RUN_AS:
        for path in (bouncer_dir, *bouncer_dir.iterdir()):
            shutil.chown(path, RUN_AS, RUN_AS)
    proc = subprocess.Popen([binary, str(ini)], user=RUN_AS, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                              str(port)], check=False).returncode != 0:  # fmt: skip
            assert proc.poll() is None, "pgbouncer exited"
            assert time.monotonic() < deadline, "pgbouncer did not come up"
            time.sleep(0.1)
        env = {
            **os.environ,
            # Databases are made and migrated directly; the service goes through PgBouncer.
            "PERSISTD_TEST_DATABASE_URL": node.url,
            "PERSISTD_TEST_POOLER": f"127.0.0.1:{port}",
            # Before PgBouncer 1.21 (Debian 12 ships 1.18) named prepared statements cannot
            # cross its transaction pooling: asyncpg then uses unnamed ones only.
            "PERSISTD_STATEMENT_CACHE_SIZE": "0",
        }
        env.pop("PYTEST_ADDOPTS", None)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/test_records.py"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        tail = done.stdout[-3000:] + done.stderr[-2000:]
        assert done.returncode == 0, tail
        assert " passed" in done.stdout and "skipped" not in done.stdout, tail
        summary = done.stdout.strip().splitlines()[-1]
        print(f"{version.stdout.splitlines()[0]}, transaction mode: test_records {summary} "
              f"({time.monotonic() - started:.1f} s)")  # fmt: skip
        # Without the setting, the service names the misconfiguration instead of a bare 500
        # (and the errors show its queries did go through PgBouncer).
        migrate(node.url)
        statuses, hints = misconfigured_through(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        assert 500 not in statuses and statuses.get(503), statuses
        assert all("PERSISTD_STATEMENT_CACHE_SIZE=0" in hint for hint in hints), hints[:3]
        print(f"the same without PERSISTD_STATEMENT_CACHE_SIZE=0: statuses {statuses}")
    finally:
        proc.terminate()
        proc.wait(10)


# ---- the compose example of this topology (deploy/ha) ----

HA_DIR = ROOT / "deploy" / "ha"


@pytest.fixture(scope="module")
def ha_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((HA_DIR / "docker-compose.yml").read_text())
    return loaded


def test_ha_compose_chains_databases_pooler_migration_instances_and_balancer(
    ha_compose: dict[str, Any],
) -> None:
    services = ha_compose["services"]
    assert set(services) == {
        "db-primary", "db-standby", "pgbouncer", "migrate", "api-1", "api-2", "balancer"
    }  # fmt: skip
    for name, service in services.items():
        if name != "migrate":
            assert service["healthcheck"]["test"], f"{name} has no healthcheck"
            assert service["restart"] == "unless-stopped", name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in ha_compose["volumes"] or (HA_DIR / source).exists(), volume
    waits = {name: s.get("depends_on", {}) for name, s in services.items()}
    assert waits["db-standby"] == {"db-primary": {"condition": "service_healthy"}}
    assert waits["pgbouncer"] == {"db-standby": {"condition": "service_healthy"}}
    assert waits["migrate"] == {"pgbouncer": {"condition": "service_healthy"}}
    for api in ("api-1", "api-2"):
        assert waits[api] == {"migrate": {"condition": "service_completed_successfully"}}
        env = services[api]["environment"]
        assert "@pgbouncer:6432/" in env["PERSISTD_DATABASE_URL"]
        assert env["PERSISTD_STATEMENT_CACHE_SIZE"] == "0"  # PgBouncer in transaction mode
        assert env["PERSISTD_REQUIRE_SYNC_STANDBY"].startswith("${PERSISTD_REQUIRE_SYNC_STANDBY")
        assert services[api]["image"] == services["migrate"]["image"]
    # Migrations go to PostgreSQL itself, not through transaction pooling.
    assert "@db-primary:5432/" in services["migrate"]["environment"]["PERSISTD_DATABASE_URL"]
    assert services["balancer"]["depends_on"] == {
        "api-1": {"condition": "service_healthy"}, "api-2": {"condition": "service_healthy"}
    }  # fmt: skip
    assert any(str(p).endswith(":8000") for p in services["balancer"]["ports"])


def test_ha_compose_takes_every_secret_from_the_environment(ha_compose: dict[str, Any]) -> None:
    for name, service in ha_compose["services"].items():
        for var, value in service.get("environment", {}).items():
            if "PASSWORD" in var or "DATABASE_URL" in var:
                assert "${POSTGRES_PASSWORD:?" in str(value) or "${REPLICATION_PASSWORD:?" in str(
                    value
                ), f"{name}: {var} holds a literal secret"
    texts = [p.read_text() for p in HA_DIR.rglob("*") if p.is_file()]
    passwords = [pw for t in texts for pw in re.findall(r"postgresql://[^:/]+:([^@]+)@", t)]
    assert set(passwords) == {"${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"}, passwords
    assert not any(re.search(r"PASSWORD\s+'[^:]", t) for t in texts)


def test_ha_compose_files_pass_their_own_checkers(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (scripts/bootstrap)"
    env = {**os.environ, "POSTGRES_PASSWORD": "from-the-env", "REPLICATION_PASSWORD": "too"}
    done = subprocess.run(
        [binary, "-f", str(HA_DIR / "docker-compose.yml"), "config"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    missing = {k: v for k, v in env.items() if k != "REPLICATION_PASSWORD"}
    refused = subprocess.run(
        [binary, "-f", str(HA_DIR / "docker-compose.yml"), "config"],
        capture_output=True, text=True, env=missing, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "set REPLICATION_PASSWORD" in refused.stderr
    haproxy_bin = shutil.which("haproxy") or "/usr/sbin/haproxy"
    checked = subprocess.run(
        [haproxy_bin, "-c", "-f", str(HA_DIR / "haproxy.cfg")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "option httpchk GET /readyz" in (HA_DIR / "haproxy.cfg").read_text()
    ini = configparser.ConfigParser()
    ini.read_string((HA_DIR / "pgbouncer" / "pgbouncer.ini").read_text())
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    for script in ("primary-init.sh", "standby-entrypoint.sh", "pgbouncer/entrypoint.sh"):
        path = HA_DIR / script
        shell = path.read_text().splitlines()[0].removeprefix("#!")  # parsed, not run
        syntax = subprocess.run([shell, "-n", str(path)], capture_output=True, check=False)
        assert syntax.returncode == 0, (script, syntax.stderr)
