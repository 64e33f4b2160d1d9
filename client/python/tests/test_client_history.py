"""Client history calls and watch against the real service."""

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from persistd_client import AsyncPersistClient, NotFound, PersistClient, PersistError
from persistd_client.history import Change
from tests.support import Service, VersionWriter


def test_versions_history_changes_and_restore(client: PersistClient) -> None:
    client.put("misc", "e", "k", {"n": 1})
    t1 = datetime.now(UTC)
    client.put("misc", "e", "k", {"n": 2})
    assert client.get("misc", "e", "k", version=1).value == {"n": 1}
    assert client.get("misc", "e", "k").version == 2
    with pytest.raises(NotFound):
        client.get("misc", "e", "k", version=9)
    page = client.history("misc", "e", "k", values=True)
    assert [(v.version, v.value) for v in page.items] == [(2, {"n": 2}), (1, {"n": 1})]
    assert [i.value for i in client.records_at("misc", "e", t1).items] == [{"n": 1}]
    feed = client.changes()
    assert [c.version for c in feed.items] == [1, 2]
    assert client.changes(feed.next_since).items == []
    plan = client.restore(t1, dry_run=True)
    assert (plan.puts, plan.deletes, plan.changes) == (1, 0, plan.changes)
    assert client.restore(t1).puts == 1
    assert client.get("misc", "e", "k").value == {"n": 1}
    with pytest.raises(PersistError) as bad:
        client.history("candle", "e", "k")
    assert bad.value.code == "history_not_kept"


async def _collect(client: AsyncPersistClient, count: int, since: int | None) -> list[Change]:
    out: list[Change] = []
    async for change in client.watch(since=since):
        out.append(change)
        if len(out) == count:
            break
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_watch_follows_and_resumes_across_a_restart(
    database_url: str, ns: str, sig: signal.Signals
) -> None:
    with Service(database_url) as svc:

        async def run() -> tuple[list[Change], list[Change]]:
            async with AsyncPersistClient(svc.url, namespace=ns) as client:
                watcher = asyncio.create_task(_collect(client, 4, since=None))
                await asyncio.sleep(0.5)
                await client.put("misc", "e", "a", 1)
                await client.put("misc", "e", "b", 2)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(svc.stop, sig)
                await asyncio.to_thread(svc.start)
                await client.put("misc", "e", "a", 3)
                await client.delete("misc", "e", "b")
                seen = await asyncio.wait_for(watcher, 30)
                rest = await asyncio.wait_for(_collect(client, 2, since=seen[1].seq), 30)
                return seen, rest

        seen, rest = asyncio.run(run())
    assert [(c.key, c.op, c.version) for c in seen] == [
        ("a", "put", 1), ("b", "put", 1), ("a", "put", 2), ("b", "delete", 2)
    ]  # fmt: skip
    assert rest == seen[2:]


async def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_watch_sees_every_change_once_while_the_service_restarts_mid_stream(
    database_url: str, ns: str, sig: signal.Signals
) -> None:
    """The shape of the TypeScript client's restart test (tests/test_typescript.py): a writer
    puts versions while the service is stopped mid-stream and started again on its port; the
    watch yields the change log exactly, each change once, in seq order, and ends when stopped."""
    writes, cut = 60, 20
    with Service(database_url) as svc:
        writer = VersionWriter(svc.url, ns, writes)

        async def run() -> tuple[list[Change], list[Change], float]:
            seen: list[Change] = []
            async with AsyncPersistClient(svc.url, namespace=ns) as client:

                async def follow() -> None:
                    async for change in client.watch(since=0):
                        seen.append(change)

                watching = asyncio.create_task(follow())
                writer.start()
                await _until("the first changes", lambda: len(seen) >= cut)
                await asyncio.to_thread(svc.stop, sig)  # mid-stream: the writer still writes
                await asyncio.sleep(1.0)
                await asyncio.to_thread(svc.start)
                restarted = len(writer.acked)
                await asyncio.to_thread(writer.join, 90)
                assert writer.acked == list(range(writes))
                assert restarted < writes - 10  # most writes after the restart
                log = (await client.changes(0, limit=1000)).items
                await _until("every change", lambda: len(seen) >= len(log))
                await asyncio.sleep(0.5)  # nothing more may come
                stopped = time.monotonic()
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
                return seen, log, time.monotonic() - stopped

        seen, log, took = asyncio.run(run())
    # A write whose answer the stop lost is repeated: then it is in the log twice, as two
    # versions, and the watch yields both.
    assert {c.value["n"] for c in log} == set(range(writes))
    assert seen == log
    seqs = [c.seq for c in seen]
    assert seqs == sorted(set(seqs))
    assert took < 5
