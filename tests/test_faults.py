"""Faults under load: a database restart, a killed service, two services racing on shared keys.

Every write is classified by what the client was told:
  acked      200/201 with a version: the write must be there, at that version or a later one;
  rejected   the request provably never reached the store (connection refused, a 4xx):
             its value must never show up;
  uncertain  503 or a connection dropped mid-request: it may or may not have been applied.
The checks at the end compare the stored state with that history (docs/faults.md).
"""

import itertools
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from persistd.embedded import EmbeddedPostgres
from tests.support import Service, embedded_server, scratch_database

POOL_TIMEOUT = 1.0
STATEMENT_TIMEOUT = 2.0
# No request may take longer than this, outage or not (the brief's pool_timeout + 2 s).
REQUEST_BOUND = POOL_TIMEOUT + 2.0
FAULT_ENV = {
    "PERSISTD_POOL_TIMEOUT": str(POOL_TIMEOUT),
    "PERSISTD_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT),
    "PERSISTD_RETRY_AFTER": "1",
    "PERSISTD_POOL_MAX_SIZE": "8",
}


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
            thread.join(REQUEST_BOUND + 10)
            assert not thread.is_alive(), "a writer is stuck"

    def _record(self, attempt: Attempt) -> None:
        with self._lock:
            self.history[attempt.key].append(attempt)

    def _run(self, writer: int, keys: list[str]) -> None:
        rng = random.Random(writer)
        # Generous client timeout: the bound is asserted on the measured time, not enforced here.
        with httpx.Client(timeout=REQUEST_BOUND + 15) as client:
            while not self._stop.is_set():
                key = rng.choice(keys)
                with self._lock:
                    seq = next(self._seq)
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
                self._record(
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


def check_bounded(load: Load) -> None:
    slow = [a for a in load.attempts() if a.seconds > REQUEST_BOUND]
    assert not slow, f"{len(slow)} requests took longer than {REQUEST_BOUND} s: {slow[:3]}"
    assert not load.errors, load.errors[:5]
    statuses = {a.status for a in load.attempts()}
    assert statuses <= {200, 201, 503, None}, statuses


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own: it is stopped and restarted, never the shared one."""
    data_dir = Path(tempfile.mkdtemp(prefix="persistd-faults-"))
    try:
        with embedded_server(data_dir) as server:
            yield server
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_database_restart_under_write_load_answers_503_fast_and_loses_no_ack(
    own_postgres: EmbeddedPostgres, ns: str
) -> None:
    server = own_postgres
    deadline = time.monotonic() + 60
    with scratch_database(server.url) as url, Service(url, env=FAULT_ENV) as svc:
        load = Load(lambda: svc.url, ns).start()
        try:
            time.sleep(2.0)
            assert load.acked_after(0) > 0, "no write went through before the fault"
            # An immediate stop is a crash for PostgreSQL: recovery replays the WAL on start.
            server.stop("immediate")
            down = time.monotonic()
            time.sleep(3.0)
            server.start()
            up = time.monotonic()
            while load.acked_after(up) < 20 and time.monotonic() < up + 15:
                time.sleep(0.2)
            time.sleep(1.0)
        finally:
            load.stop()
        during = [a for a in load.attempts() if down + 0.5 < a.started < up - 0.5]
        assert during, "no request was made during the outage"
        assert {a.status for a in during} == {503}, {a.status for a in during}
        assert load.acked_after(up) >= 20, "the service did not recover by itself"
        check_bounded(load)
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            counts = load.verify(client)
    print("database restart:", counts, "max seconds", max(a.seconds for a in load.attempts()))
    assert counts["acked"] > 0 and counts["uncertain"] > 0, counts
    assert time.monotonic() < deadline, "the test ran past its 60 s bound"


def _postgres_processes(server: EmbeddedPostgres) -> list[int]:
    """The postmaster of our own server and every process it forked."""
    pgdata: Path = server.pgdata
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


def test_frozen_database_under_write_load_answers_503_within_the_timeouts(
    own_postgres: EmbeddedPostgres, ns: str
) -> None:
    server = own_postgres
    deadline = time.monotonic() + 60
    bound = POOL_TIMEOUT + STATEMENT_TIMEOUT + 1.0  # a query may wait for both, then give up
    with scratch_database(server.url) as url, Service(url, env=FAULT_ENV) as svc:
        load = Load(lambda: svc.url, ns).start()
        frozen: list[int] = []
        try:
            time.sleep(2.0)
            # SIGSTOP: the server accepts TCP connections but never answers, like a hung host.
            frozen = _postgres_processes(server)
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            down = time.monotonic()
            time.sleep(8.0)
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        up = time.monotonic()
        try:
            while load.acked_after(up) < 20 and time.monotonic() < up + 15:
                time.sleep(0.2)
        finally:
            load.stop()
        during = [a for a in load.attempts() if down + 0.5 < a.started < up - bound]
        assert during, "no request was made while the database was frozen"
        assert {a.status for a in during} == {503}, {a.status for a in during}
        slow = [a for a in load.attempts() if a.seconds > bound]
        assert not slow, f"{len(slow)} requests took longer than {bound} s: {slow[:3]}"
        assert load.acked_after(up) >= 20, "the service did not recover by itself"
        assert not load.errors, load.errors[:5]
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            counts = load.verify(client)
        print("database frozen:", counts, "max seconds", max(a.seconds for a in load.attempts()))
    assert time.monotonic() < deadline, "the test ran past its 60 s bound"


def test_service_killed_under_write_load_loses_no_ack(database_url: str, ns: str) -> None:
    deadline = time.monotonic() + 60
    svc = Service(database_url, env=FAULT_ENV).start()
    try:
        load = Load(lambda: svc.url, ns, writers=8).start()
        try:
            time.sleep(2.0)
            assert load.acked_after(0) > 0
            assert svc.process is not None
            svc.process.send_signal(signal.SIGKILL)
            svc.process.wait(10)
            svc.process = None
            killed = time.monotonic()
            time.sleep(1.0)
            svc.start()  # the same port: the writers keep their URL
            up = time.monotonic()
            while load.acked_after(up) < 20 and time.monotonic() < up + 15:
                time.sleep(0.2)
        finally:
            load.stop()
        assert load.acked_after(up) >= 20, "writes did not resume after the restart"
        outage = [a for a in load.attempts() if killed + 0.1 < a.started < up - 2.0]
        assert all(a.outcome != "acked" for a in outage)
        check_bounded(load)
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            counts = load.verify(client)
        print("service kill:", counts, "max seconds", max(a.seconds for a in load.attempts()))
        assert counts["acked"] > 0 and counts["rejected"] > 0, counts
    finally:
        svc.stop()
    assert time.monotonic() < deadline, "the test ran past its 60 s bound"


def test_two_services_if_match_increments_lose_no_update(database_url: str, ns: str) -> None:
    deadline = time.monotonic() + 60
    keys, clients, increments = 3, 8, 15
    services = [Service(database_url).start(), Service(database_url).start()]
    try:
        paths = [f"/v1/{ns}/risk-counters/shared/records/k{i}" for i in range(keys)]
        with httpx.Client(timeout=10) as setup:
            for path in paths:
                created = setup.put(services[0].url + path, json=0, headers={"If-None-Match": "*"})
                assert created.status_code == 201, created.text
        acked: dict[str, int] = defaultdict(int)
        conflicts = [0]
        lock = threading.Lock()
        failures: list[str] = []

        def client_loop(n: int) -> None:
            rng = random.Random(n)
            with httpx.Client(timeout=10) as http:
                for _ in range(increments):
                    path = rng.choice(paths)
                    while True:
                        base = rng.choice(services).url  # either process, at random
                        got = http.get(base + path)
                        if got.status_code != 200:
                            failures.append(f"GET {got.status_code} {got.text}")
                            return
                        etag = got.headers["etag"]
                        put = http.put(base + path, json=got.json() + 1, headers={"If-Match": etag})
                        if put.status_code == 200:
                            assert put.json()["version"] == int(etag.strip('"')) + 1
                            with lock:
                                acked[path] += 1
                            break
                        if put.status_code != 412:
                            failures.append(f"PUT {put.status_code} {put.text}")
                            return
                        with lock:
                            conflicts[0] += 1

        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
            assert not t.is_alive(), "an incrementing client is stuck"
        assert not failures, failures[:5]
        assert sum(acked.values()) == clients * increments
        with httpx.Client(timeout=10) as check:
            for path in paths:
                for svc in services:
                    got = check.get(svc.url + path)
                    assert got.json() == acked[path], (path, got.json(), acked[path])
                    assert got.headers["etag"] == f'"{acked[path] + 1}"'
        # Contention is the point: some increments must have lost a race and retried.
        print("two services:", dict(acked), "conflicts", conflicts[0])
        assert conflicts[0] > 0
    finally:
        for svc in services:
            svc.stop()
    assert time.monotonic() < deadline, "the test ran past its 60 s bound"
