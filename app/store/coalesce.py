"""Store layer: single-record operations that arrive together, run as one statement.

Unconditional upserts and single-record reads are each grouped the same way. A process runs at
most IN_FLIGHT statements of one kind at once. An operation that arrives while they run waits
for one of them to finish and then goes with every other one that arrived meanwhile: one
statement for all of them; for writes one transaction and one commit (group commit). Each write
is acknowledged only after that commit, with its own version; each read answers what the
statement, which started after the read arrived, saw at its address. An operation that finds
fewer than IN_FLIGHT running and nobody queued goes out at once, by itself, with the
single-row statement.

Waiting in the queue counts against the pool's acquire timeout, as waiting for a connection
would: an operation queued that long fails with 503 unavailable (a write is then never
written), and a group gets what is left of its oldest member's wait to acquire its connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ..errors import InvalidJson, InvalidValue

if TYPE_CHECKING:
    from . import Address, Fence, Meta

IN_FLIGHT = 2  # statements of one kind (upserts, reads) running at once per process
MAX_ITEMS = 256  # operations in one statement

R = TypeVar("R")


class Queued(Protocol):
    """What the coalescer needs of an operation: its address (two operations on one address
    never share a statement), when it was queued, and the future its answer goes to."""

    @property
    def addr(self) -> Address: ...

    queued: float
    done: asyncio.Future[Any]


Q = TypeVar("Q", bound=Queued)


@dataclass(eq=False, slots=True)
class Upsert:
    addr: Address
    value: str  # the JSON document, as text
    writer: int | None  # the token id recorded in the change log
    fence: Fence | None
    logs: bool  # the domain keeps history
    queued: float = 0.0  # loop time it was queued at
    # Once queued: the new version and time; None: the fence's lease is not held.
    done: asyncio.Future[Meta | None] = field(init=False)


# A read's answer: the stored row (value, version, updated_at), or None when absent.
Found = tuple[Any, ...] | None


@dataclass(eq=False, slots=True)
class Read:
    addr: Address
    queued: float = 0.0
    done: asyncio.Future[Found] = field(init=False)  # once queued


class Coalescer(Generic[Q, R]):
    """Queue operations and run them in groups; `one` runs a single operation, `many` a group
    of distinct addresses in one statement (answers in the group's order), each acquiring a
    connection within the given seconds. An operation queued for `wait` seconds gets
    `expired()`."""

    def __init__(
        self,
        one: Callable[[Q, float], Awaitable[R]],
        many: Callable[[list[Q], float], Awaitable[list[R]]],
        wait: float,
        expired: Callable[[], Exception],
    ) -> None:
        self._one = one
        self._many = many
        self._wait = wait
        self._expired = expired
        self._queue: list[Q] = []
        self._busy = 0  # statements running
        self._groups: set[asyncio.Task[None]] = set()  # the queued groups' statements
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, item: Q) -> R:
        if not self._queue and self._busy < IN_FLIGHT:
            # Alone: run at once, in the caller's own task.
            self._busy += 1
            try:
                return await self._one(item, self._wait)
            finally:
                self._busy -= 1
                self._schedule()
        loop = asyncio.get_running_loop()
        item.queued, item.done = loop.time(), loop.create_future()
        self._queue.append(item)
        self._schedule()
        if self._timer is None:
            self._timer = loop.call_later(self._wait, self._expire)
        result: R = await item.done
        return result

    def _expire(self) -> None:
        """Fail the operations queued for `wait` seconds; come back for the next oldest."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        kept = []
        for item in self._queue:
            if item.done.done():
                continue
            if now - item.queued >= self._wait:
                item.done.set_exception(self._expired())
            else:
                kept.append(item)
        self._queue = kept
        if kept:
            oldest = min(item.queued for item in kept)
            self._timer = loop.call_later(oldest + self._wait - now, self._expire)

    def _schedule(self) -> None:
        if self._queue and not self._scheduled and self._busy < IN_FLIGHT:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue and self._busy < IN_FLIGHT:
            # Two operations on one address never share a statement: the later waits for
            # the next.
            group: list[Q] = []
            rest: list[Q] = []
            seen: set[Address] = set()
            for item in self._queue:
                if item.done.done():
                    continue  # its request is gone
                if len(group) < MAX_ITEMS and item.addr not in seen:
                    seen.add(item.addr)
                    group.append(item)
                else:
                    rest.append(item)
            self._queue = rest
            if not group:
                return
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._groups.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._groups.discard(task)
        self._busy -= 1
        self._schedule()

    async def _run(self, group: list[Q]) -> None:
        oldest = min(item.queued for item in group)
        wait = max(0.001, oldest + self._wait - asyncio.get_running_loop().time())
        if len(group) == 1:
            await self._run_one(group[0], wait)
            return
        try:
            results = await self._many(group, wait)
        except (InvalidJson, InvalidValue):
            # One document PostgreSQL refuses fails the statement: each write on its own, so
            # only that one is refused (reads never raise these).
            await asyncio.gather(*(self._run_one(item, self._wait) for item in group))
            return
        except BaseException as exc:
            for item in group:
                if not item.done.done():
                    item.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, result in zip(group, results, strict=True):
            if not item.done.done():
                item.done.set_result(result)

    async def _run_one(self, item: Q, wait: float) -> None:
        try:
            result = await self._one(item, wait)
        except BaseException as exc:
            if not item.done.done():
                item.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        if not item.done.done():
            item.done.set_result(result)
