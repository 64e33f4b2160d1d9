"""Benchmarks of leases: fenced writes against unfenced ones, and the CPU lease renewals cost."""

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bench.tools import Service, bench_database, populate, wrk

if TYPE_CHECKING:
    from bench.run import Bench

KEYS = 1000
LEASES = 1000
RENEW_EVERY = 5.0  # seconds: each of the LEASES leases is renewed once per period
PROCESSES = 20  # bot processes holding LEASES between them, each renewing its own in one batch


def run(bench: "Bench", server_url: str) -> None:
    """Fenced PUT vs PUT at c=32 (target >= 0.9x), and renewal CPU, one request per lease and
    in batches (target < 5 % of a core)."""
    with bench_database(server_url, "persistd_bench_leases") as url:
        populate(url, "fence", 0, KEYS)
        with Service(url, bench.knobs) as svc:
            token = _acquire(svc.url, "bench", "bench")
            env = {"BENCH_ENTITY": "fence", "BENCH_KEYS": str(KEYS)}
            fenced = {**env, "BENCH_FENCE": f"bench={token}"}
            # 32 bots, each writing under its own lease: no lease row shared by the writers.
            many = ",".join(f"bot{i}={_acquire(svc.url, 'bench', f'bot{i}')}" for i in range(32))
            fenced_many = {**env, "BENCH_FENCE": many}
            wrk(svc, "put_fenced.lua", 2, 1, fenced)  # warm-up: statements get prepared
            m = bench.interleaved({
                "service PUT (existing key)": lambda r: wrk(
                    svc, "put_existing.lua", 32, bench.seconds, env),
                "service fenced PUT": lambda r: wrk(
                    svc, "put_fenced.lua", 32, bench.seconds, fenced),
                "service fenced PUT (32 leases)": lambda r: wrk(
                    svc, "put_fenced.lua", 32, bench.seconds, fenced_many),
            })  # fmt: skip
            for name, result in m.items():
                bench.record(name, "wrk", 32, result)
            s, b = m["service fenced PUT"], m["service PUT (existing key)"]
            bench.add("fenced PUT c=32 vs PUT c=32", f"{s.rate:.0f}/s", f"{b.rate:.0f}/s",
                      s.rate / b.rate, ">= 0.9")  # fmt: skip
            s = m["service fenced PUT (32 leases)"]
            bench.add("fenced PUT c=32, one lease per connection, vs PUT c=32", f"{s.rate:.0f}/s",
                      f"{b.rate:.0f}/s", s.rate / b.rate, None)  # fmt: skip

            # --quick: a tenth of the leases for one period, to keep the smoke run short.
            count, seconds = (LEASES // 10, RENEW_EVERY) if bench.args.quick else (LEASES, 15.0)
            cpu, renewed, failed = asyncio.run(_paced(svc, count, seconds, renew=True))
            bench.log(f"lease renewals: {renewed} in {seconds:.0f} s, {failed} failed")
            bench.add(f"CPU of {count} leases renewed every {RENEW_EVERY:.0f} s (share of a core)",
                      f"{cpu:.2f} CPU s", f"{seconds:.0f} s", cpu / seconds, "<= 0.05")  # fmt: skip
            # The same pace of record PUTs: what any single-record request costs here and now.
            put_cpu, puts, put_failed = asyncio.run(_paced(svc, count, seconds, renew=False))
            bench.add("CPU per renewal vs per record PUT at the same pace",
                      f"{1000 * cpu / renewed:.2f} ms", f"{1000 * put_cpu / puts:.2f} ms",
                      (cpu / renewed) / (put_cpu / puts), None)  # fmt: skip
            # The same leases held by PROCESSES processes, each renewing its share in one
            # POST /v1/_leases/renew per period (what the clients do), spread evenly.
            senders = PROCESSES // 10 if bench.args.quick else PROCESSES
            batch_cpu, batches, batch_failed = asyncio.run(_batched(svc, senders, count, seconds))
            bench.log(f"batch renewals: {batches} in {seconds:.0f} s, {batch_failed} failed")
            bench.add(f"CPU of {count} leases in {senders} processes ({count // senders} each), "
                      f"batch-renewed every {RENEW_EVERY:.0f} s (share of a core)",
                      f"{batch_cpu:.2f} CPU s", f"{seconds:.0f} s", batch_cpu / seconds,
                      "<= 0.05")  # fmt: skip
            if failed or put_failed or batch_failed:
                bench.skip("lease renewals", f"{failed} renewals, {put_failed} PUTs, "
                           f"{batch_failed} batches failed")  # fmt: skip


def _acquire(base: str, ns: str, name: str) -> int:
    got = httpx.post(f"{base}/v1/{ns}/leases/{name}", json={"holder": "bench", "ttl_ms": 3_600_000})
    got.raise_for_status()
    token: int = got.json()["token"]
    return token


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


async def _leases(client: httpx.AsyncClient, ns: str, count: int) -> list[int]:
    """Acquire `count` leases l0.. in `ns`, 50 at a time; their tokens."""
    # The TTL does not change what a renewal costs; a long one keeps slow setups from expiring.
    body = {"holder": "b", "ttl_ms": 3_600_000}
    tokens = []
    for first in range(0, count, 50):
        got = await asyncio.gather(
            *(client.post(f"/v1/{ns}/leases/l{i}", json=body) for i in range(first, first + 50))
        )
        tokens += [g.json()["token"] for g in got]
    return tokens


async def _batched(
    svc: Service, senders: int, count: int, seconds: float
) -> tuple[float, int, int]:
    """`senders` concurrent processes, each renewing its `count / senders` leases in one batch
    every RENEW_EVERY seconds, spread evenly; the service's CPU, the batches sent, and how many
    failed (a whole batch, or any lease in it not renewed)."""
    per = count // senders
    async with httpx.AsyncClient(base_url=svc.url, timeout=10) as client:
        tokens = await _leases(client, "batch", count)
        batches = [
            {"leases": [{"namespace": "batch", "name": f"l{i}", "token": tokens[i]}
                        for i in range(s * per, (s + 1) * per)]}
            for s in range(senders)
        ]  # fmt: skip
        pids = svc.pids()
        cpu_before = _cpu_seconds(pids)
        started = time.monotonic()

        async def sender(s: int) -> tuple[int, int]:
            sent = failed = 0
            due = started + s * RENEW_EVERY / senders  # the senders' turns spread over a period
            while due < started + seconds:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                due += RENEW_EVERY
                try:
                    got = await client.post("/v1/_leases/renew", json=batches[s])
                    ok = got.status_code == 200 and all(
                        "error" not in r for r in got.json()["leases"]
                    )
                except httpx.HTTPError:
                    ok = False
                sent, failed = sent + 1, failed + (not ok)
            return sent, failed

        done = await asyncio.gather(*(sender(s) for s in range(senders)))
        cpu = _cpu_seconds(pids) - cpu_before
        return cpu, sum(d[0] for d in done), sum(d[1] for d in done)


async def _paced(svc: Service, count: int, seconds: float, renew: bool) -> tuple[float, int, int]:
    """Renew `count` leases (or PUT `count` records), each every RENEW_EVERY seconds, spread
    evenly; the service's CPU, the requests sent, and how many failed."""
    async with httpx.AsyncClient(base_url=svc.url, timeout=10) as client:
        tokens = await _leases(client, "renew", count)
        step = RENEW_EVERY / count
        pids = svc.pids()
        failed = [0]
        pending: set[asyncio.Task[httpx.Response]] = set()
        renewed = 0

        def finished(task: asyncio.Task[httpx.Response]) -> None:
            pending.discard(task)
            if task.exception() is not None or task.result().status_code not in (200, 201):
                failed[0] += 1

        cpu_before = _cpu_seconds(pids)
        started = time.monotonic()
        while (due := started + renewed * step) < started + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            i = renewed % count
            if renew:
                request = client.put(f"/v1/renew/leases/l{i}", json={"token": tokens[i]})
            else:
                request = client.put(f"/v1/renew/misc/paced/records/k{i}", json={"i": i})
            task = asyncio.create_task(request)
            pending.add(task)
            task.add_done_callback(finished)
            renewed += 1
        await asyncio.gather(*pending, return_exceptions=True)
        return _cpu_seconds(pids) - cpu_before, renewed, failed[0]
