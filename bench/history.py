"""Benchmarks of the change log: writes and reads with history on vs off, watch latency, and
disk per kept version (docs/history.md). Called by bench/run.py (`--only history`)."""

import asyncio
import json
import os
import subprocess
from typing import TYPE_CHECKING

import asyncpg

from bench.tools import (
    SCRIPTS,
    Result,
    Service,
    bench_database,
    median_result,
    populate,
    wrk,
)
from persistd.db import asyncpg_dsn

if TYPE_CHECKING:
    from bench.run import Bench

KEYS = 1000
WATCHERS = 100
WRITES_PER_SECOND = 1000


def run(bench: "Bench", server_url: str) -> None:
    with bench_database(server_url, "persistd_bench_history") as url:
        populate(url, "hist", 0, KEYS)
        env = {"BENCH_ENTITY": "hist", "BENCH_KEYS": str(KEYS)}
        with Service(url, bench.knobs) as on, _service_without_history(url, bench) as off:
            for svc in (on, off):
                wrk(svc, "put_existing.lua", 2, 1, env)  # warm-up: statements get prepared
                wrk(svc, "get_existing.lua", 2, 1, env)
            m = _alternated(bench, on, off, env)
            for name, result in m.items():
                bench.record(name, "wrk", 32, result)
            for kind, want in (("PUT", ">= 0.85"), ("GET", ">= 0.95")):
                s, b = m[f"{kind} history on"], m[f"{kind} history off"]
                label = "writes" if kind == "PUT" else "reads"
                bench.add(f"{label} c=32 history on vs off", f"{s.rate:.0f}/s",
                          f"{b.rate:.0f}/s", s.rate / b.rate, want)  # fmt: skip
            per_version = asyncio.run(_bytes_per_version(url))
            bench.add("disk per kept version (changes table + indexes)", f"{per_version:.0f} B",
                      "", 1.0, None)  # fmt: skip
            # --quick only proves the part runs: a small load the CI machine always carries.
            rate = 100 if bench.args.quick else WRITES_PER_SECOND
            seconds = 2.0 if bench.args.quick else max(bench.seconds, 5.0)
            latency, puts = watch_latency(on.url, WATCHERS, rate, seconds)
            bench.record(f"watch: {WATCHERS} watchers, writes", "node", WATCHERS, latency)
            bench.record("watch: the same run's PUTs (sent -> answered)", "node", 32, puts)
            name = f"watch p99 at {WATCHERS} watchers, {rate} writes/s"
            p99 = latency.p99_ms
            bench.add(name, f"{p99:.1f} ms", "50 ms", p99 / 50, "<= 1.0")
            # A change's latency includes its own PUT: what the write alone took at this pace
            # tells the watch's share from a machine too busy for the pace.
            bench.add(f"watch p99 vs the same PUTs' own p99 ({rate} writes/s)", f"{p99:.1f} ms",
                      f"{puts.p99_ms:.1f} ms", p99 / puts.p99_ms, None)  # fmt: skip


def _alternated(
    bench: "Bench", on: Service, off: Service, env: dict[str, str]
) -> dict[str, Result]:
    """PUT and GET on both services, rounds alternating which goes first: on this machine the
    first of a pair ran up to 25% faster whatever it was (GET is the same code on both)."""
    got: dict[str, list[Result]] = {}
    for r in range(bench.rounds()):
        for kind, script in (("PUT", "put_existing.lua"), ("GET", "get_existing.lua")):
            pair = [("on", on), ("off", off)]
            for side, svc in pair if r % 2 == 0 else pair[::-1]:
                name = f"{kind} history {side}"
                result = wrk(svc, script, 32, bench.seconds, env)
                got.setdefault(name, []).append(bench.note(f"{name} #{r + 1}", result))
    return {name: median_result(results) for name, results in got.items()}


def _service_without_history(url: str, bench: "Bench") -> Service:
    svc = Service(url, bench.knobs)
    svc.env["PERSISTD_HISTORY"] = "false"
    return svc


async def _bytes_per_version(url: str) -> float:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("VACUUM ANALYZE changes")
        size = await conn.fetchval("SELECT pg_total_relation_size('changes')")
        rows = await conn.fetchval("SELECT count(*) FROM changes")
    finally:
        await conn.close()
    return float(size) / max(int(rows), 1)


# ---- watch latency: bench/scripts/watch_latency.mjs (Node keeps the load generator cheap) ----


def watch_latency(url: str, watchers: int, rate: int, seconds: float) -> tuple[Result, Result]:
    """Each watcher follows one entity; writes spread over the entities at `rate` per second.
    The latency from each PUT sent to its event parsed, and of the PUTs themselves."""
    env = {
        **os.environ,
        "BENCH_URL": url,
        "WATCHERS": str(watchers),
        "RATE": str(rate),
        "SECONDS": f"{seconds:g}",
    }
    done = subprocess.run(
        ["node", str(SCRIPTS / "watch_latency.mjs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"bench: watch_latency.mjs failed: {done.stderr or done.stdout}")
    data = json.loads(line[len("BENCH ") :])
    rate = data["writes"] / data["elapsed"]
    events = Result(
        rate=rate,
        p50_ms=data["p50"],
        p99_ms=data["p99"],
        count=data["events"],
        errors=data["errors"] + data["writes"] - data["events"],
    )
    puts = Result(
        rate=rate,
        p50_ms=data["put_p50"],
        p99_ms=data["put_p99"],
        count=data["writes"],
        errors=data["errors"],
    )
    return events, puts
