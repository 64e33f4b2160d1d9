"""Client shell: AsyncPersistClient, the asyncio client on httpx.AsyncClient."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any, TypeVar

import httpx

from persistd_client._core import endpoints
from persistd_client._core.call import (
    Attempts,
    BatchItems,
    BatchMode,
    Call,
    Name,
    build_request,
)
from persistd_client.client.history import AsyncHistory
from persistd_client.client.shell import PAGE_SIZE, Shell, Timeout
from persistd_client.errors import Fenced, PersistError
from persistd_client.lease import LeaseInfo, LeaseRef, renew_many_call
from persistd_client.models import (
    BatchGetResult,
    BatchWritten,
    Count,
    Item,
    ItemsPage,
    KeysPage,
    Record,
    Written,
)
from persistd_client.retry import RetryPolicy

T = TypeVar("T")


class AsyncPersistClient(AsyncHistory, Shell):
    """Asyncio persistd client on `httpx.AsyncClient`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = None,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(url, token, namespace, timeout, retry, http_client)
        self._http = http_client or httpx.AsyncClient(timeout=self._new_client_timeout())

    async def _send(self, call: Call[T]) -> T:
        call = self._fenced(call)
        attempts = Attempts(self.retry, call)
        request = build_request(self._http, self.settings, call, self._timeout)
        while True:
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                delay = attempts.after_error(exc)
            else:
                retry_in = attempts.after_response(response)
                if retry_in is None:
                    try:
                        return attempts.finish(response)
                    except Fenced as error:
                        raise self._refused(call, error) from None
                delay = retry_in
            await self.retry.async_sleep(delay)

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncPersistClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- records ----

    async def get(
        self, domain: str, entity: Name, key: Name, *, version: int | None = None
    ) -> Record:
        """The record's value and version; NotFound when absent. `version`: that version."""
        if version is not None:
            return await self.get_version(domain, entity, key, version)
        return await self._send(endpoints.get(self.namespace, domain, entity, key))

    async def has(self, domain: str, entity: Name, key: Name) -> bool:
        """Whether the record exists (HEAD)."""
        return await self._send(endpoints.has(self.namespace, domain, entity, key))

    async def put(
        self,
        domain: str,
        entity: Name,
        key: Name,
        value: Any,
        *,
        if_match: int | None = None,
        create_only: bool = False,
    ) -> Written:
        """Write the whole record; VersionMismatch when if_match or create_only fails."""
        call = endpoints.put(self.namespace, domain, entity, key, value, if_match, create_only)
        return await self._send(call)

    async def delete(
        self, domain: str, entity: Name, key: Name, *, if_match: int | None = None
    ) -> None:
        """Delete the record; NotFound when absent, VersionMismatch when if_match fails."""
        await self._send(endpoints.delete(self.namespace, domain, entity, key, if_match))

    # ---- collections ----

    async def init(self, domain: str, entity: Name, initial: bool = True) -> int:
        """Check reachability and access for an entity; returns its key count."""
        return await self._send(endpoints.init(self.namespace, domain, entity, initial))

    async def list_keys(
        self, domain: str, entity: Name, *, limit: int = 100, cursor: str | None = None
    ) -> KeysPage:
        """One page of keys; pass `next_cursor` back as `cursor` for the next."""
        return await self._send(endpoints.list_keys(self.namespace, domain, entity, limit, cursor))

    async def list_items(
        self, domain: str, entity: Name, *, limit: int = 100, cursor: str | None = None
    ) -> ItemsPage:
        """One page of records; pass `next_cursor` back as `cursor` for the next."""
        return await self._send(endpoints.list_items(self.namespace, domain, entity, limit, cursor))

    async def iter_keys(
        self, domain: str, entity: Name, *, page_size: int = PAGE_SIZE
    ) -> AsyncIterator[str]:
        """Every key of the entity, following cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.list_keys(domain, entity, limit=page_size, cursor=cursor)
            for key in page.keys:
                yield key
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def iter_items(
        self, domain: str, entity: Name, *, page_size: int = PAGE_SIZE
    ) -> AsyncIterator[Item]:
        """Every record of the entity, following cursors page by page."""
        cursor: str | None = None
        while True:
            page = await self.list_items(domain, entity, limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def newest(self, domain: str, entity: Name, n: int) -> list[Item]:
        """The n most recently written records, oldest first."""
        return await self._send(endpoints.newest(self.namespace, domain, entity, n))

    async def batch_get(self, domain: str, entity: Name, keys: Iterable[Name]) -> BatchGetResult:
        """Many records in one round trip, in request order, with the missing keys."""
        return await self._send(endpoints.batch_get(self.namespace, domain, entity, keys))

    async def batch_put(
        self,
        domain: str,
        entity: Name,
        items: BatchItems,
        *,
        mode: BatchMode = "upsert",
    ) -> list[BatchWritten]:
        """Write many records atomically (all or none)."""
        return await self._send(endpoints.batch_put(self.namespace, domain, entity, items, mode))

    # ---- leases ----

    async def renew_leases(self, leases: Iterable[LeaseRef]) -> list[LeaseInfo | PersistError]:
        """Renew many (namespace, lease name, token) leases in one request (up to
        MAX_RENEW_LEASES); per item, in order, its LeaseInfo or the error renewing it alone
        raises (LeaseLost, NotFound). Held leases are renewed in the background already."""
        return await self._send(renew_many_call(leases))

    # ---- inspection and health ----

    async def namespaces(self) -> list[Count]:
        """All namespaces with record counts."""
        return await self._send(endpoints.namespaces())

    async def domains(self, namespace: str | None = None) -> list[Count]:
        """The domains of a namespace (this client's by default) with record counts."""
        return await self._send(endpoints.domains(namespace or self.namespace))

    async def entities(self, domain: str, namespace: str | None = None) -> list[Count]:
        """The entities of a domain with record counts."""
        return await self._send(endpoints.entities(namespace or self.namespace, domain))

    async def healthz(self) -> dict[str, Any]:
        """The process is up (never retried)."""
        return await self._send(endpoints.healthz())

    async def readyz(self) -> dict[str, Any]:
        """The database is reachable and migrated; Unavailable otherwise (never retried)."""
        return await self._send(endpoints.readyz())
