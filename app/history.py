"""Retention layer: the history policy from settings, and pruning in small background batches."""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from .config import Settings
from .errors import AppError
from .store import HistoryPolicy, Store
from .store import history as log

PRUNE_BATCH = 500  # rows per statement: each delete is short and locks only change-log rows
PRUNE_PAUSE = 0.05  # seconds between batches, so pruning never hogs the database

logger = logging.getLogger("persistd.history")


def history_policy(settings: Settings) -> HistoryPolicy:
    return HistoryPolicy(enabled=settings.history, skip_domains=settings.skip_domains)


async def prune(store: Store, days: float, *, pause: float = PRUNE_PAUSE) -> int:
    """Remove history older than `days` (keeping each record's state at that horizon)."""
    if days <= 0:
        return 0
    before = datetime.now(UTC) - timedelta(days=days)
    total = 0
    while True:
        removed = await log.prune(store, before, PRUNE_BATCH)
        total += removed
        if removed < PRUNE_BATCH:
            return total
        await asyncio.sleep(pause)


async def _prune_forever(store: Store, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.history_prune_interval)
        try:
            removed = await prune(store, settings.history_days)
        except AppError as exc:  # the database is away: try again next round
            logger.warning("history pruning failed: %s", exc.detail)
            continue
        if removed:
            logger.info("pruned %d changes", removed)


def start_pruner(store: Store, settings: Settings) -> asyncio.Task[None] | None:
    if not settings.history or settings.history_days <= 0:
        return None
    return asyncio.create_task(_prune_forever(store, settings))


async def stop_pruner(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
