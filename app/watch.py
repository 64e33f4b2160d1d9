"""Watch layer: one tail of the change log per process, fanned out to Server-Sent Events streams.

A change is read from the change log only, never from a notification, so a lost NOTIFY costs
latency and not a change. Wake-ups: a write committed here wakes this process's tail at once; a
coalesced pg_notify (at most one per NOTIFY_EVERY, from a dedicated connection) wakes the other
processes; and the tail polls every `watch_poll` seconds whatever happens.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import orjson
from starlette.types import Receive

from .auth import Principal
from .config import Settings
from .db import asyncpg_dsn
from .errors import AppError, Unavailable
from .store import Store
from .store import history as log
from .store.history import Change

CHANNEL = "persistd_changes"
NOTIFY_EVERY = 0.005  # seconds: one pg_notify per interval at most, however many writes
# The listening connections name themselves, so writers can skip NOTIFY while nobody listens.
LISTENER_NAME = "persistd-watch"
LISTENERS_CHECK_EVERY = 1.0  # seconds a "somebody listens" answer is trusted
LISTENERS = (
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity "
    "WHERE application_name = $1 AND datname = current_database())"
)
TAIL_PAGE = 1000
logger = logging.getLogger("persistd.watch")


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def change_json(change: Change) -> dict[str, object]:
    return {
        "seq": change.seq,
        "namespace": change.namespace,
        "domain": change.domain,
        "entity": change.entity,
        "key": change.key,
        "version": change.version,
        "op": change.op,
        "value": None if change.value is None else orjson.Fragment(change.value),
        "at": change.at.isoformat(),
        "token_id": change.token_id,
    }


def sse_event(change: Change) -> bytes:
    data = orjson.dumps(change_json(change))
    return b"id: %d\nevent: change\ndata: %s\n\n" % (change.seq, data)


HEARTBEAT = b": heartbeat\n\n"


@dataclass(frozen=True, slots=True)
class Namespaces:
    """The namespaces a watcher follows: those named (None: every one), and of those only the
    ones its token's pattern allows (no principal: auth is off, or the route checked it)."""

    names: frozenset[str] | None
    principal: Principal | None = None

    def __contains__(self, namespace: str) -> bool:
        return (self.names is None or namespace in self.names) and (
            self.principal is None or self.principal.allows_namespace(namespace)
        )


@dataclass(eq=False)
class Subscriber:
    namespaces: Namespaces
    domain: str | None
    entity: str | None
    start: int  # the hub had dispatched every change up to here when this subscriber joined
    queue: asyncio.Queue[tuple[int, bytes]]
    overflowed: bool = False

    def wants(self, change: Change) -> bool:
        return (
            change.namespace in self.namespaces
            and (self.domain is None or change.domain == self.domain)
            and (self.entity is None or change.entity == self.entity)
        )


def _drain(
    first: tuple[int, bytes], queue: "asyncio.Queue[tuple[int, bytes]]"
) -> list[tuple[int, bytes]]:
    """`first` and whatever else the queue holds now, in order."""
    items = [first]
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


class Hub:
    """This process's watchers and the one tail of the change log that feeds them."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._dsn = asyncpg_dsn(settings.database_url or "postgresql://")
        self._subscribers: set[Subscriber] = set()
        self._position = -1  # every change up to here went to the subscribers of its time
        self._wake = asyncio.Event()
        self._tail: asyncio.Task[None] | None = None
        self._started = asyncio.Lock()
        self._listener: asyncpg.Connection | None = None
        self._notifier: asyncpg.Connection | None = None
        self._notify_task: asyncio.Task[None] | None = None
        self._notify_pending = False
        self._listeners = (False, -1.0)  # (somebody listens, when that was checked)
        store.changed = self.local_change

    @property
    def watchers(self) -> int:
        return len(self._subscribers)

    # ---- wake-ups ----

    def local_change(self) -> None:
        """A logged write committed in this process: wake the tail, and the other processes."""
        self._wake.set()
        if not self._notify_pending:
            self._notify_pending = True
            self._notify_task = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        await asyncio.sleep(NOTIFY_EVERY)
        self._notify_pending = False
        try:
            if self._notifier is None or self._notifier.is_closed():
                self._notifier = await asyncpg.connect(
                    self._dsn, timeout=self._settings.pool_timeout
                )
            listening, checked = self._listeners
            now = asyncio.get_running_loop().time()
            if now - checked > LISTENERS_CHECK_EVERY:
                listening = bool(await self._notifier.fetchval(LISTENERS, LISTENER_NAME))
                self._listeners = (listening, now)
            # With no watcher anywhere, a write costs no NOTIFY (a new one is found within a
            # second, and the watchers' polling covers that second).
            if listening:
                await self._notifier.execute(f"NOTIFY {CHANNEL}")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            # The other processes still poll: a lost notification is only a later delivery.
            logger.debug("notify failed: %s", exc)
            await self._drop(self._notifier)
            self._notifier = None

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            # A dedicated connection: a pooled one would lose its LISTEN to another request.
            conn = await asyncpg.connect(
                self._dsn,
                timeout=self._settings.pool_timeout,
                server_settings={"application_name": LISTENER_NAME},
            )
            await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            logger.debug("listen failed: %s", exc)
            return
        self._listener = conn

    @staticmethod
    async def _drop(conn: asyncpg.Connection | None) -> None:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    # ---- the tail ----

    async def _start(self) -> None:
        async with self._started:
            if self._tail is not None:
                return
            self._position = await log.horizon(self._store) - 1
            await self._listen()
            self._tail = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.watch_poll)
            self._wake.clear()
            await self._listen()
            try:
                while True:
                    page = await log.tail(self._store, self._position, TAIL_PAGE)
                    self._dispatch(page)
                    if len(page) < TAIL_PAGE:
                        break
            except AppError as exc:  # the database is away: the next round tries again
                logger.warning("watch tail failed: %s", exc.detail)

    def _dispatch(self, page: list[Change]) -> None:
        for change in page:
            self._position = change.seq
            event: bytes | None = None
            for sub in self._subscribers:
                if sub.overflowed or not sub.wants(change):
                    continue
                event = event or sse_event(change)
                try:
                    sub.queue.put_nowait((change.seq, event))
                except asyncio.QueueFull:
                    sub.overflowed = True  # it drains what it has, then ends

    # ---- subscribers ----

    async def admit(self) -> None:
        """Refuse a watcher past the cap, or while the database is away (503), before its
        response starts."""
        if len(self._subscribers) >= self._settings.watch_max:
            raise Unavailable(
                f"this process serves {self._settings.watch_max} watchers at most; retry later",
                headers={"Retry-After": str(self._settings.retry_after)},
            )
        await self._start()

    async def _subscribe(
        self, namespaces: Namespaces, domain: str | None, entity: str | None
    ) -> Subscriber:
        await self._start()
        sub = Subscriber(
            namespaces, domain, entity, self._position, asyncio.Queue(self._settings.watch_buffer)
        )
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    async def _catch_up(self, sub: Subscriber, after: int) -> list[Change]:
        """The next page of the change log after `after`, up to where the hub took over."""
        names = sub.namespaces.names
        which = None if names is None else next(iter(names)) if len(names) == 1 else sorted(names)
        return await log.changes(
            self._store, which, after, TAIL_PAGE, sub.domain, sub.entity, upto=sub.start
        )

    async def stream(
        self,
        namespaces: Namespaces,
        domain: str | None,
        entity: str | None,
        since: int | None,
        receive: Receive,
    ) -> AsyncIterator[bytes]:
        """The SSE body: catch up from `since` through the change log, then follow the hub.

        `receive` tells when the client went away (or the server is shutting down), so the
        slot is freed at once rather than at the next heartbeat.
        """
        # Subscribed here, not before the response: a stream that never starts holds no slot.
        sub = await self._subscribe(namespaces, domain, entity)
        gone = asyncio.ensure_future(_disconnected(receive))
        getter: asyncio.Future[tuple[int, bytes]] | None = None
        try:
            position = sub.start if since is None else since
            # The starting position as an event id without data: a client that reconnects
            # before any change arrived resumes from here, not from a later "now".
            yield b"retry: 1000\nid: %d\n\n" % position
            while position < sub.start:
                page = await self._catch_up(sub, position)
                chunk = []
                for change in page:
                    position = change.seq
                    if sub.wants(change):  # the token's pattern is checked here, not in SQL
                        chunk.append(sse_event(change))
                if chunk:
                    yield b"".join(chunk)  # a page's events in one write
                if len(page) < TAIL_PAGE:
                    break
            heartbeat = self._settings.watch_heartbeat
            while True:
                if sub.queue.empty():
                    if sub.overflowed:
                        resume = orjson.dumps({"resume": position})
                        yield b"event: overflow\ndata: %s\n\n" % resume
                        return
                    getter = asyncio.ensure_future(sub.queue.get())
                    done, _ = await asyncio.wait(
                        {getter, gone}, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()  # not yet run: the queue keeps its item
                        if gone in done:
                            return
                        yield HEARTBEAT
                        continue
                    first = getter.result()
                else:
                    first = sub.queue.get_nowait()
                # Every event queued by now goes in one write: under load a stream costs a
                # write per wake-up, not per change.
                chunk = []
                for seq, event in _drain(first, sub.queue):
                    if seq > position:
                        position = seq
                        chunk.append(event)
                if chunk:
                    yield b"".join(chunk)
        finally:
            gone.cancel()
            if getter is not None:
                getter.cancel()  # the stream was cancelled (max_seconds) while waiting
            self.unsubscribe(sub)

    async def close(self) -> None:
        """Stop the tail and close the dedicated connections."""
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
            self._tail = None
        if self._notify_task is not None:
            self._notify_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notify_task
        for conn in (self._listener, self._notifier):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
        self._listener = self._notifier = None
