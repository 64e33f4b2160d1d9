"""Store layer: reads and restores over the change log (SQL text in sql.py)."""

from dataclasses import dataclass
from datetime import datetime

from ..errors import HistoryNotKept, HistoryPruned, NotFound, VersionPruned
from . import Address, Collection, Item, Store, sql

MAX_SEQ = 2**63 - 1
DRY_RUN_LIST = 1000  # changes listed by a dry run at most; the counts are always complete


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    namespace: str
    domain: str
    entity: str
    key: str
    version: int
    op: str  # put | delete
    value: str | None  # the JSON document as text; None for a delete
    at: datetime
    token_id: int | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One version in a record's history."""

    seq: int
    op: str
    version: int
    at: datetime
    token_id: int | None
    value: str | None  # only when asked for


@dataclass(frozen=True, slots=True)
class Planned:
    domain: str
    entity: str
    key: str
    op: str
    value: str | None


@dataclass(frozen=True, slots=True)
class Restored:
    puts: int
    deletes: int
    planned: list[Planned]  # dry run only, at most DRY_RUN_LIST


def _kept(store: Store, domain: str | None) -> None:
    if not store.history.enabled or (domain is not None and not store.history.logs(domain)):
        raise HistoryNotKept(
            f"no history is kept for domain {domain!r}" if domain else "history is off"
        )


async def _check_horizon(store: Store, when: datetime) -> None:
    async with store._connection() as conn:
        pruned = await conn.fetchval(sql.PRUNED_BEFORE)
    if pruned is not None and when < pruned:
        raise HistoryPruned(f"history before {pruned.isoformat()} was pruned by retention")


async def version(store: Store, addr: Address, number: int) -> Item:
    """The record at `number`: NotFound if it never existed, VersionPruned if no longer kept."""
    try:
        current: Item | None = await store.get(addr)
    except NotFound:
        current = None
    if current is not None and current.version == number:
        return current
    pruned = VersionPruned(f"version {number} of key {addr.key!r} is no longer kept")
    if not store.history.logs(addr.domain):
        if current is not None and number < current.version:
            raise pruned
        raise NotFound(f"key {addr.key!r} has no version {number}")
    async with store._connection() as conn:
        row = await conn.fetchrow(sql.VERSION, *addr.args, number)
        oldest = None if row is not None else await conn.fetchval(sql.OLDEST_VERSION, *addr.args)
    if row is not None:
        if row[0] == "delete":
            raise NotFound(f"version {number} of key {addr.key!r} is its deletion")
        return Item(addr.key, row[1], row[2], row[3])
    older = oldest if oldest is not None else (current.version if current else None)
    if older is not None and number < older:
        raise pruned
    raise NotFound(f"key {addr.key!r} has no version {number}")


async def history(
    store: Store, addr: Address, before: int | None, limit: int, values: bool
) -> list[Entry]:
    """Up to `limit` versions of a record, newest first, older than seq `before`."""
    _kept(store, addr.domain)
    start = MAX_SEQ if before is None else before
    async with store._connection() as conn:
        rows = await conn.fetch(sql.HISTORY, *addr.args, start, limit, values)
    return [Entry(*row) for row in rows]


async def at(
    store: Store, coll: Collection, when: datetime, after: str | None, limit: int
) -> list[Item]:
    """The entity's records as they stood at `when`, in key order after `after`."""
    _kept(store, coll.domain)
    await _check_horizon(store, when)
    async with store._connection() as conn:
        if after is None:
            rows = await conn.fetch(sql.AT_FIRST, *coll.args, when, limit)
        else:
            rows = await conn.fetch(sql.AT_AFTER, *coll.args, when, after, limit)
    return [Item(*row) for row in rows]


async def changes(
    store: Store,
    namespaces: str | list[str] | None,
    since: int,
    limit: int,
    domain: str | None = None,
    entity: str | None = None,
    upto: int = MAX_SEQ,
) -> list[Change]:
    """Changes after `since` (and up to `upto`) in sequence order, below the horizon: of one
    namespace (through its index), of the listed ones, or (None) of every one."""
    statement = sql.CHANGES if isinstance(namespaces, str) else sql.CHANGES_ACROSS
    async with store._connection() as conn:
        rows = await conn.fetch(statement, namespaces, since, domain, entity, limit, upto)
    return [Change(*row) for row in rows]


async def tail(store: Store, after: int, limit: int) -> list[Change]:
    """Changes of every namespace after `after`, below the horizon (the watch hub's feed)."""
    async with store._connection() as conn:
        rows = await conn.fetch(sql.TAIL, after, limit)
    return [Change(*row) for row in rows]


async def horizon(store: Store) -> int:
    """Every change a reader cannot see yet has a sequence number at or above this."""
    async with store._connection() as conn:
        return int(await conn.fetchval(sql.HORIZON_NOW))


async def restore(
    store: Store,
    namespace: str,
    when: datetime,
    *,
    domain: str | None,
    entity: str | None,
    dry_run: bool,
    writer: int | None,
) -> Restored:
    """Write the state at `when` back as new versions, in one statement (atomic)."""
    _kept(store, domain)
    await _check_horizon(store, when)
    if dry_run:
        async with store._connection() as conn:
            rows = await conn.fetch(sql.RESTORE_PLAN, namespace, when, domain, entity)
        planned = [Planned(*row) for row in rows]
        puts = sum(1 for p in planned if p.op == "put")
        return Restored(puts, len(planned) - puts, planned[:DRY_RUN_LIST])
    async with store._connection() as conn:
        args = (namespace, when, domain, entity, writer)
        rows = await store._logged(lambda: conn.fetch(sql.RESTORE, *args))
    counts = {row[0]: int(row[1]) for row in rows}
    return Restored(counts.get("put", 0), counts.get("delete", 0), [])


async def prune(store: Store, before: datetime, batch: int) -> int:
    """Delete up to `batch` changes retention no longer needs; how many went."""
    async with store._connection() as conn, conn.transaction():
        await conn.execute(sql.PRUNED_MARK, before)
        status: str = await conn.execute(sql.PRUNE_BATCH, before, batch, MAX_SEQ)
    return int(status.rsplit(" ", 1)[1])
