"""Concurrent unconditional writes share one statement and one commit (app/store/coalesce.py),
and each still gets exactly its own answer: version, refusal or error."""

import asyncio
from typing import Any

import asyncpg
import httpx

from persistd.db import asyncpg_dsn
from persistd.errors import NotFound
from persistd.store import Address, Store
from tests.test_leases import acquire
from tests.test_records import rec

WRITERS = 64


async def _put_all(base: str, requests: list[tuple[str, bytes, dict[str, str]]]) -> list[Any]:
    """Send every PUT at once, each on its own connection; the responses in order."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(client.put(url, content=body, headers=headers) for url, body, headers in requests)
        )


def put_all(base: str, requests: list[tuple[str, bytes, dict[str, str]]]) -> list[Any]:
    return asyncio.run(_put_all(base, requests))


def changes(database_url: str, ns: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            return await conn.fetch(
                "SELECT seq, domain, key, version FROM changes WHERE namespace = $1 ORDER BY seq",
                ns,
            )
        finally:
            await conn.close()

    return asyncio.run(run())


JSON = {"content-type": "application/json"}


def test_concurrent_writes_share_transactions_and_each_gets_its_version(
    service_url: str, database_url: str, ns: str, http: httpx.Client
) -> None:
    requests = [(rec(ns, f"k{i}", "misc"), b'{"i": %d}' % i, JSON) for i in range(WRITERS)]
    for _ in range(3):  # the second and third rounds update: version 2, then 3
        put_all(service_url, requests)
    answers = put_all(service_url, requests)
    assert [a.status_code for a in answers] == [200] * WRITERS
    assert [a.json()["version"] for a in answers] == [4] * WRITERS
    for i in range(WRITERS):
        got = http.get(rec(ns, f"k{i}", "misc"))
        assert got.json() == {"i": i} and got.headers["etag"] == '"4"'
    log = changes(database_url, ns)
    assert sorted((row["key"], row["version"]) for row in log) == sorted(
        (f"k{i}", v) for i in range(WRITERS) for v in range(1, 5)
    )
    # The change sequence number is the writing transaction's id times 2^20 plus the row's
    # index in it: fewer transactions than writes means writes shared a commit.
    transactions = {row["seq"] >> 20 for row in log}
    assert len(transactions) < len(log) // 2


def test_writes_to_one_key_at_once_each_get_a_distinct_version(
    service_url: str, database_url: str, ns: str, http: httpx.Client
) -> None:
    url = rec(ns, "one", "misc")
    answers = put_all(service_url, [(url, b"%d" % i, JSON) for i in range(WRITERS)])
    versions = sorted(a.json()["version"] for a in answers)
    assert versions == list(range(1, WRITERS + 1))
    last = next(i for i, a in enumerate(answers) if a.json()["version"] == WRITERS)
    assert http.get(url).json() == last
    assert [row["version"] for row in changes(database_url, ns)] == list(range(1, WRITERS + 1))


def test_a_value_postgresql_refuses_fails_alone(
    service_url: str, database_url: str, ns: str, http: httpx.Client
) -> None:
    requests = [(rec(ns, f"k{i}", "misc"), b'{"i": %d}' % i, JSON) for i in range(WRITERS)]
    bad = WRITERS // 2
    requests[bad] = (rec(ns, f"k{bad}", "misc"), b'{"a": "x\\u0000y"}', JSON)
    answers = put_all(service_url, requests)
    for i, answer in enumerate(answers):
        if i == bad:
            assert answer.status_code == 422
            assert answer.json()["code"] == "invalid_value"
            assert http.get(rec(ns, f"k{i}", "misc")).status_code == 404
        else:
            assert answer.status_code == 201, answer.text
            assert http.get(rec(ns, f"k{i}", "misc")).json() == {"i": i}
    assert len(changes(database_url, ns)) == WRITERS - 1


def test_fenced_unfenced_and_unlogged_writes_together(
    service_url: str, database_url: str, ns: str, http: httpx.Client
) -> None:
    live = acquire(http, ns, "a", ttl=60_000, name="live")  # held throughout, however slow
    stale = acquire(http, ns, "a", name="stale")
    assert http.delete(f"/v1/{ns}/leases/stale", params={"token": stale}).status_code == 200
    kinds = ["live", "stale", "none", "candle"]
    requests = []
    for i in range(WRITERS):
        kind = kinds[i % 4]
        headers = dict(JSON)
        if kind in ("live", "stale"):
            headers["persistd-fence"] = f"{kind}={live if kind == 'live' else stale}"
        domain = "candle" if kind == "candle" else "misc"
        requests.append((rec(ns, f"k{i}", domain), b"%d" % i, headers))
    answers = put_all(service_url, requests)
    for i, answer in enumerate(answers):
        domain = "candle" if kinds[i % 4] == "candle" else "misc"
        if kinds[i % 4] == "stale":
            assert answer.status_code == 409 and answer.json()["code"] == "fenced"
            assert http.get(rec(ns, f"k{i}", domain)).status_code == 404
        else:
            assert answer.status_code == 201, answer.text
            assert http.get(rec(ns, f"k{i}", domain)).json() == i
    # Candles keep no history by default; every other write that was applied is logged.
    logged = {row["key"] for row in changes(database_url, ns)}
    assert logged == {f"k{i}" for i in range(WRITERS) if kinds[i % 4] in ("live", "none")}


async def _get_all(base: str, requests: list[tuple[str, str]]) -> list[Any]:
    """Send every GET or HEAD at once, each on its own connection; the responses in order."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        return await asyncio.gather(*(client.request(method, url) for method, url in requests))


def test_concurrent_reads_each_get_their_own_record_or_404(
    service_url: str, ns: str, http: httpx.Client
) -> None:
    # k{i} exists at version i % 3 + 1 with value i for even i; odd keys were never written.
    for i in range(0, WRITERS, 2):
        for _ in range(i % 3 + 1):
            assert http.put(rec(ns, f"k{i}", "misc"), json={"i": i}).is_success
    requests = [("GET" if i % 4 < 2 else "HEAD", rec(ns, f"k{i}", "misc")) for i in range(WRITERS)]
    for _ in range(3):
        answers = asyncio.run(_get_all(service_url, requests))
        for i, answer in enumerate(answers):
            if i % 2:
                assert answer.status_code == 404, (i, answer.status_code)
                continue
            assert answer.status_code == 200, (i, answer.text)
            assert answer.headers["etag"] == f'"{i % 3 + 1}"'
            assert answer.content == (b'{"i": %d}' % i if requests[i][0] == "GET" else b"")


def test_reads_that_arrive_together_share_one_statement(database_url: str, ns: str) -> None:
    """In-process, on the real database: the reads queued behind the first ones go as groups,
    and each gets exactly its own row."""

    async def run() -> tuple[list[int], list[Any], list[Any]]:
        store = await Store.open(
            asyncpg_dsn(database_url), min_size=2, max_size=4, acquire_timeout=5,
            statement_timeout=5, retry_after=1,
        )  # fmt: skip
        try:
            for i in range(0, WRITERS, 2):
                await store.put(Address(ns, "misc", "e", f"k{i}"), str(i))
            sizes: list[int] = []
            many = store._reads._many

            async def counted(items: list[Any], wait: float) -> list[Any]:
                sizes.append(len(items))
                return await many(items, wait)

            store._reads._many = counted
            addrs = [Address(ns, "misc", "e", f"k{i}") for i in range(WRITERS)]
            got = await asyncio.gather(*(store.get(a) for a in addrs), return_exceptions=True)
            heads = await asyncio.gather(*(store.head(a) for a in addrs), return_exceptions=True)
            return sizes, got, heads
        finally:
            await store.close()

    sizes, got, heads = asyncio.run(run())
    assert sizes and max(sizes) > 1 and sum(sizes) > WRITERS  # most of both rounds grouped
    for i in range(WRITERS):
        if i % 2:
            assert isinstance(got[i], NotFound) and isinstance(heads[i], NotFound)
        else:
            assert (got[i].key, got[i].value, got[i].version) == (f"k{i}", str(i), 1)
            assert (heads[i].version, heads[i].updated_at) == (1, got[i].updated_at)
