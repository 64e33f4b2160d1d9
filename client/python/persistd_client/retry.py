"""Client retry layer: the one retry policy both clients share (capped backoff, full jitter)."""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before repeating a retry-safe call.

    `max_attempts` counts the first try. The wait before retry n (n = 1, 2, ...) is drawn
    uniformly from [0, min(max_delay, initial_delay * 2**(n-1))] ("full jitter"), and is never
    shorter than the server's Retry-After. No retry starts once `deadline` seconds have passed
    since the first try, or would pass during the wait. `sleep`, `async_sleep`, `clock` and
    `random` are injectable so tests can observe delays without waiting.
    """

    max_attempts: int = 4
    initial_delay: float = 0.25
    max_delay: float = 4.0
    deadline: float | None = 30.0
    retry_statuses: frozenset[int] = RETRY_STATUSES
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    random: Callable[[], float] = field(default=_random.random, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, retry: int) -> float:
        """The jittered wait before retry number `retry` (1-based), capped at max_delay."""
        ceiling = min(self.max_delay, self.initial_delay * 2.0 ** (retry - 1))
        return self.random() * ceiling

    def next_delay(self, attempts: int, started: float, retry_after: float | None) -> float | None:
        """The wait before the next attempt, or None when the attempts or the deadline ran out."""
        if attempts >= self.max_attempts:
            return None
        delay = self.backoff(attempts)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if self.deadline is not None and self.clock() - started + delay > self.deadline:
            return None
        return delay


NO_RETRY = RetryPolicy(max_attempts=1)


def ascii_int(text: str) -> int | None:
    """A non-negative decimal of ASCII digits, or None (isdigit() alone accepts "²", which
    int() and float() reject)."""
    return int(text) if text.isascii() and text.isdigit() else None


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    seconds = ascii_int(value)
    if seconds is not None:
        return float(seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
