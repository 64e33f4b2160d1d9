"""Store layer: asyncpg calls over one pool (SQL text in sql.py); one round trip per operation."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ..errors import InvalidJson, InvalidValue, NotFound, Unavailable, VersionMismatch
from . import sql

ANY_VERSION = -1  # If-Match: * (the record must exist, any version)
# A write that lost the change-order race (persistd_change_seq) or a deadlock (two batches
# locking shared keys in opposite orders) is rolled back whole: it is retried this often.
WRITE_ATTEMPTS = 8
_RETRY_WRITE = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)
CLOSE_GRACE = 10.0  # seconds the pool waits for queries in flight when the service stops

# Failures that mean "the database is not there right now": the client may retry.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.InsufficientResourcesError,
    # A read-only server is a standby (or a failover in progress): writes work again later.
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


@dataclass(frozen=True, slots=True)
class Address:
    namespace: str
    domain: str
    entity: str
    key: str

    @property
    def args(self) -> tuple[str, str, str, str]:
        return (self.namespace, self.domain, self.entity, self.key)


@dataclass(frozen=True, slots=True)
class Collection:
    namespace: str
    domain: str
    entity: str

    @property
    def args(self) -> tuple[str, str, str]:
        return (self.namespace, self.domain, self.entity)


@dataclass(frozen=True, slots=True)
class Meta:
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    value: str  # the stored JSON document, as text
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Written:
    key: str
    version: int | None  # None: insert_if_absent found the key already there


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """Which writes append to the change log (docs/history.md)."""

    enabled: bool = True
    skip_domains: frozenset[str] = frozenset()

    def logs(self, domain: str) -> bool:
        return self.enabled and domain not in self.skip_domains


def _no_op() -> None:
    pass


class _PoolConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released without the reset query.

    The store leaves no session state behind (no SET, LISTEN, cursors or advisory locks), so
    asyncpg's reset query on release would be a second round trip per request for nothing;
    an open transaction is still rolled back on release.
    """

    def get_reset_query(self) -> str:
        return ""


class Store:
    """All database access of the service, over one asyncpg pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        acquire_timeout: float,
        retry_after: int,
        history: HistoryPolicy,
    ) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self._retry_after = str(retry_after)
        self.history = history
        # Called after every logged write committed: the watch hub's wake-up (app/watch.py).
        self.changed: Callable[[], None] = _no_op

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        acquire_timeout: float,
        statement_timeout: float,
        retry_after: int,
        history: HistoryPolicy | None = None,
    ) -> "Store":
        """Create the pool; with the database down, start empty and connect on demand."""
        options: dict[str, Any] = {
            "max_size": max_size,
            "timeout": acquire_timeout,
            "command_timeout": statement_timeout,
            "max_inactive_connection_lifetime": 300.0,
            "connection_class": _PoolConnection,
        }
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min(min_size, max_size), **options)
        except _UNAVAILABLE:
            pool = await asyncpg.create_pool(dsn, min_size=0, **options)
        return cls(
            pool,
            acquire_timeout=acquire_timeout,
            retry_after=retry_after,
            history=history or HistoryPolicy(),
        )

    async def close(self) -> None:
        """Close the pool, waiting for queries in flight up to CLOSE_GRACE seconds."""
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_GRACE)
        except TimeoutError:
            self._pool.terminate()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
                yield conn
        except asyncpg.exceptions.InvalidTextRepresentationError as exc:
            raise InvalidJson(f"the value is not valid JSON: {exc}") from None
        except (asyncpg.DataError, asyncpg.exceptions.ProgramLimitExceededError) as exc:
            raise InvalidValue(f"PostgreSQL cannot store this value: {exc}") from None
        except _UNAVAILABLE as exc:
            raise Unavailable(
                f"the database is unreachable ({type(exc).__name__}); retry later",
                headers={"Retry-After": self._retry_after},
            ) from None
        except asyncpg.exceptions.UndefinedTableError:
            raise Unavailable(
                "the database schema is not migrated; run `persistd migrate`",
                headers={"Retry-After": self._retry_after},
            ) from None

    async def _logged(self, run: Callable[[], Awaitable[Any]], *, logs: bool = True) -> Any:
        """Run a write, retrying a rolled-back conflict in a new transaction; wake the watchers."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                result = await run()
            except _RETRY_WRITE:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.001 * 2**attempt)
                continue
            if logs:
                self.changed()
            return result
        raise AssertionError("unreachable")

    def pool_usage(self) -> tuple[int, int]:
        """Connections open in the pool, and how many of them are lent out."""
        size = self._pool.get_size()
        return size, size - self._pool.get_idle_size()

    async def get(self, addr: Address) -> Item:
        """The stored document; NotFound when absent."""
        async with self._connection() as conn:
            row = await conn.fetchrow(sql.GET, *addr.args)
        if row is None:
            raise NotFound(f"no record at key {addr.key!r}")
        return Item(addr.key, row[0], row[1], row[2])

    async def head(self, addr: Address) -> Meta:
        """Version and time of the stored document; NotFound when absent."""
        async with self._connection() as conn:
            row = await conn.fetchrow(sql.HEAD, *addr.args)
        if row is None:
            raise NotFound(f"no record at key {addr.key!r}")
        return Meta(row[0], row[1])

    async def put(
        self,
        addr: Address,
        value: str,
        *,
        if_match: int | None = None,
        create_only: bool = False,
        writer: int | None = None,
    ) -> Meta:
        """Write the whole document in one statement; VersionMismatch when a condition fails.

        `writer` (a token id) is recorded in the change log with the new version.
        """
        async with self._connection() as conn:
            if not self.history.logs(addr.domain):
                if if_match is not None:
                    row = await conn.fetchrow(sql.UPDATE_IF, *addr.args, value, if_match)
                elif create_only:
                    row = await conn.fetchrow(sql.INSERT, *addr.args, value)
                else:
                    row = await conn.fetchrow(sql.UPSERT, *addr.args, value)
            elif if_match is not None:
                conditional = (*addr.args, value, if_match, writer)
                row = await self._logged(lambda: conn.fetchrow(sql.UPDATE_IF_LOGGED, *conditional))
            else:
                statement = sql.INSERT_LOGGED if create_only else sql.UPSERT_LOGGED
                args = (*addr.args, value, writer)
                row = await self._logged(lambda: conn.fetchrow(statement, *args))
        if row is None:
            if create_only:
                raise VersionMismatch(f"a record already exists at key {addr.key!r}")
            raise VersionMismatch(f"the record at key {addr.key!r} is not at the expected version")
        return Meta(row[0], row[1])

    async def delete(
        self, addr: Address, *, if_match: int | None = None, writer: int | None = None
    ) -> int:
        """Delete the record and return its last version; NotFound or VersionMismatch."""
        condition = ANY_VERSION if if_match is None else if_match
        async with self._connection() as conn:
            if self.history.logs(addr.domain):
                args = (*addr.args, condition, writer)
                row = await self._logged(lambda: conn.fetchrow(sql.DELETE_LOGGED, *args))
            else:
                row = await conn.fetchrow(sql.DELETE, *addr.args, condition)
        deleted, current = row[0], row[1]
        if deleted is not None:
            return int(deleted)
        # Without a condition, losing a race to a concurrent DELETE means "absent", not mismatch.
        if current is None or if_match is None:
            raise NotFound(f"no record at key {addr.key!r}")
        raise VersionMismatch(f"the record at key {addr.key!r} is at version {current}")

    async def count(self, coll: Collection) -> int:
        """How many records the entity holds."""
        async with self._connection() as conn:
            return int(await conn.fetchval(sql.COUNT, *coll.args))

    async def keys(self, coll: Collection, after: str | None, limit: int) -> list[str]:
        """Up to `limit` keys in byte order, starting after `after`."""
        async with self._connection() as conn:
            if after is None:
                rows = await conn.fetch(sql.KEYS_FIRST, *coll.args, limit)
            else:
                rows = await conn.fetch(sql.KEYS_AFTER, *coll.args, after, limit)
        return [row[0] for row in rows]

    async def items(self, coll: Collection, after: str | None, limit: int) -> list[Item]:
        """Up to `limit` records in key byte order, starting after `after`."""
        async with self._connection() as conn:
            if after is None:
                rows = await conn.fetch(sql.ITEMS_FIRST, *coll.args, limit)
            else:
                rows = await conn.fetch(sql.ITEMS_AFTER, *coll.args, after, limit)
        return [Item(*row) for row in rows]

    async def newest(self, coll: Collection, limit: int) -> list[Item]:
        """The `limit` most recently written records, oldest first."""
        async with self._connection() as conn:
            rows = await conn.fetch(sql.NEWEST, *coll.args, limit)
        return [Item(*row) for row in rows]

    async def batch_get(self, coll: Collection, keys: Sequence[str]) -> dict[str, Item]:
        """The stored records among `keys`, by key, in one query."""
        async with self._connection() as conn:
            rows = await conn.fetch(sql.BATCH_GET, *coll.args, list(keys))
        return {row[0]: Item(*row) for row in rows}

    async def batch_put(
        self,
        coll: Collection,
        keys: Sequence[str],
        body: str,
        *,
        insert_only: bool,
        if_changed: bool = False,
        writer: int | None = None,
    ) -> list[Written]:
        """Write the validated body's `items` in one statement, all or nothing, in request order.

        Keys left as they were (present for insert_only, identical for if_changed) get no version.
        """
        logs = self.history.logs(coll.domain)
        if insert_only:
            statement = sql.BATCH_INSERT_LOGGED if logs else sql.BATCH_INSERT
        elif if_changed:
            statement = sql.BATCH_UPSERT_CHANGED_LOGGED if logs else sql.BATCH_UPSERT_CHANGED
        else:
            statement = sql.BATCH_UPSERT_LOGGED if logs else sql.BATCH_UPSERT
        async with self._connection() as conn:
            if logs:
                args = (*coll.args, body, writer)
                rows = await self._logged(lambda: conn.fetch(statement, *args))
            else:
                plain = (*coll.args, body)
                rows = await self._logged(lambda: conn.fetch(statement, *plain), logs=False)
        versions = {row[0]: int(row[1]) for row in rows}
        return [Written(key, versions.get(key)) for key in keys]

    async def namespaces(self) -> list[tuple[str, int]]:
        """Every namespace with its record count."""
        async with self._connection() as conn:
            return [(row[0], int(row[1])) for row in await conn.fetch(sql.NAMESPACES)]

    async def domains(self, namespace: str) -> list[tuple[str, int]]:
        """The domains of a namespace with their record counts."""
        async with self._connection() as conn:
            return [(row[0], int(row[1])) for row in await conn.fetch(sql.DOMAINS, namespace)]

    async def entities(self, namespace: str, domain: str) -> list[tuple[str, int]]:
        """The entities of a domain with their record counts."""
        async with self._connection() as conn:
            rows = await conn.fetch(sql.ENTITIES, namespace, domain)
        return [(row[0], int(row[1])) for row in rows]

    async def token(self, token_id: int) -> tuple[str, list[str], str] | None:
        """An active token's secret hash, scopes and namespace pattern."""
        async with self._connection() as conn:
            row = await conn.fetchrow(sql.TOKEN, token_id)
        return None if row is None else (row[0], list(row[1]), row[2])

    async def create_token(
        self, name: str | None, secret_sha256: str, scopes: list[str], namespace: str
    ) -> int:
        """Store a new token (its hash only) and return its id."""
        async with self._connection() as conn:
            return int(
                await conn.fetchval(sql.TOKEN_CREATE, name, secret_sha256, scopes, namespace)
            )

    async def tokens(self) -> list[tuple[Any, ...]]:
        """Every token without its hash: id, name, scopes, namespace, created_at, revoked_at."""
        async with self._connection() as conn:
            return [tuple(row) for row in await conn.fetch(sql.TOKEN_LIST)]

    async def revoke_token(self, token_id: int) -> bool:
        """Mark a token revoked; False when no active token has that id."""
        async with self._connection() as conn:
            status: str = await conn.execute(sql.TOKEN_REVOKE, token_id)
        return status.endswith(" 1")

    async def revisions(self) -> set[str]:
        """The Alembic revisions the database is at (empty before the first migration)."""
        async with self._connection() as conn:
            try:
                rows = await conn.fetch(sql.REVISIONS)
            except asyncpg.exceptions.UndefinedTableError:
                return set()
        return {row[0] for row in rows}
