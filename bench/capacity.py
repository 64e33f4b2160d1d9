"""Capacity load generator: N live bots, each on its own keep-alive connection, in one asyncio loop.

A bot does what persistd-backtest-kit does for a live strategy: at startup its reads (the
Signal and Strategy init calls and reads), all bots at once; then it writes its signal row about
once a second (with jitter) and its strategy row every 10 s. Raw HTTP/1.1 keeps the generator's
own CPU small, since it shares the machine with the service and PostgreSQL. Like both clients, a
bot repeats a request answered 502, 503 or 504, after the Retry-After the answer names (at most
RETRY_ATTEMPTS tries in all): the latency it records includes the waits, and only a request
that still failed then is an error.
"""

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.tools import percentile

SIGNAL_EVERY = 1.0  # seconds between signal writes (jitter: +-20 %)
STRATEGY_EVERY = 10.0
CONNECT_BATCH = 200  # connections opened at once (the listen backlog is finite)
TIMEOUT = 10.0
RETRY_ATTEMPTS = 4  # the clients' default (persistd_client.retry.RetryPolicy.max_attempts)
RETRY_STATUSES = (502, 503, 504)


@dataclass
class Load:
    """What N bots saw: write and startup latencies (ms), errors and their first reasons."""

    bots: int
    writes: list[float] = field(default_factory=list)
    startup: list[float] = field(default_factory=list)
    errors: int = 0
    reasons: list[str] = field(default_factory=list)
    retried: int = 0  # requests repeated after a 502/503/504 (the service shedding a burst)

    def fail(self, reason: str) -> None:
        self.errors += 1
        if len(self.reasons) < 3:
            self.reasons.append(reason)

    @property
    def write_p99_ms(self) -> float:
        return percentile(self.writes, 99)

    @property
    def write_p50_ms(self) -> float:
        return percentile(self.writes, 50)

    @property
    def startup_p99_ms(self) -> float:
        return percentile(self.startup, 99)


def _signal_row(symbol: str, strategy: str, i: int) -> bytes:
    now = 1_760_000_000_000 + i * 60_000
    pnl = {"pnlPercentage": i / 1000, "pnlCost": 0, "priceClose": 100, "priceOpen": 100}
    row = {
        "position": "long", "priceTakeProfit": 110, "priceStopLoss": 90,
        "minuteEstimatedTime": 600, "note": "capacity", "id": f"{strategy}-signal", "cost": 100,
        "priceOpen": 100, "multiplier": 1, "isolated": True, "symbol": symbol,
        "exchangeName": "binance", "strategyName": strategy, "frameName": "",
        "scheduledAt": now, "pendingAt": now, "timestamp": now, "_isScheduled": False,
        "_entry": [{"price": 100, "cost": 100, "timestamp": now}],
        "_peak": {"price": 100 + i / 1000, "timestamp": now, **pnl},
        "_fall": {"price": 100, "timestamp": now, **pnl},
    }  # fmt: skip
    return json.dumps(row, separators=(",", ":")).encode()


def _strategy_row(i: int) -> bytes:
    row: dict[str, object] = {
        "pendingSignalId": None, "lastPendingId": None, "createdSignal": None,
        "commitQueue": [], "closedSignal": None, "cancelledSignal": None,
        "activatedSignal": None, "takeProfitSignal": None, "stopLossSignal": None,
        "retryOpenSignal": None, "retryOpenCount": i, "retryCloseCount": 0, "isPaused": False,
    }  # fmt: skip
    return json.dumps(row, separators=(",", ":")).encode()


class Window:
    """The measured stretch: it opens `settle` seconds after the last bot has started."""

    def __init__(self) -> None:
        self.start = self.end = float("inf")


class Bot:
    def __init__(self, host: str, port: int, n: int, load: Load) -> None:
        self.host, self.port, self.load = host, port, load
        self.symbol = "BTCUSDT"
        self.strategy = f"cap-{n}"
        entity = f"{self.symbol}_{self.strategy}_binance"
        self.paths = {
            domain: f"/v1/capacity/{domain}/{entity}" for domain in ("signal", "strategy")
        }
        self.started = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, float]:
        """One request on the bot's connection; the status code and Retry-After (0: none)."""
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line, _, headers = (await self.reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
        length, retry_after, closing = 0, 0.0, False
        for line in headers.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"retry-after":
                retry_after = float(value)
            elif name == b"connection":
                closing = value.strip().lower() == b"close"
        if length and method != "HEAD":
            await self.reader.readexactly(length)
        if closing:  # the service answered and closes (a shed request): the next call reconnects
            self.close()
            self.writer = None
        return int(status_line.split()[1]), retry_after

    async def timed(self, into: list[float], method: str, path: str, body: bytes = b"") -> None:
        started = time.perf_counter()
        try:
            for attempt in range(1, RETRY_ATTEMPTS + 1):
                status, retry_after = await asyncio.wait_for(self.call(method, path, body), TIMEOUT)
                if status not in RETRY_STATUSES or attempt == RETRY_ATTEMPTS:
                    break
                self.load.retried += 1
                await asyncio.sleep(max(retry_after, random.uniform(0, 0.25 * 2 ** (attempt - 1))))
        except (
            OSError,
            RuntimeError,
            asyncio.IncompleteReadError,
            TimeoutError,
            ValueError,
        ) as exc:
            self.load.fail(f"{method} {path}: {type(exc).__name__} {exc}")
            # The connection is in an unknown state: the next call uses a new one.
            self.close()
            self.writer = None
            return
        if status >= 400 and not (status == 404 and method == "GET"):
            self.load.fail(f"{method} {path}: HTTP {status}")
            return
        into.append((time.perf_counter() - started) * 1000)

    async def start(self) -> None:
        """backtest-kit's startup: waitForInit(true) and the read of each domain."""
        for path in self.paths.values():
            await self.timed(self.load.startup, "POST", f"{path}/init", b'{"initial":true}')
            await self.timed(self.load.startup, "GET", f"{path}/records/{self.symbol}")
        self.started.set()

    async def live(self, window: "Window") -> None:
        """Signal writes about once a second, a strategy write every 10 s, to the window's end."""
        rng = random.Random(self.strategy)
        now = time.monotonic()
        next_signal = now + rng.uniform(0, SIGNAL_EVERY)
        next_strategy = now + rng.uniform(0, STRATEGY_EVERY)
        i = 0
        ignored: list[float] = []
        while True:
            at = min(next_signal, next_strategy)
            if at >= window.end:
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            into = self.load.writes if window.start <= time.monotonic() < window.end else ignored
            i += 1
            if at == next_signal:
                path = f"{self.paths['signal']}/records/{self.symbol}"
                await self.timed(into, "PUT", path, _signal_row(self.symbol, self.strategy, i))
                next_signal += SIGNAL_EVERY * rng.uniform(0.8, 1.2)
            else:
                path = f"{self.paths['strategy']}/records/{self.symbol}"
                await self.timed(into, "PUT", path, _strategy_row(i))
                next_strategy += STRATEGY_EVERY

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _run(url: str, bots: int, seconds: float, settle: float) -> Load:
    target = urlsplit(url)
    load = Load(bots)
    fleet = [Bot(target.hostname or "127.0.0.1", target.port or 80, n, load) for n in range(bots)]
    try:
        for first in range(0, bots, CONNECT_BATCH):
            batch = fleet[first : first + CONNECT_BATCH]
            done = await asyncio.gather(*(b.connect() for b in batch), return_exceptions=True)
            for outcome in done:
                if isinstance(outcome, BaseException):
                    load.fail(f"connect: {type(outcome).__name__} {outcome}")
        live = [b for b in fleet if b.writer is not None]
        window = Window()

        async def bot(b: Bot) -> None:
            await b.start()
            await b.live(window)  # each goes live when its own startup is done, as a bot does

        running = asyncio.gather(*(bot(b) for b in live))  # every bot starts at once
        await asyncio.gather(*(b.started.wait() for b in live))
        window.start = time.monotonic() + settle
        window.end = window.start + seconds
        await running
    finally:
        for b in fleet:
            b.close()
    return load


def run_bots(url: str, bots: int, seconds: float, settle: float = 1.0) -> Load:
    """N bots against the service at `url`; writes are measured after `settle` seconds."""
    try:
        import uvloop

        return uvloop.run(_run(url, bots, seconds, settle))
    except ImportError:
        return asyncio.run(_run(url, bots, seconds, settle))
