"""The seed's adapter interface on the real service: PersistBase and the four Utils adapters."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
import pytest

from persistd_client import (
    NO_RETRY,
    AsyncPersistClient,
    ConnectionFailed,
    InvalidValue,
    NotFound,
    PersistClient,
)
from persistd_client.adapters import (
    EntityId,
    PersistBase,
    PersistPartialAdapter,
    PersistRiskAdapter,
    PersistScheduleAdapter,
    PersistSignalAdapter,
    close_shared_client,
    domain_of,
)
from tests.support import free_port

T = TypeVar("T")

SIGNAL = {
    "id": "7f3c-signal",
    "position": "long",
    "priceOpen": 64250.5,
    "priceTakeProfit": 66000,
    "priceStopLoss": 63000.25,
    "symbol": "BTCUSDT",
    "strategyName": "my-strategy",
    "minuteEstimatedTime": 120,
    "note": "tp/sl?#100% é",
}
SCHEDULED = {**SIGNAL, "id": "sched-1", "position": "short", "scheduledAt": 1_700_000_000_000}
POSITIONS = [["BTCUSDT:my-strategy", {"signal": SIGNAL, "openTimestamp": 1_700_000_000_000}]]
LEVELS = {"7f3c-signal": {"profitLevels": [10, 20], "lossLevels": [-10]}}


@pytest.fixture(autouse=True)
def persistd_env(monkeypatch: pytest.MonkeyPatch, service_url: str, ns: str) -> Iterator[None]:
    """Point the default (environment-configured) client at the real service and namespace."""
    monkeypatch.setenv("PERSISTD_URL", service_url)
    monkeypatch.setenv("PERSISTD_NAMESPACE", ns)
    monkeypatch.delenv("PERSISTD_TOKEN", raising=False)
    yield
    PersistSignalAdapter.use_persist_signal_adapter(PersistBase)
    PersistRiskAdapter.use_persist_risk_adapter(PersistBase)
    PersistScheduleAdapter.use_persist_schedule_adapter(PersistBase)
    PersistPartialAdapter.use_persist_partial_adapter(PersistBase)


@pytest.fixture
def client(service_url: str, ns: str) -> Iterator[PersistClient]:
    with PersistClient(service_url, namespace=ns) as c:
        yield c


def run(body: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a fresh loop, closing the shared client before the loop ends."""

    async def main() -> T:
        try:
            return await body()
        finally:
            await close_shared_client()

    return asyncio.run(main())


class MemoryPersist:
    """An in-memory IPersistBase that records how the Utils layer drives it."""

    made: ClassVar[list["MemoryPersist"]] = []

    def __init__(self, entity_name: str, base_dir: str) -> None:
        self.entity_name, self.base_dir = entity_name, base_dir
        self.inits: list[bool] = []
        self.data: dict[str, Any] = {}
        MemoryPersist.made.append(self)

    async def wait_for_init(self, initial: bool) -> None:
        self.inits.append(initial)

    async def read_value(self, entity_id: EntityId) -> Any:
        return self.data[str(entity_id)]

    async def has_value(self, entity_id: EntityId) -> bool:
        return str(entity_id) in self.data

    async def write_value(self, entity_id: EntityId, entity: Any) -> None:
        self.data[str(entity_id)] = entity

    async def keys(self) -> AsyncIterator[str]:
        for key in sorted(self.data):
            yield key


# ---- PersistBase ----


def test_persist_base_writes_and_reads_the_same_entity() -> None:
    async def body() -> Any:
        persist = PersistBase("test-entity", "./test-data")
        await persist.wait_for_init(True)
        entity = {"id": "abc", "data": "value"}
        await persist.write_value("key1", entity)
        return await persist.read_value("key1")

    assert run(body) == {"id": "abc", "data": "value"}


def test_persist_base_stores_under_the_last_folder_of_base_dir(client: PersistClient) -> None:
    run(lambda: PersistBase("BTCUSDT_s", "./dump/data/misc/").write_value("k", [1]))
    assert client.get("misc", "BTCUSDT_s", "k").value == [1]


def test_read_value_of_a_missing_id_raises_not_found() -> None:
    with pytest.raises(NotFound):
        run(lambda: PersistBase("e", "./dump/data/misc/").read_value("absent"))


def test_has_value_tells_present_from_absent_including_a_stored_null() -> None:
    async def body() -> tuple[bool, bool, Any]:
        persist = PersistBase("e", "./dump/data/misc/")
        await persist.write_value("null", None)
        return (
            await persist.has_value("null"),
            await persist.has_value("absent"),
            await persist.read_value("null"),
        )

    assert run(body) == (True, False, None)


def test_int_entity_ids_are_stored_as_their_decimal_string(client: PersistClient) -> None:
    run(lambda: PersistBase("e", "./dump/data/misc/").write_value(1700000000, {"t": 1}))
    assert client.get("misc", "e", "1700000000").value == {"t": 1}


def test_keys_yields_every_stored_id_across_pages(client: PersistClient) -> None:
    ids = [f"{i:05d}" for i in range(1203)] + ["a/b", "é"]
    for start in range(0, len(ids), 500):
        client.batch_put("misc", "e", {k: 1 for k in ids[start : start + 500]})

    async def body() -> list[str]:
        stored_ids = PersistBase("e", "./dump/data/misc/").keys()
        return [key async for key in stored_ids]

    assert run(body) == sorted(ids, key=lambda k: k.encode())


@pytest.mark.parametrize(
    ("base_dir", "domain"),
    [
        ("./dump/data/signal/", "signal"),
        ("./dump/data/risk", "risk"),
        ("dump\\data\\partial\\", "partial"),
        ("/abs/schedule//", "schedule"),
        ("schedule", "schedule"),
    ],
)
def test_the_domain_is_the_last_folder_of_base_dir(base_dir: str, domain: str) -> None:
    assert domain_of(base_dir) == domain
    assert PersistBase("e", base_dir).domain == domain


@pytest.mark.parametrize("base_dir", ["", "./", "/"])
def test_a_base_dir_without_a_folder_is_refused(base_dir: str) -> None:
    with pytest.raises(ValueError):
        PersistBase("e", base_dir)


def test_wait_for_init_calls_the_service_once_and_later_calls_do_nothing(
    service_url: str, ns: str
) -> None:
    paths: list[str] = []

    async def record(request: httpx.Request) -> None:
        paths.append(request.url.path)

    async def body() -> None:
        async with (
            httpx.AsyncClient(event_hooks={"request": [record]}) as http,
            AsyncPersistClient(service_url, namespace=ns, http_client=http) as shared,
        ):

            class Counted(PersistBase):
                client = shared

            persist = Counted("e", "./dump/data/misc/")
            await persist.wait_for_init(False)
            assert paths == []
            await asyncio.gather(*(persist.wait_for_init(True) for _ in range(5)))
            await persist.wait_for_init(True)
            await persist.wait_for_init(False)

    run(body)
    assert paths == [f"/v1/{ns}/misc/e/init"]


def test_a_failed_wait_for_init_raises_and_is_tried_again_next_time() -> None:
    dead = AsyncPersistClient(f"http://127.0.0.1:{free_port()}", retry=NO_RETRY)

    class Unreachable(PersistBase):
        client = dead

    persist = Unreachable("e", "./dump/data/misc/")

    async def body() -> int:
        failures = 0
        for _ in range(2):
            try:
                await persist.wait_for_init(True)
            except ConnectionFailed:
                failures += 1
        await dead.aclose()
        return failures

    assert run(body) == 2


# ---- the four adapters ----


def test_signal_adapter_writes_then_reads_the_same_signal(client: PersistClient) -> None:
    async def body() -> tuple[Any, Any]:
        before = await PersistSignalAdapter.read_signal_data("BTCUSDT", "my-strategy")
        await PersistSignalAdapter.write_signal_data(SIGNAL, "BTCUSDT", "my-strategy")
        return before, await PersistSignalAdapter.read_signal_data("BTCUSDT", "my-strategy")

    assert run(body) == (None, SIGNAL)
    assert client.get("signal", "BTCUSDT_my-strategy", "BTCUSDT").value == SIGNAL


def test_writing_a_none_signal_clears_it() -> None:
    async def body() -> Any:
        await PersistSignalAdapter.write_signal_data(SIGNAL, "ETHUSDT", "s")
        await PersistSignalAdapter.write_signal_data(None, "ETHUSDT", "s")
        return await PersistSignalAdapter.read_signal_data("ETHUSDT", "s")

    assert run(body) is None


def test_a_signal_of_the_wrong_shape_fails_loudly() -> None:
    with pytest.raises(InvalidValue):
        run(lambda: PersistSignalAdapter.write_signal_data({"id": 1}, "BTCUSDT", "s"))


def test_schedule_adapter_writes_then_reads_the_same_scheduled_signal(
    client: PersistClient,
) -> None:
    async def body() -> tuple[Any, Any]:
        before = await PersistScheduleAdapter.read_schedule_data("BTCUSDT", "my-strategy")
        await PersistScheduleAdapter.write_schedule_data(SCHEDULED, "BTCUSDT", "my-strategy")
        return before, await PersistScheduleAdapter.read_schedule_data("BTCUSDT", "my-strategy")

    assert run(body) == (None, SCHEDULED)
    assert client.get("schedule", "BTCUSDT_my-strategy", "BTCUSDT").value == SCHEDULED


def test_risk_adapter_reads_an_empty_list_until_positions_are_written(
    client: PersistClient,
) -> None:
    async def body() -> tuple[Any, Any]:
        before = await PersistRiskAdapter.read_position_data("my-risk")
        await PersistRiskAdapter.write_position_data(POSITIONS, "my-risk")
        return before, await PersistRiskAdapter.read_position_data("my-risk")

    assert run(body) == ([], POSITIONS)
    assert client.get("risk", "my-risk", "positions").value == POSITIONS


def test_partial_adapter_reads_an_empty_dict_until_levels_are_written(
    client: PersistClient,
) -> None:
    async def body() -> tuple[Any, Any]:
        before = await PersistPartialAdapter.read_partial_data("BTCUSDT", "my-strategy")
        await PersistPartialAdapter.write_partial_data(LEVELS, "BTCUSDT", "my-strategy")
        return before, await PersistPartialAdapter.read_partial_data("BTCUSDT", "my-strategy")

    assert run(body) == ({}, LEVELS)
    assert client.get("partial", "BTCUSDT_my-strategy", "levels").value == LEVELS


def test_symbols_and_strategies_are_stored_apart(client: PersistClient) -> None:
    other = {**SIGNAL, "id": "other"}

    async def body() -> list[Any]:
        await PersistSignalAdapter.write_signal_data(SIGNAL, "BTCUSDT", "a")
        await PersistSignalAdapter.write_signal_data(other, "BTCUSDT", "b")
        return [
            await PersistSignalAdapter.read_signal_data("BTCUSDT", "a"),
            await PersistSignalAdapter.read_signal_data("BTCUSDT", "b"),
            await PersistSignalAdapter.read_signal_data("ETHUSDT", "a"),
        ]

    assert run(body) == [SIGNAL, other, None]
    assert [c.name for c in client.entities("signal")] == ["BTCUSDT_a", "BTCUSDT_b"]


# ---- the Utils layer: constructor, memo and wait_for_init ----


def test_use_adapter_builds_instances_with_the_seed_entity_name_and_base_dir() -> None:
    MemoryPersist.made.clear()
    PersistSignalAdapter.use_persist_signal_adapter(MemoryPersist)
    PersistScheduleAdapter.use_persist_schedule_adapter(MemoryPersist)
    PersistRiskAdapter.use_persist_risk_adapter(MemoryPersist)
    PersistPartialAdapter.use_persist_partial_adapter(MemoryPersist)

    async def body() -> None:
        await PersistSignalAdapter.write_signal_data(SIGNAL, "BTCUSDT", "s1")
        await PersistScheduleAdapter.write_schedule_data(SCHEDULED, "BTCUSDT", "s1")
        await PersistRiskAdapter.write_position_data(POSITIONS, "r1")
        await PersistPartialAdapter.write_partial_data(LEVELS, "BTCUSDT", "s1")

    run(body)
    made = [(m.entity_name, m.base_dir, sorted(m.data)) for m in MemoryPersist.made]
    assert made == [
        ("BTCUSDT_s1", "./dump/data/signal/", ["BTCUSDT"]),
        ("BTCUSDT_s1", "./dump/data/schedule/", ["BTCUSDT"]),
        ("r1", "./dump/data/risk/", ["positions"]),
        ("BTCUSDT_s1", "./dump/data/partial/", ["levels"]),
    ]


def test_an_instance_is_memoized_per_context_and_initialised_on_first_access_only() -> None:
    MemoryPersist.made.clear()
    PersistSignalAdapter.use_persist_signal_adapter(MemoryPersist)

    async def body() -> None:
        await PersistSignalAdapter.read_signal_data("BTCUSDT", "s")
        await PersistSignalAdapter.write_signal_data(SIGNAL, "BTCUSDT", "s")
        await PersistSignalAdapter.read_signal_data("BTCUSDT", "s")
        await PersistSignalAdapter.read_signal_data("ETHUSDT", "s")

    run(body)
    assert [(m.entity_name, m.inits) for m in MemoryPersist.made] == [
        ("BTCUSDT_s", [True, False, False]),
        ("ETHUSDT_s", [True]),
    ]


def test_use_adapter_and_clear_drop_the_memoized_instances() -> None:
    MemoryPersist.made.clear()
    PersistRiskAdapter.use_persist_risk_adapter(MemoryPersist)
    run(lambda: PersistRiskAdapter.read_position_data("r"))
    PersistRiskAdapter.clear()
    run(lambda: PersistRiskAdapter.read_position_data("r"))
    PersistRiskAdapter.use_persist_risk_adapter(MemoryPersist)
    run(lambda: PersistRiskAdapter.read_position_data("r"))
    assert [m.inits for m in MemoryPersist.made] == [[True], [True], [True]]


def test_adapter_reads_go_through_has_value_then_read_value() -> None:
    MemoryPersist.made.clear()
    PersistPartialAdapter.use_persist_partial_adapter(MemoryPersist)
    run(lambda: PersistPartialAdapter.read_partial_data("BTCUSDT", "s"))
    MemoryPersist.made[0].data["levels"] = LEVELS
    assert run(lambda: PersistPartialAdapter.read_partial_data("BTCUSDT", "s")) == LEVELS


# ---- crash recovery: the seed's integration pattern across real processes ----

WRITER = """
import asyncio, json, sys
from persistd_client.adapters import PersistBase, PersistSignalAdapter

PersistSignalAdapter.use_persist_signal_adapter(PersistBase)
signal = json.loads(sys.argv[1])
asyncio.run(PersistSignalAdapter.write_signal_data(signal, "BTCUSDT", "my-strategy"))
print("written")
"""

READER = """
import asyncio, json
from persistd_client.adapters import PersistBase, PersistSignalAdapter

PersistSignalAdapter.use_persist_signal_adapter(PersistBase)
restored = asyncio.run(PersistSignalAdapter.read_signal_data("BTCUSDT", "my-strategy"))
print(json.dumps(restored))
"""


def _python(script: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_signal_survives_a_process_restart(tmp_path: Path) -> None:
    assert _python(WRITER, json.dumps(SIGNAL), cwd=tmp_path).strip() == "written"
    restored = json.loads(_python(READER, cwd=tmp_path))
    assert restored == SIGNAL
    assert not (tmp_path / "dump").exists()
