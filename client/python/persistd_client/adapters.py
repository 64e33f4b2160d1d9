"""Adapter layer: the seed's persistence interface (PersistBase and four adapters) on persistd.

`PersistBase(entity_name, base_dir)` stores records at
`/v1/{namespace}/{domain}/{entity_name}/records/{entity_id}`, where the domain is the last folder
of `base_dir` (`./dump/data/signal/` -> `signal`). The four adapters mirror the seed's Utils
singletons: a constructor that can be swapped with `use_persist_<domain>_adapter(Ctor)`, instances
memoized per context, and `wait_for_init(initial)` called before every access.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Protocol

from persistd_client.client import AsyncPersistClient

EntityId = str | int
SignalData = dict[str, Any] | None
ScheduleData = dict[str, Any] | None
RiskData = list[Any]
PartialData = dict[str, Any]


class IPersistBase(Protocol):
    """The seed's storage interface, in Python: one instance per entity name."""

    async def wait_for_init(self, initial: bool) -> None: ...

    async def read_value(self, entity_id: EntityId) -> Any: ...

    async def has_value(self, entity_id: EntityId) -> bool: ...

    async def write_value(self, entity_id: EntityId, entity: Any) -> None: ...

    def keys(self) -> AsyncIterator[str]: ...


PersistBaseCtor = Callable[[str, str], IPersistBase]

# One client per event loop: httpx connections belong to the loop that opened them, and
# every PersistBase instance of that loop shares the pool (the seed's "shared client" pattern).
_shared: dict[asyncio.AbstractEventLoop, AsyncPersistClient] = {}


def shared_client() -> AsyncPersistClient:
    """The running loop's client configured from PERSISTD_URL, _TOKEN and _NAMESPACE."""
    loop = asyncio.get_running_loop()
    client = _shared.get(loop)
    if client is None:
        # A closed loop's client can never send again; forget it (its sockets died with the loop).
        for closed in [other for other in _shared if other.is_closed()]:
            del _shared[closed]
        client = _shared[loop] = AsyncPersistClient()
    return client


async def close_shared_client() -> None:
    """Close the running loop's shared client (a new one is made on next use)."""
    client = _shared.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def domain_of(base_dir: str) -> str:
    """The domain for a base directory: its last folder (`./dump/data/signal/` -> `signal`)."""
    parts = [p for p in re.split(r"[\\/]+", base_dir) if p not in ("", ".")]
    if not parts:
        raise ValueError(f"base_dir {base_dir!r} names no folder to use as the domain")
    return parts[-1]


class PersistBase:
    """The seed's PersistBase, stored in persistd instead of files.

    Set the class attribute `client` on a subclass to choose the service, token or namespace;
    by default the running loop's shared client (configured from the environment) is used.
    """

    client: ClassVar[AsyncPersistClient | None] = None

    def __init__(self, entity_name: str, base_dir: str = "./dump/data") -> None:
        self.entity_name = str(entity_name)
        self.base_dir = base_dir
        self.domain = domain_of(base_dir)
        self._initialized = False
        self._init_lock = asyncio.Lock()

    def _client(self) -> AsyncPersistClient:
        return type(self).client or shared_client()

    async def wait_for_init(self, initial: bool) -> None:
        """Check the service once (on the first `initial=True`); later calls do nothing."""
        if not initial or self._initialized:
            return
        async with self._init_lock:
            if not self._initialized:
                await self._client().init(self.domain, self.entity_name, True)
                self._initialized = True

    async def read_value(self, entity_id: EntityId) -> Any:
        """The stored value; raises NotFound when there is none."""
        record = await self._client().get(self.domain, self.entity_name, entity_id)
        return record.value

    async def has_value(self, entity_id: EntityId) -> bool:
        """Whether a value is stored for this id."""
        return await self._client().has(self.domain, self.entity_name, entity_id)

    async def write_value(self, entity_id: EntityId, entity: Any) -> None:
        """Store the whole value; returns only once the service acknowledged it durably."""
        await self._client().put(self.domain, self.entity_name, entity_id, entity)

    async def keys(self) -> AsyncIterator[str]:
        """Every stored id of this entity, in byte order."""
        async for key in self._client().iter_keys(self.domain, self.entity_name):
            yield key


def _symbol_strategy(symbol: str, strategy_name: str) -> tuple[str, str]:
    """The seed's memo key and entity name of a (symbol, strategy) context."""
    return f"{symbol}:{strategy_name}", f"{symbol}_{strategy_name}"


class _PersistUtils:
    """Shared by the four adapters: the constructor, the memo and the read/write pattern."""

    base_dir: ClassVar[str]

    def __init__(self) -> None:
        self._ctor: PersistBaseCtor = PersistBase
        self._memo: dict[str, IPersistBase] = {}

    def _use(self, ctor: PersistBaseCtor) -> None:
        self._ctor = ctor
        self.clear()

    def clear(self) -> None:
        """Drop the memoized instances; the next access builds (and initialises) new ones."""
        self._memo.clear()

    async def _storage(self, memo_key: str, entity_name: str) -> IPersistBase:
        initial = memo_key not in self._memo
        if initial:
            self._memo[memo_key] = self._ctor(entity_name, self.base_dir)
        storage = self._memo[memo_key]
        await storage.wait_for_init(initial)
        return storage

    async def _read(self, memo_key: str, entity_name: str, key: str, default: Any) -> Any:
        """The stored value, or `default` when there is none (the seed's has-then-read)."""
        storage = await self._storage(memo_key, entity_name)
        if await storage.has_value(key):
            return await storage.read_value(key)
        return default

    async def _write(self, memo_key: str, entity_name: str, key: str, value: Any) -> None:
        storage = await self._storage(memo_key, entity_name)
        await storage.write_value(key, value)


class PersistSignalUtils(_PersistUtils):
    """Active pending signals: entity `{symbol}_{strategy_name}`, key `symbol`."""

    base_dir = "./dump/data/signal/"

    def use_persist_signal_adapter(self, ctor: PersistBaseCtor) -> None:
        """Store signals with this constructor from now on (memoized instances are dropped)."""
        self._use(ctor)

    async def read_signal_data(self, symbol: str, strategy_name: str) -> SignalData:
        """The stored signal, or None."""
        memo, entity = _symbol_strategy(symbol, strategy_name)
        signal: SignalData = await self._read(memo, entity, symbol, None)
        return signal

    async def write_signal_data(self, signal: SignalData, symbol: str, strategy_name: str) -> None:
        """Store the signal (None clears it)."""
        memo, entity = _symbol_strategy(symbol, strategy_name)
        await self._write(memo, entity, symbol, signal)


class PersistScheduleUtils(_PersistUtils):
    """Scheduled signals: entity `{symbol}_{strategy_name}`, key `symbol`."""

    base_dir = "./dump/data/schedule/"

    def use_persist_schedule_adapter(self, ctor: PersistBaseCtor) -> None:
        """Store scheduled signals with this constructor from now on (memo dropped)."""
        self._use(ctor)

    async def read_schedule_data(self, symbol: str, strategy_name: str) -> ScheduleData:
        """The stored scheduled signal, or None."""
        memo, entity = _symbol_strategy(symbol, strategy_name)
        scheduled: ScheduleData = await self._read(memo, entity, symbol, None)
        return scheduled

    async def write_schedule_data(
        self, scheduled: ScheduleData, symbol: str, strategy_name: str
    ) -> None:
        """Store the scheduled signal (None clears it)."""
        memo, entity = _symbol_strategy(symbol, strategy_name)
        await self._write(memo, entity, symbol, scheduled)


class PersistRiskUtils(_PersistUtils):
    """Active risk positions: entity `risk_name`, key `"positions"`."""

    base_dir = "./dump/data/risk/"
    KEY = "positions"

    def use_persist_risk_adapter(self, ctor: PersistBaseCtor) -> None:
        """Store risk positions with this constructor from now on (memo dropped)."""
        self._use(ctor)

    async def read_position_data(self, risk_name: str) -> RiskData:
        """The stored `[signal key, position]` pairs, or [] when none are stored."""
        positions: RiskData = await self._read(risk_name, risk_name, self.KEY, [])
        return positions

    async def write_position_data(self, positions: RiskData, risk_name: str) -> None:
        """Store the `[signal key, position]` pairs."""
        await self._write(risk_name, risk_name, self.KEY, positions)


class PersistPartialUtils(_PersistUtils):
    """Partial profit/loss levels: entity `{symbol}_{strategy_name}`, key `"levels"`."""

    base_dir = "./dump/data/partial/"
    KEY = "levels"

    def use_persist_partial_adapter(self, ctor: PersistBaseCtor) -> None:
        """Store partial levels with this constructor from now on (memo dropped)."""
        self._use(ctor)

    async def read_partial_data(self, symbol: str, strategy_name: str) -> PartialData:
        """The stored levels by signal id, or {} when none are stored."""
        memo, entity = _symbol_strategy(symbol, strategy_name)
        levels: PartialData = await self._read(memo, entity, self.KEY, {})
        return levels

    async def write_partial_data(
        self, levels: PartialData, symbol: str, strategy_name: str
    ) -> None:
        """Store the levels by signal id."""
        memo, entity = _symbol_strategy(symbol, strategy_name)
        await self._write(memo, entity, self.KEY, levels)


PersistSignalAdapter = PersistSignalUtils()
PersistRiskAdapter = PersistRiskUtils()
PersistScheduleAdapter = PersistScheduleUtils()
PersistPartialAdapter = PersistPartialUtils()
