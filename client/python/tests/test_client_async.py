"""The async client against the real service, and its parity with the sync client."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from persistd_client import (
    AsyncPersistClient,
    InvalidName,
    InvalidValue,
    Item,
    NotFound,
    PersistClient,
    VersionMismatch,
)

T = TypeVar("T")
KEYS = ["b", "a/b", "é", "c?d", "100%", *[f"k{i:02d}" for i in range(9)]]


def _plain(result: Any) -> Any:
    """Results with the timestamps (the only thing two runs cannot share) left out."""
    if isinstance(result, Item):
        return (result.key, result.value, result.version)
    if isinstance(result, list):
        return [_plain(r) for r in result]
    return result


def run_async(service_url: str, ns: str, body: Callable[[AsyncPersistClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with AsyncPersistClient(service_url, namespace=ns) as client:
            return await body(client)

    return asyncio.run(main())


def sync_scenario(c: PersistClient) -> list[Any]:
    out: list[Any] = []
    out.append(c.init("misc", "e"))
    out.append(c.put("misc", "e", "k", {"v": 1}))
    out.append(c.put("misc", "e", "k", {"v": 2}, if_match=1))
    out.append(c.put("misc", "e", "n", None, create_only=True))
    out.append(c.get("misc", "e", "k"))
    out.append(c.get("misc", "e", "n"))
    out.append((c.has("misc", "e", "k"), c.has("misc", "e", "zz")))
    out.append(c.batch_put("misc", "e", {k: {"k": k} for k in KEYS}))
    out.append(c.batch_put("misc", "e", {"k": 0, "new": 1}, mode="insert_if_absent"))
    got = c.batch_get("misc", "e", ["new", "zz", "a/b"])
    out.append((_plain(got.items), got.missing))
    out.append(list(c.iter_keys("misc", "e", page_size=4)))
    out.append(_plain(list(c.iter_items("misc", "e", page_size=5))))
    out.append(_plain(c.newest("misc", "e", 2)))
    c.delete("misc", "e", "n", if_match=1)
    out.append(c.has("misc", "e", "n"))
    out.append(c.init("misc", "e"))
    out.append(c.domains())
    out.append(c.entities("misc"))
    return out


async def async_scenario(c: AsyncPersistClient) -> list[Any]:
    out: list[Any] = []
    out.append(await c.init("misc", "e"))
    out.append(await c.put("misc", "e", "k", {"v": 1}))
    out.append(await c.put("misc", "e", "k", {"v": 2}, if_match=1))
    out.append(await c.put("misc", "e", "n", None, create_only=True))
    out.append(await c.get("misc", "e", "k"))
    out.append(await c.get("misc", "e", "n"))
    out.append((await c.has("misc", "e", "k"), await c.has("misc", "e", "zz")))
    out.append(await c.batch_put("misc", "e", {k: {"k": k} for k in KEYS}))
    out.append(await c.batch_put("misc", "e", {"k": 0, "new": 1}, mode="insert_if_absent"))
    got = await c.batch_get("misc", "e", ["new", "zz", "a/b"])
    out.append((_plain(got.items), got.missing))
    out.append([k async for k in c.iter_keys("misc", "e", page_size=4)])
    out.append(_plain([i async for i in c.iter_items("misc", "e", page_size=5)]))
    out.append(_plain(await c.newest("misc", "e", 2)))
    await c.delete("misc", "e", "n", if_match=1)
    out.append(await c.has("misc", "e", "n"))
    out.append(await c.init("misc", "e"))
    out.append(await c.domains())
    out.append(await c.entities("misc"))
    return out


def test_sync_and_async_clients_give_the_same_answers(service_url: str, ns: str) -> None:
    with PersistClient(service_url, namespace=f"{ns}-sync") as client:
        sync_results = sync_scenario(client)
    async_results = run_async(service_url, f"{ns}-async", async_scenario)
    assert async_results == sync_results
    assert sync_results[10] == sorted([*KEYS, "k", "n", "new"], key=lambda k: k.encode())


def test_async_get_of_an_absent_record_raises_not_found(service_url: str, ns: str) -> None:
    with pytest.raises(NotFound):
        run_async(service_url, ns, lambda c: c.get("misc", "e", "absent"))


def test_async_put_with_stale_if_match_raises_version_mismatch(service_url: str, ns: str) -> None:
    async def body(c: AsyncPersistClient) -> None:
        await c.put("misc", "e", "k", 1)
        await c.put("misc", "e", "k", 2)
        await c.put("misc", "e", "k", 3, if_match=1)

    with pytest.raises(VersionMismatch):
        run_async(service_url, ns, body)


def test_async_invalid_name_and_value_raise_their_errors(service_url: str, ns: str) -> None:
    with pytest.raises(InvalidName):
        run_async(service_url, ns, lambda c: c.put("misc", "e", "..", 1))
    with pytest.raises(InvalidValue):
        run_async(service_url, ns, lambda c: c.put("risk", "r", "positions", {"not": "a list"}))


def test_concurrent_async_writes_are_all_acknowledged_and_readable(
    service_url: str, ns: str
) -> None:
    async def body(c: AsyncPersistClient) -> dict[str, Any]:
        await asyncio.gather(*(c.put("misc", "e", f"k{i:03d}", i) for i in range(100)))
        got = await c.batch_get("misc", "e", [f"k{i:03d}" for i in range(100)])
        return got.values

    assert run_async(service_url, ns, body) == {f"k{i:03d}": i for i in range(100)}


def test_async_health_probes_answer(service_url: str, ns: str) -> None:
    async def body(c: AsyncPersistClient) -> tuple[str, str]:
        return (await c.healthz())["status"], (await c.readyz())["status"]

    assert run_async(service_url, ns, body) == ("ok", "ready")
