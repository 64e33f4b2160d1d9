"""Faults under load: a database restart, a killed service, two services racing on shared keys.

Every write is classified by what the client was told:
  acked      200/201 with a version: the write must be there, at that version or a later one;
  rejected   the request provably never reached the store (connection refused, a 4xx):
             its value must never show up;
  uncertain  503 or a connection dropped mid-request: it may or may not have been applied.
The checks at the end compare the stored state with that history (docs/faults.md).
"""

import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from persistd.embedded import EmbeddedPostgres
from tests.support import Load, Service, embedded_server, postgres_processes, scratch_database

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
        load = Load(lambda: svc.url, ns, bound=REQUEST_BOUND).start()
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


def test_frozen_database_under_write_load_answers_503_within_the_timeouts(
    own_postgres: EmbeddedPostgres, ns: str
) -> None:
    server = own_postgres
    deadline = time.monotonic() + 60
    bound = POOL_TIMEOUT + STATEMENT_TIMEOUT + 1.0  # a query may wait for both, then give up
    with scratch_database(server.url) as url, Service(url, env=FAULT_ENV) as svc:
        load = Load(lambda: svc.url, ns, bound=REQUEST_BOUND).start()
        frozen: list[int] = []
        try:
            time.sleep(2.0)
            # SIGSTOP: the server accepts TCP connections but never answers, like a hung host.
            frozen = postgres_processes(server.pgdata)
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
        load = Load(lambda: svc.url, ns, writers=8, bound=REQUEST_BOUND).start()
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
