"""Client lease layer: one live instance per bot, as a context manager (sync and async).

Entering acquires the lease (waiting up to `wait_ms` for a live holder to go away), binds the
client to it, so every write the client makes carries the fence (`Persistd-Fence`), and renews
it in the background every third of the TTL. Once the lease is lost (a renewal refused, or a
write answered `fenced`), every later write raises `Fenced` and `on_lost` runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from persistd_client._core.call import Call
from persistd_client._core.endpoints import dumps, segment
from persistd_client.errors import Fenced, LeaseHeld, NotFound, PersistError

if TYPE_CHECKING:
    from persistd_client.client import AsyncPersistClient, PersistClient

log = logging.getLogger("persistd_client.lease")

MIN_TTL_MS = 100
MAX_TTL_MS = 3_600_000
OnLost = Callable[[Fenced], None]


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease as the service answers it."""

    name: str
    holder: str | None  # None once released
    token: int
    ttl_ms: int
    expires_at: datetime
    held: bool


def _lease_info(response: httpx.Response) -> LeaseInfo:
    data: dict[str, Any] = json.loads(response.content)
    return LeaseInfo(
        data["name"],
        data["holder"],
        int(data["token"]),
        int(data["ttl_ms"]),
        datetime.fromisoformat(data["expires_at"]),
        bool(data["held"]),
    )


def _path(ns: str, name: str) -> str:
    return f"/v1/{segment(ns, 'namespace')}/leases/{segment(name, 'lease name')}"


_JSON = {"Content-Type": "application/json"}


def acquire_call(ns: str, name: str, holder: str, ttl_ms: int) -> Call[LeaseInfo]:
    """POST acquire: a new token, or LeaseHeld. Repeating it is safe: the same holder may."""
    body = dumps({"holder": holder, "ttl_ms": ttl_ms})
    return Call("POST", _path(ns, name), _lease_info, headers=_JSON, body=body)


def renew_call(ns: str, name: str, token: int) -> Call[LeaseInfo]:
    """PUT renew with the current token; LeaseLost when it is not current any more."""
    return Call("PUT", _path(ns, name), _lease_info, headers=_JSON, body=dumps({"token": token}))


def release_call(ns: str, name: str, token: int) -> Call[LeaseInfo]:
    """DELETE release with the current token."""
    return Call("DELETE", _path(ns, name), _lease_info, params={"token": str(token)})


def read_call(ns: str, name: str) -> Call[LeaseInfo]:
    """GET the lease: holder, token, expiry."""
    return Call("GET", _path(ns, name), _lease_info)


def exit_on_lost(error: Fenced) -> None:
    """The default `on_lost`: a process that is no longer the owner must stop trading, now."""
    log.critical("%s; this process is no longer the owner and exits", error)
    logging.shutdown()
    os._exit(1)


class _LeaseCore:
    """What the sync and async leases share: options, the token, the fence, the lost state."""

    def __init__(
        self,
        namespace: str,
        name: str | None,
        ttl_ms: int,
        wait_ms: int,
        holder: str | None,
        on_lost: OnLost | None,
    ) -> None:
        if not MIN_TTL_MS <= ttl_ms <= MAX_TTL_MS:
            raise ValueError(f"ttl_ms must be {MIN_TTL_MS} to {MAX_TTL_MS}, not {ttl_ms}")
        self.namespace = namespace
        self.name = name or namespace
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.on_lost: OnLost = on_lost or exit_on_lost
        self.token: int | None = None
        self.lost: Fenced | None = None
        self._lock = threading.Lock()

    @property
    def _renew_every(self) -> float:
        return self.ttl_ms / 3000

    @property
    def _poll(self) -> float:
        return min(0.5, max(0.05, self.ttl_ms / 4000))

    def header(self) -> str:
        """The Persistd-Fence value of a write; raises Fenced once the lease is lost."""
        if self.lost is not None:
            raise self.lost
        if self.token is None:
            raise Fenced(f"lease {self.name!r} is not acquired", status=409, code="fenced")
        return f"{self.name}={self.token}"

    def refused(self, error: Fenced) -> Fenced:
        """A fenced write or renewal was refused: the lease is lost; on_lost runs once."""
        fresh = type(error)(
            f"lease {self.namespace}/{self.name} (token {self.token}) is lost: {error.detail}",
            status=error.status,
            code=error.code,
        )
        with self._lock:
            first = self.lost is None
            if first:
                self.lost = fresh
        if first:
            # In a thread of its own, so the refused write's caller still sees its error first.
            threading.Thread(target=self.on_lost, args=(fresh,), daemon=True).start()
        return fresh

    def _held_error(self, error: LeaseHeld) -> LeaseHeld:
        return LeaseHeld(
            f"lease {self.namespace}/{self.name} stayed held for {self.wait_ms} ms: {error.detail}",
            status=error.status,
            code=error.code,
        )

    def _acquired(self, info: LeaseInfo) -> None:
        self.token = info.token
        self.lost = None
        log.info("lease acquired: %s/%s token %d", self.namespace, self.name, info.token)


class Lease(_LeaseCore):
    """A lease held by this process, binding a PersistClient: `with Lease(client): ...`."""

    def __init__(
        self,
        client: PersistClient,
        name: str | None = None,
        *,
        ttl_ms: int = 10_000,
        wait_ms: int = 0,
        holder: str | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        super().__init__(client.namespace, name, ttl_ms, wait_ms, holder, on_lost)
        self.client = client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> LeaseInfo:
        """Take the lease, waiting up to wait_ms for a live holder; LeaseHeld names it."""
        deadline = time.monotonic() + self.wait_ms / 1000
        call = acquire_call(self.namespace, self.name, self.holder, self.ttl_ms)
        while True:
            try:
                info = self.client._send(call)
                break
            except LeaseHeld as error:
                left = deadline - time.monotonic()
                if left <= 0:  # a last attempt was made at the deadline itself
                    raise self._held_error(error) from None
                time.sleep(min(self._poll, left))
        self._acquired(info)
        return info

    def renew(self) -> LeaseInfo:
        """Extend the lease now; Fenced (LeaseLost) when it was lost."""
        assert self.token is not None, "renew before acquire"
        try:
            return self.client._send(renew_call(self.namespace, self.name, self.token))
        except (Fenced, NotFound) as error:
            lost = error if isinstance(error, Fenced) else Fenced(error.detail)
            raise self.refused(lost) from None

    def release(self) -> None:
        """Free the lease at once (a successor need not wait for the TTL)."""
        self._stop.set()
        token, self.token = self.token, None
        if token is not None and self.lost is None:
            self.lost = Fenced(f"lease {self.name!r} was released", status=409)
            with contextlib.suppress(Fenced, NotFound):  # already lost: nothing to free
                self.client._send(release_call(self.namespace, self.name, token))

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._renew_every):
            try:
                self.renew()
            except Fenced:
                return
            except PersistError as error:  # unreachable for now: the service judges expiry
                log.warning("lease renewal failed, retrying: %s", error)

    def __enter__(self) -> Lease:
        self.acquire()
        self.client.fence = self
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.release()
        self.client.fence = None


class AsyncLease(_LeaseCore):
    """A lease held by this process, binding an AsyncPersistClient: `async with AsyncLease(c)`."""

    def __init__(
        self,
        client: AsyncPersistClient,
        name: str | None = None,
        *,
        ttl_ms: int = 10_000,
        wait_ms: int = 0,
        holder: str | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        super().__init__(client.namespace, name, ttl_ms, wait_ms, holder, on_lost)
        self.client = client
        self._task: asyncio.Task[None] | None = None

    async def acquire(self) -> LeaseInfo:
        """Take the lease, waiting up to wait_ms for a live holder; LeaseHeld names it."""
        deadline = time.monotonic() + self.wait_ms / 1000
        call = acquire_call(self.namespace, self.name, self.holder, self.ttl_ms)
        while True:
            try:
                info = await self.client._send(call)
                break
            except LeaseHeld as error:
                left = deadline - time.monotonic()
                if left <= 0:  # a last attempt was made at the deadline itself
                    raise self._held_error(error) from None
                await asyncio.sleep(min(self._poll, left))
        self._acquired(info)
        return info

    async def renew(self) -> LeaseInfo:
        """Extend the lease now; Fenced (LeaseLost) when it was lost."""
        assert self.token is not None, "renew before acquire"
        try:
            return await self.client._send(renew_call(self.namespace, self.name, self.token))
        except (Fenced, NotFound) as error:
            lost = error if isinstance(error, Fenced) else Fenced(error.detail)
            raise self.refused(lost) from None

    async def release(self) -> None:
        """Free the lease at once (a successor need not wait for the TTL)."""
        token, self.token = self.token, None
        if token is not None and self.lost is None:
            self.lost = Fenced(f"lease {self.name!r} was released", status=409)
            with contextlib.suppress(Fenced, NotFound):
                await self.client._send(release_call(self.namespace, self.name, token))

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._renew_every)
            try:
                await self.renew()
            except Fenced:
                return
            except PersistError as error:
                log.warning("lease renewal failed, retrying: %s", error)

    async def __aenter__(self) -> AsyncLease:
        await self.acquire()
        self.client.fence = self
        self._task = asyncio.create_task(self._renew_loop())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.release()
        self.client.fence = None
