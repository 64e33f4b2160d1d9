"""Leases in the Python client, against the real service: the context managers acquire, renew,
fence every write of the bound client, raise Fenced once lost, and release."""

import asyncio
import time

import httpx
import pytest

from persistd_client import (
    AsyncLease,
    AsyncPersistClient,
    Fenced,
    Lease,
    LeaseHeld,
    NotFound,
    PersistClient,
    RetryPolicy,
)


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
    with Lease(client, ttl_ms=300, on_lost=lost.append) as lease:
        assert lease.token == 1
        for i in range(5):
            client.put("misc", "e", "k", i)
            time.sleep(0.15)  # past several TTLs: the background renewal keeps it
        assert client.get("misc", "e", "k").value == 4
    assert lost == []
    info = httpx.get(f"{service_url}/v1/{client.namespace}/leases/{client.namespace}").json()
    assert info["held"] is False
    client.put("misc", "e", "k", "unbound")  # the client is unbound again


def test_a_lost_lease_refuses_every_later_write(client: PersistClient, service_url: str) -> None:
    lost: list[Fenced] = []
    with Lease(client, ttl_ms=100, on_lost=lost.append) as lease:
        client.put("misc", "e", "k", "mine")
        lease._stop.set()  # paused: no more renewals
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
        lease._stop.set()
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
            async with AsyncLease(client, ttl_ms=300, on_lost=lost.append) as lease:
                for i in range(4):
                    await client.put("misc", "e", "k", i)
                    await asyncio.sleep(0.15)
                assert lease._task is not None
                lease._task.cancel()  # paused
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
