"""Leases in the Python client, against the real service: the context managers acquire, renew,
fence every write of the bound client, raise Fenced once lost, and release."""

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from persistd_client import (
    AsyncLease,
    AsyncPersistClient,
    Fenced,
    Lease,
    LeaseHeld,
    LeaseInfo,
    LeaseLost,
    NotFound,
    PersistClient,
    RetryPolicy,
)
from tests.support import Service


def steal(service_url: str, ns: str, name: str | None = None) -> int:
    """Take the lease as someone else once it is free (waits for the expiry)."""
    while True:
        got = httpx.post(
            f"{service_url}/v1/{ns}/leases/{name or ns}", json={"holder": "thief", "ttl_ms": 60000}
        )
        if got.status_code == 200:
            token: int = got.json()["token"]
            return token
        time.sleep(0.05)


def test_lease_renews_fences_writes_and_releases(client: PersistClient, service_url: str) -> None:
    lost: list[Fenced] = []
    # A 1 s TTL renewed every third of it: a busy machine may delay a renewal by most of two
    # thirds of a second without losing the lease; the loop outlives it three times over.
    with Lease(client, ttl_ms=1000, on_lost=lost.append) as lease:
        assert lease.token == 1
        for i in range(5):
            client.put("misc", "e", "k", i)
            time.sleep(0.6)  # past several TTLs: the background renewal keeps it
        assert client.get("misc", "e", "k").value == 4
    assert lost == []
    info = httpx.get(f"{service_url}/v1/{client.namespace}/leases/{client.namespace}").json()
    assert info["held"] is False
    client.put("misc", "e", "k", "unbound")  # the client is unbound again


def test_a_lost_lease_refuses_every_later_write(client: PersistClient, service_url: str) -> None:
    lost: list[Fenced] = []
    with Lease(client, ttl_ms=100, on_lost=lost.append) as lease:
        client.put("misc", "e", "k", "mine")
        lease._stop_renewing()  # paused: no more renewals
        steal(service_url, client.namespace)
        with pytest.raises(Fenced) as refused:
            client.put("misc", "e", "k", "stale")
        assert refused.value.code == "fenced"
        with pytest.raises(Fenced):
            client.batch_put("misc", "e", {"k": 1, "j": 2})
        with pytest.raises(Fenced):
            client.delete("misc", "e", "k")
        assert client.get("misc", "e", "k").value == "mine"  # reads still work
    time.sleep(0.05)
    assert len(lost) == 1 and lost[0].code == "fenced"
    with pytest.raises(NotFound):
        client.get("misc", "e", "j")


def test_a_refused_renewal_loses_the_lease(client: PersistClient, service_url: str) -> None:
    lost: list[Fenced] = []
    with Lease(client, ttl_ms=100, on_lost=lost.append) as lease:
        lease._stop_renewing()
        steal(service_url, client.namespace)
        with pytest.raises(Fenced) as refused:
            lease.renew()
        assert refused.value.code == "lease_lost"
        with pytest.raises(Fenced):
            client.put("misc", "e", "k", 1)
    time.sleep(0.05)
    assert [e.code for e in lost] == ["lease_lost"]


def test_a_held_lease_is_waited_for_then_named(client: PersistClient, service_url: str) -> None:
    steal(service_url, client.namespace, "other")
    started = time.monotonic()
    with pytest.raises(LeaseHeld) as held, Lease(client, "other", ttl_ms=1000, wait_ms=300):
        pass
    assert time.monotonic() - started >= 0.25
    assert "thief" in str(held.value)
    client.put("misc", "e", "k", 1)  # never bound


def test_async_lease_fences_and_loses(service_url: str, ns: str) -> None:
    async def run() -> None:
        lost: list[Fenced] = []
        retry = RetryPolicy(max_attempts=2)
        async with AsyncPersistClient(service_url, namespace=ns, retry=retry) as client:
            async with AsyncLease(client, ttl_ms=1000, on_lost=lost.append) as lease:
                for i in range(4):
                    await client.put("misc", "e", "k", i)
                    await asyncio.sleep(0.6)
                lease._stop_renewing()  # paused
                await asyncio.to_thread(steal, service_url, ns)
                with pytest.raises(Fenced):
                    await client.put("misc", "e", "k", "stale")
                assert (await client.get("misc", "e", "k")).value == 3
            await asyncio.sleep(0.05)
            assert [e.code for e in lost] == ["fenced"]

    asyncio.run(run())


def test_ttl_out_of_range_is_refused_at_construction(client: PersistClient) -> None:
    with pytest.raises(ValueError, match="ttl_ms"):
        Lease(client, ttl_ms=50)


def test_renew_leases_answers_each_lease_or_its_error(client: PersistClient) -> None:
    ns = client.namespace
    with Lease(client, "a", ttl_ms=5000) as a, Lease(client, "b", ttl_ms=5000) as b:
        assert b.token is not None
        results = client.renew_leases([(ns, "a", a.token or 0), (ns, "b", b.token + 1),
                                       (ns, "never", 1)])  # fmt: skip
    renewed, lost, unknown = results
    assert isinstance(renewed, LeaseInfo) and (renewed.name, renewed.held) == ("a", True)
    assert isinstance(lost, LeaseLost) and lost.status == 409 and "not current" in lost.detail
    assert isinstance(unknown, NotFound) and unknown.status == 404


def _renewals(log: Path) -> list[str]:
    """The lease renewal requests the service logged: batch and single alike."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    requests = [(e["method"], e["path"]) for e in lines if e.get("logger") == "persistd.access"]
    return [path for method, path in requests
            if path == "/v1/_leases/renew" or (method == "PUT" and "/leases/" in path)]  # fmt: skip


def test_fifty_leases_are_renewed_by_one_request_per_tick(
    database_url: str, ns: str, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    lost: dict[int, list[Fenced]] = {i: [] for i in range(50)}
    ttl = 600
    with (
        Service(database_url, env={"PERSISTD_LOG_LEVEL": "info"}, log=log) as svc,
        contextlib.ExitStack() as stack,
    ):
        clients = [stack.enter_context(PersistClient(svc.url, namespace=f"{ns}-{i}"))
                   for i in range(50)]  # fmt: skip
        leases = [stack.enter_context(Lease(c, ttl_ms=ttl, on_lost=lost[i].append))
                  for i, c in enumerate(clients)]  # fmt: skip
        started, before = time.monotonic(), len(_renewals(log))
        time.sleep(4 * ttl / 1000)  # four TTLs: about twelve ticks
        ticks = len(_renewals(log)) - before
        elapsed = time.monotonic() - started
        for client in clients:
            client.put("misc", "e", "k", 1)  # still held: the fenced writes apply
        # Each tick renews all 50 in one request: no more requests than ticks of one lease.
        assert set(_renewals(log)) == {"/v1/_leases/renew"}
        assert elapsed / (ttl / 3000) - 2 <= ticks <= elapsed / (ttl / 3000) + 2, (ticks, elapsed)
        # One acquired anew under its holder's name (a new token): the next batch loses it, and
        # only its on_lost runs; the others are still renewed.
        body = {"holder": leases[7].holder, "ttl_ms": 60_000}
        taken = httpx.post(f"{svc.url}/v1/{ns}-7/leases/{ns}-7", json=body).json()
        assert taken["token"] == (leases[7].token or 0) + 1
        time.sleep(ttl / 1000)
        with pytest.raises(Fenced):
            clients[7].put("misc", "e", "k", 2)
        for i, client in enumerate(clients):
            if i != 7:
                client.put("misc", "e", "k", 2)
        assert [i for i, errors in lost.items() if errors] == [7]
        assert lost[7][0].code == "lease_lost" and isinstance(lost[7][0], LeaseLost)


def test_sync_and_async_leases_of_one_service_share_the_renewals(
    database_url: str, ns: str, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"

    async def run(url: str) -> None:
        async with (
            AsyncPersistClient(url, namespace=f"{ns}-a") as aclient,
            AsyncLease(aclient, ttl_ms=600),
        ):
            await asyncio.sleep(1.2)
            await aclient.put("misc", "e", "k", 1)

    with (
        Service(database_url, env={"PERSISTD_LOG_LEVEL": "info"}, log=log) as svc,
        PersistClient(svc.url, namespace=ns) as client,
        Lease(client, ttl_ms=600),
    ):
        thread = threading.Thread(target=asyncio.run, args=(run(svc.url),))
        thread.start()
        thread.join()
        client.put("misc", "e", "k", 1)
    batches = _renewals(log)
    assert 4 <= len(batches) <= 8 and set(batches) == {"/v1/_leases/renew"}, batches
