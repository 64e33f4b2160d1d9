"""Client shells: history calls of the sync and async clients (the endpoints are in history.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx

from persistd_client import history as h
from persistd_client._core.call import Call, Name, Settings
from persistd_client.errors import error_from_response
from persistd_client.models import ItemsPage, Record
from persistd_client.retry import RETRY_STATUSES, RetryPolicy, retry_after

T = TypeVar("T")
WATCH_RECONNECT_MIN = 0.05  # seconds: the shortest wait before a watch reconnects
# Heartbeats arrive every few seconds; a read silent for longer means the connection is gone.
_STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)


class SyncHistory:
    """History calls of PersistClient."""

    namespace: str
    _send: Callable[[Call[Any]], Any]

    def get_version(self, domain: str, entity: Name, key: Name, version: int) -> Record:
        """That version of the record: NotFound if it never existed; PersistError with code
        `version_pruned` (410) once retention removed it."""
        result: Record = self._send(h.get_version(self.namespace, domain, entity, key, version))
        return result

    def history(
        self,
        domain: str,
        entity: Name,
        key: Name,
        *,
        limit: int = 100,
        cursor: str | None = None,
        values: bool = False,
    ) -> h.HistoryPage:
        """One page of the record's versions, newest first."""
        call = h.history(self.namespace, domain, entity, key, limit, cursor, values)
        page: h.HistoryPage = self._send(call)
        return page

    def records_at(
        self,
        domain: str,
        entity: Name,
        at: datetime,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ItemsPage:
        """One page of the entity's records as they stood at `at`."""
        page: ItemsPage = self._send(
            h.records_at(self.namespace, domain, entity, at, limit, cursor)
        )
        return page

    def changes(
        self,
        since: int = 0,
        *,
        domain: str | None = None,
        entity: Name | None = None,
        limit: int = 100,
    ) -> h.ChangesPage:
        """One page of the namespace's changes after `since`, in sequence order."""
        page: h.ChangesPage = self._send(h.changes(self.namespace, since, domain, entity, limit))
        return page

    def restore(
        self,
        at: datetime,
        *,
        domain: str | None = None,
        entity: Name | None = None,
        dry_run: bool = False,
    ) -> h.Restored:
        """Write the namespace's state at `at` back as new versions (admin scope)."""
        done: h.Restored = self._send(h.restore(self.namespace, at, domain, entity, dry_run))
        return done


class AsyncHistory:
    """History calls of AsyncPersistClient, and watch."""

    namespace: str
    settings: Settings
    retry: RetryPolicy
    _http: httpx.AsyncClient
    _send: Callable[[Call[Any]], Awaitable[Any]]

    async def get_version(self, domain: str, entity: Name, key: Name, version: int) -> Record:
        """That version of the record: NotFound if it never existed; PersistError with code
        `version_pruned` (410) once retention removed it."""
        result: Record = await self._send(
            h.get_version(self.namespace, domain, entity, key, version)
        )
        return result

    async def history(
        self,
        domain: str,
        entity: Name,
        key: Name,
        *,
        limit: int = 100,
        cursor: str | None = None,
        values: bool = False,
    ) -> h.HistoryPage:
        """One page of the record's versions, newest first."""
        call = h.history(self.namespace, domain, entity, key, limit, cursor, values)
        page: h.HistoryPage = await self._send(call)
        return page

    async def records_at(
        self,
        domain: str,
        entity: Name,
        at: datetime,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ItemsPage:
        """One page of the entity's records as they stood at `at`."""
        call = h.records_at(self.namespace, domain, entity, at, limit, cursor)
        page: ItemsPage = await self._send(call)
        return page

    async def changes(
        self,
        since: int = 0,
        *,
        domain: str | None = None,
        entity: Name | None = None,
        limit: int = 100,
    ) -> h.ChangesPage:
        """One page of the namespace's changes after `since`, in sequence order."""
        call = h.changes(self.namespace, since, domain, entity, limit)
        page: h.ChangesPage = await self._send(call)
        return page

    async def restore(
        self,
        at: datetime,
        *,
        domain: str | None = None,
        entity: Name | None = None,
        dry_run: bool = False,
    ) -> h.Restored:
        """Write the namespace's state at `at` back as new versions (admin scope)."""
        done: h.Restored = await self._send(h.restore(self.namespace, at, domain, entity, dry_run))
        return done

    async def watch(
        self,
        *,
        since: int | None = None,
        domain: str | None = None,
        entity: Name | None = None,
    ) -> AsyncIterator[h.Change]:
        """Every change from `since` (default: from now) on, forever, each exactly once.

        Reconnects by itself after a dropped connection, a restart, a 502/503/504 or a
        slow-consumer cut-off, resuming after the last change it yielded; the waits between
        attempts follow the client's retry policy's backoff (never shorter than Retry-After)
        and start over once a stream delivers again.
        """
        last = since
        failures = 0
        url = self.settings.url + h.watch_path(self.namespace)
        params = h.scope(domain, entity)
        while True:
            headers = self.settings.headers()
            headers["Accept"] = "text/event-stream"
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            wait: float | None = None  # the server's Retry-After
            try:
                async with self._http.stream(
                    "GET", url, params=params, headers=headers, timeout=_STREAM_TIMEOUT
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        if response.status_code not in RETRY_STATUSES:
                            raise error_from_response(response, 1)
                        wait = retry_after(response)
                    parser = h.SSEParser()
                    async for line in response.aiter_lines():
                        for event, data in parser.feed(line):
                            if event == "change":
                                change = h.event_change(data)
                                if last is None or change.seq > last:
                                    yield change
                        # The stream's position, also sent before any change (`id:` alone).
                        if parser.last_id is not None:
                            last = parser.last_id
                            failures = 0
            except httpx.TransportError:
                pass
            failures += 1
            delay = max(WATCH_RECONNECT_MIN, self.retry.backoff(min(failures, 30)), wait or 0.0)
            await self.retry.async_sleep(delay)
