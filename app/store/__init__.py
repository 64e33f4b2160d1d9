"""Store layer: asyncpg calls over one pool (SQL text in sql.py); one round trip per operation."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ..db import hosts
from ..errors import (
    Fenced,
    InvalidJson,
    InvalidValue,
    LeaseHeld,
    LeaseLost,
    NotFound,
    Unavailable,
    VersionMismatch,
)
from . import sql
from .coalesce import Coalescer, Found, Read, Upsert

log = logging.getLogger("persistd.store")

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
    # Every host of a multi-host URL is down or read-only (TargetServerAttributeNotMatched): a
    # failover in progress; or a session the server ended under us ("cannot switch to state").
    asyncpg.exceptions.InternalClientError,
)
_POOLER_STATEMENTS = (
    asyncpg.exceptions.InvalidSQLStatementNameError,
    asyncpg.exceptions.DuplicatePreparedStatementError,
)
# A connection that met these must not serve again, nor its siblings opened to the same server.
_STALE_SERVER = (
    # A demoted primary or a standby: reconnect, to the new primary.
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    # A backend crashed and PostgreSQL sent FATAL to every other session, idle ones included:
    # asyncpg then refuses the next statement on them.
    asyncpg.exceptions.InternalClientError,
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
class Replication:
    """What the primary says about its synchronous standbys."""

    standby_names: str  # synchronous_standby_names; empty: commits never wait for a standby
    synchronous_commit: str
    attached: int | None  # standbys in sync or quorum state; None: the role may not see them

    @property
    def synchronous(self) -> bool:
        """True when an acknowledged commit is on a standby too."""
        waits = self.synchronous_commit in ("on", "remote_write", "remote_apply")
        return bool(self.standby_names) and waits and bool(self.attached)


@dataclass(frozen=True, slots=True)
class Written:
    key: str
    version: int | None  # None: insert_if_absent found the key already there


@dataclass(frozen=True, slots=True)
class Fence:
    """A fenced write's lease: applied only while `name` is held with exactly `token`."""

    name: str
    token: int

    @property
    def args(self) -> tuple[str, int]:
        return (self.name, self.token)

    def refused(self) -> Fenced:
        return Fenced(
            f"lease {self.name!r} is not held with token {self.token} (expired, released or "
            "taken over); nothing was written"
        )


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str | None  # None once released
    token: int
    ttl_ms: int
    expires_at: datetime
    held: bool = True
    remaining_ms: int = 0  # until expiry, by the database's clock


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """Which writes append to the change log (docs/history.md)."""

    enabled: bool = True
    skip_domains: frozenset[str] = frozenset()

    def logs(self, domain: str) -> bool:
        return self.enabled and domain not in self.skip_domains


def _no_op() -> None:
    pass


def _after(logs: bool, writer: int | None, fence: Fence | None) -> tuple[Any, ...]:
    """A write statement's last parameters: the writer when logged, the fence when fenced."""
    return (*((writer,) if logs else ()), *(fence.args if fence else ()))


def _lost(namespace: str, name: str, token: int, current: Lease | None) -> LeaseLost | NotFound:
    """Why a renewal or release with `token` was refused, given the lease as it is now."""
    if current is None:
        return NotFound(f"no lease named {name!r} in namespace {namespace!r}")
    if current.token != token:
        why = f"token {token} is not current (token {current.token} is"
        why += f", held by {current.holder!r})" if current.held else ", now released)"
    elif current.holder is None:
        why = f"token {token} was released"
    else:
        why = f"token {token} expired at {current.expires_at.isoformat()}"
    return LeaseLost(f"lease {name!r} is lost: {why}")


class _PoolConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released without the reset query.

    The store leaves no session state behind (no SET, LISTEN, cursors or advisory locks), so
    asyncpg's reset query on release would be a second round trip per request for nothing;
    an open transaction is still rolled back on release.
    """

    def get_reset_query(self) -> str:
        return ""


class _HostByHost:
    """The pool's connect for a URL naming several hosts: each host gets its own share of the
    connect timeout, and the host that last answered as primary is tried first.

    asyncpg spends one timeout on the whole host list, so a primary that drops packets (a host
    cut off by the network, unlike a refused connection) would use it all up and hide the
    promoted standby behind it until that host came back.
    """

    def __init__(self, dsn: str, timeout: float) -> None:
        self.hosts = hosts(dsn)
        self.timeout = timeout / len(self.hosts)
        self.first = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        order = self.hosts[self.first :] + self.hosts[: self.first]
        kwargs["timeout"] = self.timeout
        failure: BaseException | None = None
        for host, port in order:
            try:
                conn = await asyncpg.connect(*args, host=host, port=port, **kwargs)
            except _UNAVAILABLE as exc:
                failure = exc
                continue
            self.first = self.hosts.index((host, port))
            return conn
        assert failure is not None
        raise failure


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
        self._upserts: Coalescer[Upsert, Meta | None] = Coalescer(
            self._upsert, self._upsert_many, acquire_timeout, self._write_expired
        )
        # GET and HEAD of one record, grouped like the upserts (a HEAD is a GET without the
        # value: not worth a statement of its own).
        self._reads: Coalescer[Read, Found] = Coalescer(
            self._read, self._read_many, acquire_timeout, self._read_expired
        )

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
        statement_cache_size: int = 100,
    ) -> "Store":
        """Create the pool; with the database down, start empty and connect on demand."""
        options: dict[str, Any] = {
            "max_size": max_size,
            "timeout": acquire_timeout,
            "command_timeout": statement_timeout,
            "max_inactive_connection_lifetime": 300.0,
            "connection_class": _PoolConnection,
            # 0: unnamed statements only, which PgBouncer's transaction pooling can route.
            "statement_cache_size": statement_cache_size,
        }
        if len(hosts(dsn)) > 1:
            options["connect"] = _HostByHost(dsn, acquire_timeout)
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

    def _write_expired(self) -> Unavailable:
        return Unavailable(
            f"the database took no write for {self._acquire_timeout:g} s; nothing was written, "
            "retry later",
            headers={"Retry-After": self._retry_after},
        )

    def _read_expired(self) -> Unavailable:
        return Unavailable(
            f"the database took no read for {self._acquire_timeout:g} s; retry later",
            headers={"Retry-After": self._retry_after},
        )

    @asynccontextmanager
    async def _connection(self, wait: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, acquired within `wait` seconds (default: the acquire timeout)."""
        try:
            timeout = self._acquire_timeout if wait is None else wait
            async with self._pool.acquire(timeout=timeout) as conn:
                try:
                    yield conn
                except _STALE_SERVER:
                    conn.terminate()
                    await self._pool.expire_connections()
                    raise
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
        except _POOLER_STATEMENTS as exc:
            # A pooler in transaction mode moved the session to another server connection,
            # where asyncpg's named statement does not exist (or another one has its name).
            hint = (
                "prepared statements do not survive the connection pooler in front of "
                "PostgreSQL (PgBouncer in transaction mode?): set PERSISTD_STATEMENT_CACHE_SIZE=0"
            )
            log.error("%s (%s)", hint, exc)
            raise Unavailable(hint, headers={"Retry-After": self._retry_after}) from None

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
        row = await self._reads.run(Read(addr))
        if row is None:
            raise NotFound(f"no record at key {addr.key!r}")
        return Item(addr.key, row[0], row[1], row[2])

    async def head(self, addr: Address) -> Meta:
        """Version and time of the stored document; NotFound when absent."""
        row = await self._reads.run(Read(addr))
        if row is None:
            raise NotFound(f"no record at key {addr.key!r}")
        return Meta(row[1], row[2])

    async def _read(self, item: Read, wait: float) -> Found:
        """One record's value, version and time by itself; None when absent."""
        async with self._connection(wait) as conn:
            row = await conn.fetchrow(sql.GET, *item.addr.args)
        return None if row is None else tuple(row)

    async def _read_many(self, items: list[Read], wait: float) -> list[Found]:
        """The records of distinct addresses in one statement, in `items` order."""
        columns = [list(c) for c in zip(*(item.addr.args for item in items), strict=True)]
        async with self._connection(wait) as conn:
            rows = await conn.fetch(sql.GET_MANY, *columns)
        found = {row[0]: tuple(row[1:]) for row in rows}
        return [found.get(n) for n in range(1, len(items) + 1)]

    async def put(
        self,
        addr: Address,
        value: str,
        *,
        if_match: int | None = None,
        create_only: bool = False,
        fence: Fence | None = None,
        writer: int | None = None,
    ) -> Meta:
        """Write the whole document in one statement; VersionMismatch when a condition fails,
        Fenced when the fence's lease is not held with its token.

        `writer` (a token id) is recorded in the change log with the new version.
        """
        logs = self.history.logs(addr.domain)
        if if_match is None and not create_only:
            meta = await self._upserts.run(Upsert(addr, value, writer, fence, logs))
            if meta is None:
                assert fence is not None
                raise fence.refused()
            return meta
        op = "insert" if if_match is None else "update_if"
        conditions = () if if_match is None else (if_match,)
        row = await self._write(op, addr, (value, *conditions), fence, writer)
        if row is None or row[0] is None:
            raise self._put_mismatch(addr, create_only)
        return Meta(row[0], row[1])

    async def _write(
        self,
        op: str,
        addr: Address,
        params: tuple[Any, ...],
        fence: Fence | None,
        writer: int | None,
    ) -> asyncpg.Record | None:
        """One conditional write (sql.WRITES) in its own transaction; its statement's row
        without the fence's `held` column. Fenced when the fence's lease is not held."""
        logs = self.history.logs(addr.domain)
        statement = sql.WRITES[op, logs, fence is not None]
        args = (*addr.args, *params, *_after(logs, writer, fence))
        async with self._connection() as conn:
            row = await self._logged(lambda: conn.fetchrow(statement, *args), logs=logs)
        if fence is None:
            return row
        if not row[0]:
            raise fence.refused()
        return row[1:]

    async def _upsert(self, item: Upsert, wait: float) -> Meta | None:
        """One unconditional upsert by itself; None when its fence's lease is not held."""
        args: tuple[Any, ...] = (*item.addr.args, item.value)
        if item.logs:
            args += (item.writer,)
        async with self._connection(wait) as conn:
            if item.fence is None:
                statement = sql.UPSERT_LOGGED if item.logs else sql.UPSERT
                row = await self._logged(lambda: conn.fetchrow(statement, *args), logs=item.logs)
                return Meta(row[0], row[1])
            args += item.fence.args
            if not item.logs:
                row = await self._logged(
                    lambda: conn.fetchrow(sql.UPSERT_FENCED, *args), logs=False
                )
                return None if row is None else Meta(row[0], row[1])
            row = await self._logged(lambda: conn.fetchrow(sql.UPSERT_FENCED_LOGGED, *args))
        return Meta(row[1], row[2]) if row[0] else None

    async def _upsert_many(self, items: list[Upsert], wait: float) -> list[Meta | None]:
        """Unconditional upserts of distinct addresses in one statement, in `items` order."""
        columns: list[list[Any]] = [[] for _ in range(9)]
        for item in items:
            fence = item.fence
            row = (
                *item.addr.args,
                item.value,
                item.writer,
                None if fence is None else fence.name,
                None if fence is None else fence.token,
                item.logs,
            )
            for column, field in zip(columns, row, strict=True):
                column.append(field)
        logs = any(item.logs for item in items)
        async with self._connection(wait) as conn:
            rows = await self._logged(lambda: conn.fetch(sql.UPSERT_MANY, *columns), logs=logs)
        found = {row[0]: row for row in rows}
        out: list[Meta | None] = []
        for n in range(1, len(items) + 1):
            row = found[n]
            out.append(None if row[1] is None else Meta(row[1], row[2]))
        return out

    @staticmethod
    def _put_mismatch(addr: Address, create_only: bool) -> VersionMismatch:
        if create_only:
            return VersionMismatch(f"a record already exists at key {addr.key!r}")
        return VersionMismatch(f"the record at key {addr.key!r} is not at the expected version")

    async def delete(
        self,
        addr: Address,
        *,
        if_match: int | None = None,
        fence: Fence | None = None,
        writer: int | None = None,
    ) -> int:
        """Delete the record and return its last version; NotFound, VersionMismatch or Fenced."""
        condition = ANY_VERSION if if_match is None else if_match
        row = await self._write("delete", addr, (condition,), fence, writer)
        assert row is not None  # the statement always answers one row
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
        fence: Fence | None = None,
        writer: int | None = None,
    ) -> list[Written]:
        """Write the validated body's `items` in one statement, all or nothing, in request order.

        Keys left as they were (present for insert_only, identical for if_changed) get no version.
        With a fence, nothing is written unless its lease is held with its token (Fenced).
        """
        logs = self.history.logs(coll.domain)
        kind = "insert" if insert_only else "upsert_changed" if if_changed else "upsert"
        statement = sql.BATCHES[kind, logs, fence is not None]
        args = (*coll.args, body, *_after(logs, writer, fence))
        async with self._connection() as conn:
            rows = await self._logged(lambda: conn.fetch(statement, *args), logs=logs)
        if fence is not None:
            if not rows[0][0]:
                raise fence.refused()
            rows = [row[1:] for row in rows if row[1] is not None]
        versions = {row[0]: int(row[1]) for row in rows}
        return [Written(key, versions.get(key)) for key in keys]

    async def acquire_lease(self, namespace: str, name: str, holder: str, ttl_ms: int) -> Lease:
        """Take the lease when it is free, expired or already `holder`'s, with a new token;
        LeaseHeld naming the live holder otherwise."""
        async with self._connection() as conn:
            # A lease that expires or is released between the two statements is simply retried.
            for _ in range(3):
                row = await conn.fetchrow(sql.LEASE_ACQUIRE, namespace, name, holder, ttl_ms)
                if row is not None:
                    return Lease(name, row[0], row[1], row[2], row[3], True, ttl_ms)
                current = await self._lease(conn, namespace, name)
                if current is not None and current.held:
                    retry = str(max(1, -(-current.remaining_ms // 1000)))
                    raise LeaseHeld(
                        f"lease {name!r} is held by {current.holder!r} until "
                        f"{current.expires_at.isoformat()} (token {current.token})",
                        headers={"Retry-After": retry},
                    )
        raise Unavailable("the lease changed hands too often to be taken; retry")

    async def renew_lease(self, namespace: str, name: str, token: int, ttl_ms: int | None) -> Lease:
        """Extend a live lease held with `token`; LeaseLost or NotFound otherwise."""
        async with self._connection() as conn:
            row = await conn.fetchrow(sql.LEASE_RENEW, namespace, name, token, ttl_ms)
            if row is None:
                raise await self._lost(conn, namespace, name, token)
        return Lease(name, row[0], row[1], row[2], row[3], True, row[2])

    async def renew_leases(
        self, items: Sequence[tuple[str, str, int, int | None]]
    ) -> list[Lease | LeaseLost | NotFound]:
        """Extend every live lease of `items` (namespace, name, token, ttl_ms or None) held with
        its token, in one statement; for each item in order, the lease or why it was not."""
        columns = [[item[i] for item in items] for i in range(4)]
        async with self._connection() as conn:
            rows = await self._logged(lambda: conn.fetch(sql.LEASES_RENEW, *columns), logs=False)
            renewed = {(r[0], r[1]): Lease(r[1], r[2], r[3], r[4], r[5], True, r[4]) for r in rows}
            missed = [item for item in items if (item[0], item[1]) not in renewed]
            current = {}
            if missed:  # a second round trip only for the items that were not renewed
                keys = [[item[0] for item in missed], [item[1] for item in missed]]
                found = await conn.fetch(sql.LEASES_GET, *keys)
                current = {(r[0], r[1]): Lease(*r[1:]) for r in found}
        return [
            renewed.get((ns, name)) or _lost(ns, name, token, current.get((ns, name)))
            for ns, name, token, _ in items
        ]

    async def release_lease(self, namespace: str, name: str, token: int) -> Lease:
        """Free a live lease held with `token` at once; LeaseLost or NotFound otherwise."""
        async with self._connection() as conn:
            row = await conn.fetchrow(sql.LEASE_RELEASE, namespace, name, token)
            if row is None:
                raise await self._lost(conn, namespace, name, token)
        return Lease(name, None, row[1], row[2], row[3], False, 0)

    async def lease(self, namespace: str, name: str) -> Lease:
        """The lease's holder, token and expiry; NotFound when it was never acquired."""
        async with self._connection() as conn:
            found = await self._lease(conn, namespace, name)
        if found is None:
            raise NotFound(f"no lease named {name!r} in namespace {namespace!r}")
        return found

    async def leases_held(self) -> int:
        """How many leases are live now, across every namespace."""
        async with self._connection() as conn:
            return int(await conn.fetchval(sql.LEASES_HELD))

    @staticmethod
    async def _lease(conn: asyncpg.Connection, namespace: str, name: str) -> Lease | None:
        row = await conn.fetchrow(sql.LEASE_GET, namespace, name)
        if row is None:
            return None
        return Lease(name, row[0], row[1], row[2], row[3], row[4], row[5])

    async def _lost(
        self, conn: asyncpg.Connection, namespace: str, name: str, token: int
    ) -> LeaseLost | NotFound:
        return _lost(namespace, name, token, await self._lease(conn, namespace, name))

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

    async def replication(self) -> Replication:
        """The synchronous standby settings and attached standbys of the connected primary."""
        async with self._connection() as conn:
            row = await conn.fetchrow(sql.REPLICATION)
        return Replication(row[0], row[1], None if row[2] is None else int(row[2]))

    async def revisions(self) -> set[str]:
        """The Alembic revisions the database is at (empty before the first migration)."""
        async with self._connection() as conn:
            try:
                rows = await conn.fetch(sql.REVISIONS)
            except asyncpg.exceptions.UndefinedTableError:
                return set()
        return {row[0] for row in rows}
