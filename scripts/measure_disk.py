"""Disk growth per record and per domain: realistic backtest-kit rows written through the service.

Usage: PYTHONPATH=. .venv/bin/python scripts/measure_disk.py [SERVER_URL] [RECORDS_PER_DOMAIN]
Makes a scratch database on that server (default: the machine's PostgreSQL), upserts N records per
domain with the service's SQL, and prints pg_total_relation_size('records') growth per record; then
rewrites every signal 5 times and vacuums, to show that rewrites do not grow the table for good.
Numbers feed docs/deploy.md ("Disk growth").
"""

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import asyncpg

from persistd.db import asyncpg_dsn
from tests.support import scratch_database

NAMESPACE = "bot-eu-1"
# The service's own write: the value goes in as jsonb, as every write route stores it.
UPSERT = (
    "INSERT INTO records (namespace, domain, entity, key, value, version) "
    "VALUES ($1, $2, $3, $4, $5::jsonb, 1) ON CONFLICT (namespace, domain, entity, key) "
    "DO UPDATE SET value = EXCLUDED.value, version = records.version + 1, updated_at = now()"
)


def signal(i: int, tick: int = 0) -> dict[str, Any]:
    """A signal row as backtest-kit 19.5.0 persists an open long (its 21 keys)."""
    now = 1764680000000 + i * 60000 + tick
    pnl = {"pnlPercentage": 1.25, "pnlCost": 12.5, "priceClose": 101.25, "priceOpen": 100.0}
    return {
        "position": "long",
        "priceTakeProfit": 110.5,
        "priceStopLoss": 95.25,
        "minuteEstimatedTime": 600,
        "note": "trend-follow entry",
        "id": f"3f1c9a52-7b7e-4c1e-9d1a-{i:012d}",
        "cost": 100,
        "priceOpen": 100.0,
        "multiplier": 1,
        "isolated": True,
        "symbol": f"SYM{i}USDT",
        "exchangeName": "binance",
        "strategyName": "trend-follow",
        "frameName": "",
        "scheduledAt": now,
        "pendingAt": now,
        "timestamp": now,
        "_isScheduled": False,
        "_entry": [{"price": 100.0, "cost": 100, "timestamp": now}],
        "_peak": {"price": 101.25 + tick, "timestamp": now, **pnl},
        "_fall": {"price": 99.5, "timestamp": now, **pnl},
    }


def risk(i: int) -> list[Any]:
    """A risk profile with two open positions ([key, position] pairs)."""
    return [
        [
            f"trend-follow_binance_SYM{i + k}USDT",
            {
                "signal": signal(i + k),
                "strategyName": "trend-follow",
                "exchangeName": "binance",
                "openTimestamp": 1764680000000 + i,
            },
        ]
        for k in range(2)
    ]


def candle(i: int) -> dict[str, Any]:
    t = 1764680000000 + i * 60000
    return {
        "timestamp": t,
        "open": 100.1,
        "high": 100.9,
        "low": 99.7,
        "close": 100.4,
        "volume": 12.5,
    }


# domain -> (entity of record i, key of record i, value of record i)
DOMAINS: dict[str, tuple[Callable[[int], str], Callable[[int], str], Callable[[int], Any]]] = {
    "signal": (lambda i: f"SYM{i}USDT_trend-follow_binance", lambda i: f"SYM{i}USDT", signal),
    "risk": (lambda i: f"desk-{i}_binance", lambda i: "positions", risk),
    "candle": (lambda i: "binance/BTCUSDT/1m", lambda i: str(1764680000000 + i * 60000), candle),
}


async def measure(url: str, n: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))

    async def size() -> int:
        await conn.execute("CHECKPOINT")
        total: int = await conn.fetchval("SELECT pg_total_relation_size('records')")
        return total

    async def write(domain: str, value_of: Callable[[int], Any]) -> float:
        entity_of, key_of, _ = DOMAINS[domain]
        rows = [
            (NAMESPACE, domain, entity_of(i), key_of(i), json.dumps(value_of(i))) for i in range(n)
        ]
        await conn.executemany(UPSERT, rows)
        return sum(len(r[4]) for r in rows) / n

    try:
        empty = before = await size()
        print(f"empty records table: {empty} bytes; {n} records per domain")
        print("domain   JSON bytes/record   table+index+TOAST bytes/record")
        for domain, (_, _, value_of) in DOMAINS.items():
            sent = await write(domain, value_of)
            after = await size()
            print(f"{domain:8} {sent:17.0f} {(after - before) / n:32.0f}")
            before = after
        for tick in range(1, 6):
            await write("signal", lambda i, tick=tick: signal(i, tick))  # type: ignore[misc]
        rewritten = await size()
        await conn.execute("VACUUM records")
        vacuumed = await size()
        print(f"signals rewritten 5 times: +{(rewritten - before) / n:.0f} bytes/record")
        print(
            f"after VACUUM: +{(vacuumed - before) / n:.0f} bytes/record (free space kept for reuse)"
        )
        again = before
        for tick in range(6, 11):
            await write("signal", lambda i, tick=tick: signal(i, tick))  # type: ignore[misc]
        await conn.execute("VACUUM records")
        print(f"5 more rewrites, VACUUM: +{(await size() - again) / n:.0f} bytes/record (reused)")
    finally:
        await conn.close()


def main() -> None:
    server = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    with scratch_database(server) as url:
        asyncio.run(measure(url, n))


if __name__ == "__main__":
    main()
