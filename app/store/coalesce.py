"""Store layer: unconditional upserts that arrive together, written by one statement.

A process writes at most IN_FLIGHT upsert statements at once. A write that arrives while they
run waits for one of them to finish and then goes with every other write that arrived
meanwhile: one statement, one transaction, one commit for all of them (group commit). Each
write is acknowledged only after that commit, with its own version. A write that finds fewer
than IN_FLIGHT running and nobody queued goes out at once, by itself, with the single-row
statement.

Waiting in the queue counts against the pool's acquire timeout, as waiting for a connection
would: a write queued that long fails with 503 unavailable and is never written, and a group
gets what is left of its oldest write's wait to acquire its connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InvalidJson, InvalidValue

if TYPE_CHECKING:
    from . import Address, Fence, Meta

IN_FLIGHT = 2  # upsert statements running at once per process
MAX_ITEMS = 256  # writes in one statement


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


# Write one upsert, or a group, acquiring a connection within the given seconds.
One = Callable[[Upsert, float], Awaitable["Meta | None"]]
Many = Callable[[list[Upsert], float], Awaitable[list["Meta | None"]]]


class Coalescer:
    """Queue upserts and write them in groups; `one` writes a single upsert, `many` a group of
    distinct addresses in one statement. A write queued for `wait` seconds gets `expired()`."""

    def __init__(self, one: One, many: Many, wait: float, expired: Callable[[], Exception]) -> None:
        self._one = one
        self._many = many
        self._wait = wait
        self._expired = expired
        self._queue: list[Upsert] = []
        self._busy = 0  # statements running
        self._groups: set[asyncio.Task[None]] = set()  # the queued groups' writes
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None

    async def put(self, item: Upsert) -> Meta | None:
        if not self._queue and self._busy < IN_FLIGHT:
            # Alone: written at once, in the caller's own task.
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
        return await item.done

    def _expire(self) -> None:
        """Fail the writes queued for `wait` seconds; come back for the next oldest."""
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
            # Two writes to one address cannot share a statement: the later waits for the next.
            group: list[Upsert] = []
            rest: list[Upsert] = []
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
            task = asyncio.get_running_loop().create_task(self._write(group))
            self._groups.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._groups.discard(task)
        self._busy -= 1
        self._schedule()

    async def _write(self, group: list[Upsert]) -> None:
        oldest = min(item.queued for item in group)
        wait = max(0.001, oldest + self._wait - asyncio.get_running_loop().time())
        if len(group) == 1:
            await self._write_one(group[0], wait)
            return
        try:
            results = await self._many(group, wait)
        except (InvalidJson, InvalidValue):
            # One document PostgreSQL refuses fails the statement: each write on its own, so
            # only that one is refused.
            await asyncio.gather(*(self._write_one(item, self._wait) for item in group))
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

    async def _write_one(self, item: Upsert, wait: float) -> None:
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
