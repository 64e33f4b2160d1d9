"""Client lease layer: one live instance per bot, as a context manager (sync and async).

Entering acquires the lease (waiting up to `wait_ms` for a live holder to go away), binds the
client to it, so every write the client makes carries the fence (`Persistd-Fence`), and renews
it in the background every third of the TTL. Once the lease is lost (a renewal refused, or a
write answered `fenced`), every later write raises `Fenced` and `on_lost` runs once.

The background renewals of every lease in the process whose client has the same URL and token,
sync and async alike, are sent together: one `POST /v1/_leases/renew` per tick (_Renewer).
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from persistd_client._core.call import Call
from persistd_client._core.endpoints import dumps, segment
from persistd_client.errors import Fenced, LeaseHeld, NotFound, PersistError, error_for
from persistd_client.retry import RetryPolicy

if TYPE_CHECKING:
    from persistd_client.client import AsyncPersistClient, PersistClient

log = logging.getLogger("persistd_client.lease")

MIN_TTL_MS = 100
MAX_TTL_MS = 3_600_000
MAX_RENEW_LEASES = 1000  # leases in one POST /v1/_leases/renew (the service's limit)
OnLost = Callable[[Fenced], None]
LeaseRef = tuple[str, str, int]  # namespace, lease name, token


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
    return _info(json.loads(response.content))


def _info(data: dict[str, Any]) -> LeaseInfo:
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


# The status the single renewal answers for each refusal of a batch item.
_REFUSAL_STATUS = {"lease_lost": 409, "not_found": 404}


def _renewed(response: httpx.Response) -> list[LeaseInfo | PersistError]:
    out: list[LeaseInfo | PersistError] = []
    for item in json.loads(response.content)["leases"]:
        error = item.get("error")
        if error is None:
            out.append(_info(item))
        else:
            code = error["code"]
            out.append(error_for(_REFUSAL_STATUS.get(code), code, error["detail"]))
    return out


def renew_many_call(leases: Iterable[LeaseRef]) -> Call[list[LeaseInfo | PersistError]]:
    """POST /v1/_leases/renew: up to MAX_RENEW_LEASES leases of any namespaces in one request;
    per item, in order, its LeaseInfo or the error renewing it alone raises (LeaseLost,
    NotFound)."""
    items = [{"namespace": ns, "name": name, "token": token} for ns, name, token in leases]
    return Call("POST", "/v1/_leases/renew", _renewed, headers=_JSON, body=dumps({"leases": items}))


def release_call(ns: str, name: str, token: int) -> Call[LeaseInfo]:
    """DELETE release with the current token."""
    return Call("DELETE", _path(ns, name), _lease_info, params={"token": str(token)})


def read_call(ns: str, name: str) -> Call[LeaseInfo]:
    """GET the lease: holder, token, expiry."""
    return Call("GET", _path(ns, name), _lease_info)


def _as_fenced(error: PersistError) -> Fenced:
    """A refused renewal as the Fenced it loses the lease with (NotFound: never acquired)."""
    return error if isinstance(error, Fenced) else Fenced(error.detail)


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
        self._renewer: _Renewer | None = None

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
            self._stop_renewing()
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

    def _start_renewing(self, url: str, token: str | None) -> None:
        self._renewer = _Renewer.add(self, url, token)

    def _stop_renewing(self) -> None:
        if self._renewer is not None:
            self._renewer.remove(self)

    @property
    def _sender(self) -> PersistClient | None:
        """A blocking client the renewer may send with (its transport, TLS and retry settings)."""
        return None


class _Renewer:
    """The background renewals of every lease of this process with one URL and token.

    A lease is due a third of its TTL after its last renewal. The thread wakes at the earliest
    due time and renews, in one request, every lease due within half of its own period, so
    leases acquired at different moments fall into step after their first renewal and each is
    renewed at a third of its TTL at the latest. It sends through the client of a sync Lease in
    the batch (an AsyncLease's cannot serve another thread), else through a client of its own
    with the same URL and token, and ends once no lease is left.
    """

    _all: ClassVar[dict[tuple[str, str | None], _Renewer]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()  # guards _all and every renewer's _due

    def __init__(self, url: str, token: str | None) -> None:
        self.key = (url, token)
        self._due: dict[_LeaseCore, float] = {}  # lease → when it is due (time.monotonic)
        self._wake = threading.Condition(self._lock)

    @classmethod
    def add(cls, lease: _LeaseCore, url: str, token: str | None) -> _Renewer:
        """Renew `lease` from now on, with the other leases of this URL and token."""
        with cls._lock:
            renewer = cls._all.get((url, token))
            if renewer is None:
                renewer = cls._all[url, token] = cls(url, token)
                threading.Thread(target=renewer._run, name="persistd-leases", daemon=True).start()
            renewer._due[lease] = time.monotonic() + lease._renew_every
            renewer._wake.notify()
        return renewer

    def remove(self, lease: _LeaseCore) -> None:
        """Stop renewing `lease`."""
        with self._lock:
            self._due.pop(lease, None)
            self._wake.notify()

    def _next(self) -> list[tuple[_LeaseCore, int]] | None:
        """Wait for the next tick: the leases to renew with their tokens; None once none is left."""
        with self._lock:
            while True:
                if not self._due:
                    del self._all[self.key]
                    return None
                now = time.monotonic()
                first = min(self._due.values())
                if first <= now:
                    break
                self._wake.wait(first - now)
            due = [lease for lease, at in self._due.items() if at <= now + lease._renew_every / 2]
            for lease in due:
                self._due[lease] = now + lease._renew_every
            return [(lease, lease.token) for lease in due if lease.token is not None]

    def _run(self) -> None:
        from persistd_client.client import PersistClient  # which imports this module

        own: PersistClient | None = None  # only for batches of AsyncLeases alone
        try:
            while (due := self._next()) is not None:
                for start in range(0, len(due), MAX_RENEW_LEASES):
                    part = due[start : start + MAX_RENEW_LEASES]
                    client = next((c for lease, _ in part if (c := lease._sender)), None)
                    if client is None:
                        url, token = self.key
                        own = own or PersistClient(
                            url, token=token, retry=RetryPolicy(max_attempts=2)
                        )
                        client = own
                    self._renew(client, part)
        finally:
            if own is not None:
                own.close()

    def _renew(self, client: PersistClient, due: list[tuple[_LeaseCore, int]]) -> None:
        try:
            results = client.renew_leases([(lease.namespace, lease.name, t) for lease, t in due])
        except PersistError as error:  # unreachable for now: the service judges expiry
            log.warning("lease renewal failed, retrying: %s", error)
            return
        for (lease, token), result in zip(due, results, strict=True):
            if isinstance(result, PersistError) and lease.token == token:
                lease.refused(_as_fenced(result))


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

    @property
    def _sender(self) -> PersistClient:
        return self.client

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
        """Extend this lease now (PUT, by itself); Fenced (LeaseLost) when it was lost."""
        assert self.token is not None, "renew before acquire"
        try:
            return self.client._send(renew_call(self.namespace, self.name, self.token))
        except (Fenced, NotFound) as error:
            raise self.refused(_as_fenced(error)) from None

    def release(self) -> None:
        """Free the lease at once (a successor need not wait for the TTL)."""
        self._stop_renewing()
        token, self.token = self.token, None
        if token is not None and self.lost is None:
            self.lost = Fenced(f"lease {self.name!r} was released", status=409)
            with contextlib.suppress(Fenced, NotFound):  # already lost: nothing to free
                self.client._send(release_call(self.namespace, self.name, token))

    def __enter__(self) -> Lease:
        self.acquire()
        self.client.fence = self
        self._start_renewing(self.client.url, self.client.settings.token)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
        """Extend this lease now (PUT, by itself); Fenced (LeaseLost) when it was lost."""
        assert self.token is not None, "renew before acquire"
        try:
            return await self.client._send(renew_call(self.namespace, self.name, self.token))
        except (Fenced, NotFound) as error:
            raise self.refused(_as_fenced(error)) from None

    async def release(self) -> None:
        """Free the lease at once (a successor need not wait for the TTL)."""
        self._stop_renewing()
        token, self.token = self.token, None
        if token is not None and self.lost is None:
            self.lost = Fenced(f"lease {self.name!r} was released", status=409)
            with contextlib.suppress(Fenced, NotFound):
                await self.client._send(release_call(self.namespace, self.name, token))

    async def __aenter__(self) -> AsyncLease:
        await self.acquire()
        self.client.fence = self
        self._start_renewing(self.client.url, self.client.settings.token)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
        self.client.fence = None
