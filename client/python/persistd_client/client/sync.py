"""Client shell: PersistClient, the blocking client on httpx.Client."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
from persistd_client.client.history import SyncHistory
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


class PersistClient(SyncHistory, Shell):
    """Blocking persistd client on `httpx.Client`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = None,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(url, token, namespace, timeout, retry, http_client)
        self._http = http_client or httpx.Client(timeout=self._new_client_timeout())

    def _send(self, call: Call[T]) -> T:
        call = self._fenced(call)
        attempts = Attempts(self.retry, call)
        request = build_request(self._http, self.settings, call, self._timeout)
        while True:
            try:
                response = self._http.send(request)
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
            self.retry.sleep(delay)

    def close(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> PersistClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- records ----

    def get(self, domain: str, entity: Name, key: Name, *, version: int | None = None) -> Record:
        """The record's value and version; NotFound when absent. `version`: that version."""
        if version is not None:
            return self.get_version(domain, entity, key, version)
        return self._send(endpoints.get(self.namespace, domain, entity, key))

    def has(self, domain: str, entity: Name, key: Name) -> bool:
        """Whether the record exists (HEAD)."""
        return self._send(endpoints.has(self.namespace, domain, entity, key))

    def put(
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
        return self._send(call)

    def delete(self, domain: str, entity: Name, key: Name, *, if_match: int | None = None) -> None:
        """Delete the record; NotFound when absent, VersionMismatch when if_match fails."""
        self._send(endpoints.delete(self.namespace, domain, entity, key, if_match))

    # ---- collections ----

    def init(self, domain: str, entity: Name, initial: bool = True) -> int:
        """Check reachability and access for an entity; returns its key count."""
        return self._send(endpoints.init(self.namespace, domain, entity, initial))

    def list_keys(
        self, domain: str, entity: Name, *, limit: int = 100, cursor: str | None = None
    ) -> KeysPage:
        """One page of keys; pass `next_cursor` back as `cursor` for the next."""
        return self._send(endpoints.list_keys(self.namespace, domain, entity, limit, cursor))

    def list_items(
        self, domain: str, entity: Name, *, limit: int = 100, cursor: str | None = None
    ) -> ItemsPage:
        """One page of records; pass `next_cursor` back as `cursor` for the next."""
        return self._send(endpoints.list_items(self.namespace, domain, entity, limit, cursor))

    def iter_keys(self, domain: str, entity: Name, *, page_size: int = PAGE_SIZE) -> Iterator[str]:
        """Every key of the entity, following cursors page by page."""
        cursor: str | None = None
        while True:
            page = self.list_keys(domain, entity, limit=page_size, cursor=cursor)
            yield from page.keys
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def iter_items(
        self, domain: str, entity: Name, *, page_size: int = PAGE_SIZE
    ) -> Iterator[Item]:
        """Every record of the entity, following cursors page by page."""
        cursor: str | None = None
        while True:
            page = self.list_items(domain, entity, limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def newest(self, domain: str, entity: Name, n: int) -> list[Item]:
        """The n most recently written records, oldest first."""
        return self._send(endpoints.newest(self.namespace, domain, entity, n))

    def batch_get(self, domain: str, entity: Name, keys: Iterable[Name]) -> BatchGetResult:
        """Many records in one round trip, in request order, with the missing keys."""
        return self._send(endpoints.batch_get(self.namespace, domain, entity, keys))

    def batch_put(
        self,
        domain: str,
        entity: Name,
        items: BatchItems,
        *,
        mode: BatchMode = "upsert",
    ) -> list[BatchWritten]:
        """Write many records atomically (all or none)."""
        return self._send(endpoints.batch_put(self.namespace, domain, entity, items, mode))

    # ---- leases ----

    def renew_leases(self, leases: Iterable[LeaseRef]) -> list[LeaseInfo | PersistError]:
        """Renew many (namespace, lease name, token) leases in one request (up to
        MAX_RENEW_LEASES); per item, in order, its LeaseInfo or the error renewing it alone
        raises (LeaseLost, NotFound). Held leases are renewed in the background already."""
        return self._send(renew_many_call(leases))

    # ---- inspection and health ----

    def namespaces(self) -> list[Count]:
        """All namespaces with record counts."""
        return self._send(endpoints.namespaces())

    def domains(self, namespace: str | None = None) -> list[Count]:
        """The domains of a namespace (this client's by default) with record counts."""
        return self._send(endpoints.domains(namespace or self.namespace))

    def entities(self, domain: str, namespace: str | None = None) -> list[Count]:
        """The entities of a domain with record counts."""
        return self._send(endpoints.entities(namespace or self.namespace, domain))

    def healthz(self) -> dict[str, Any]:
        """The process is up (never retried)."""
        return self._send(endpoints.healthz())

    def readyz(self) -> dict[str, Any]:
        """The database is reachable and migrated; Unavailable otherwise (never retried)."""
        return self._send(endpoints.readyz())
