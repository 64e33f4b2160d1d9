"""Benchmarks: the service against pgbench on the same PostgreSQL, in one run, as ratios.

    python -m bench            full run (about 10 minutes on a shared 2-core machine)
    python -m bench --quick    CI smoke sizes (about 2 minutes); never fails on a target
    python -m bench --only node    one part (repeatable): throughput, scale, node (backtest-kit
                                   in Node), history, network, capacity, leases

Every target is a ratio between two numbers measured here, on this machine, minutes apart,
because absolute numbers on a shared machine are noise (docs/performance.md).
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import history, leases
from bench.capacity import Load, run_bots
from bench.tools import (
    E2E,
    Result,
    Service,
    bench_database,
    cpu_meter,
    median_result,
    node_bench,
    packet_delay_unavailable,
    pgbench,
    populate,
    postgres_server,
    postmaster_pid,
    server_version,
    sql,
    wrk,
)

READ_KEYS = 1000


@dataclass
class Target:
    name: str
    service: str
    baseline: str
    ratio: float
    want: str  # ">= 0.20" or "<= 1.20"
    unit: str = "x"  # "x": a ratio; "": a count (capacity)

    @property
    def passed(self) -> bool:
        op, bound = self.want.split()
        return self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)


@dataclass
class Run:
    name: str
    tool: str
    connections: int
    result: Result


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.seconds = 2.0 if args.quick else args.seconds
        self.scale_rows = 20_000 if args.quick else 1_000_000
        self.runs: list[Run] = []
        self.targets: list[Target] = []
        self.not_run: list[str] = []  # parts that could not run here, and why
        self.cannot: list[str] = []  # rows this machine cannot measure at all, and why
        # Empty knobs leave `persistd serve` at its own defaults, as a user starts it.
        self.knobs = {
            "workers": str(args.workers) if args.workers else "",
            "http": args.http,
            "loop": args.loop,
            "pool_max": str(args.pool_max) if args.pool_max else "",
            "log_level": args.log_level or "",
        }

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def record(self, name: str, tool: str, connections: int, result: Result) -> Result:
        self.runs.append(Run(name, tool, connections, result))
        self.log(
            f"{name:<28} c={connections:<3} {result.rate:10.0f}/s  p50 {result.p50_ms:7.2f} ms"
            f"  p99 {result.p99_ms:7.2f} ms  errors {result.errors}  (median)"
        )
        return result

    def note(self, name: str, result: Result) -> Result:
        self.log(
            f"  {name:<30} {result.rate:10.0f}/s  p50 {result.p50_ms:7.2f} ms"
            f"  p99 {result.p99_ms:7.2f} ms  errors {result.errors}"
        )
        return result

    # ---- scenarios ----

    def rounds(self) -> int:
        return 1 if self.args.quick else self.args.rounds

    def interleaved(self, runs: dict[str, Callable[[int], Result]]) -> dict[str, Result]:
        """Run each measurement `rounds` times, alternating them; the median of each wins.

        Alternating service and baseline (or small and large) runs spreads the machine's
        drift (other jobs, fsync latency) over both sides of a ratio.
        """
        got: dict[str, list[Result]] = {name: [] for name in runs}
        for r in range(self.rounds()):
            for name, run in runs.items():
                got[name].append(self.note(f"{name} #{r + 1}", run(r)))
        return {name: median_result(results) for name, results in got.items()}

    def throughput(self, server_url: str, pgbench_bin: str) -> None:
        secs, work = self.seconds, self.work
        with bench_database(server_url, "persistd_bench") as url:
            populate(url, "read", 0, READ_KEYS)
            reads = {"BENCH_ENTITY": "read", "BENCH_KEYS": str(READ_KEYS)}
            pm = postmaster_pid(url)  # CPU per request of PostgreSQL, next to the service's
            with Service(url, self.knobs) as svc:
                wrk(svc, "get_existing.lua", 2, 1, reads)  # warm-up: statements get prepared
                self.profile_start(svc)
                for c in (1, 32):
                    m = self.interleaved({
                        "service PUT (new key)": lambda r, c=c: wrk(
                            svc, "put_unique.lua", c, secs, {"BENCH_ENTITY": f"put{c}r{r}"}, pm),
                        "pgbench upsert (new key)": lambda r, c=c: pgbench(
                            pgbench_bin, url, "pg_upsert.sql", c, secs,
                            {"entity": f"put{c}r{r}"}, work, pm),
                        "service GET": lambda r, c=c: wrk(
                            svc, "get_existing.lua", c, secs, reads, pm),
                        "pgbench select": lambda r, c=c: pgbench(
                            pgbench_bin, url, "pg_select.sql", c, secs,
                            {"entity": "read", "keys": str(READ_KEYS)}, work, pm),
                    })  # fmt: skip
                    for name, result in m.items():
                        self.record(name, "pgbench" if "pgbench" in name else "wrk", c, result)
                    want = {1: (None, None), 32: (">= 0.20", ">= 0.12")}[c]
                    s, b = m["service PUT (new key)"], m["pgbench upsert (new key)"]
                    self.add(f"writes c={c} (req/s vs pgbench tps)", f"{s.rate:.0f}/s",
                             f"{b.rate:.0f}/s", s.rate / b.rate, want[0])  # fmt: skip
                    s, b = m["service GET"], m["pgbench select"]
                    self.add(f"reads c={c} (req/s vs pgbench tps)", f"{s.rate:.0f}/s",
                             f"{b.rate:.0f}/s", s.rate / b.rate, want[1])  # fmt: skip
                    if c == 32:
                        upsert = m["pgbench upsert (new key)"]
                m = self.interleaved({
                    "service batch-put x100": lambda r: wrk(
                        svc, "batch_put.lua", 32, secs,
                        {"BENCH_BATCH": "100", "BENCH_ENTITY": f"batch{r}"}),
                })  # fmt: skip
                batch = self.record(
                    "service batch-put x100", "wrk", 32, m["service batch-put x100"]
                )
                self.profile_stop()
        rows = batch.rate * 100
        self.add("batch-put rows/s c=32 vs upsert tps c=32", f"{rows:.0f} rows/s",
                 f"{upsert.rate:.0f}/s", rows / upsert.rate, ">= 1.0")  # fmt: skip

    def scale(self, server_url: str) -> None:
        """Read and write latency (c=1) on a table of 1 thousand records and of 1 million."""
        big = self.scale_rows
        label = f"{big // 1000}k" if big < 10**6 else f"{big // 10**6}M"
        with (
            bench_database(server_url, "persistd_bench_1k") as small_url,
            bench_database(server_url, "persistd_bench_big") as big_url,
        ):
            populate(small_url, "scale", 0, 1000)
            self.log(f"populating {big} records")
            started = time.monotonic()
            populate(big_url, "scale", 0, big)
            self.log(f"populated in {time.monotonic() - started:.1f} s")
            small_env = {"BENCH_ENTITY": "scale", "BENCH_KEYS": "1000"}
            big_env = {"BENCH_ENTITY": "scale", "BENCH_KEYS": str(big)}
            with Service(small_url, self.knobs) as small, Service(big_url, self.knobs) as large:
                for svc, env in ((small, small_env), (large, big_env)):
                    wrk(svc, "get_existing.lua", 1, 1, env)  # warm-up
                    wrk(svc, "put_existing.lua", 1, 1, env)
                for kind, scenario in (("read", "get_existing.lua"), ("write", "put_existing.lua")):
                    m = self.interleaved({
                        "1k": lambda r, s=scenario: wrk(small, s, 1, self.seconds, small_env),
                        label: lambda r, s=scenario: wrk(large, s, 1, self.seconds, big_env),
                    })  # fmt: skip
                    self.record(f"service {kind} @1k records", "wrk", 1, m["1k"])
                    self.record(f"service {kind} @{label} records", "wrk", 1, m[label])
                    self.add(f"{kind} p50 latency @{label} vs @1k records",
                             f"{m[label].p50_ms:.2f} ms", f"{m['1k'].p50_ms:.2f} ms",
                             m[label].p50_ms / m["1k"].p50_ms, "<= 1.20")  # fmt: skip

    # ---- backtest-kit through Node (client/typescript/e2e/bench.mjs) ----

    def backtest_kit_node(self, server_url: str) -> None:
        """backtest-kit's PersistSignalAdapter.writeSignalData: persistd against a bot adapter
        that writes straight to PostgreSQL (the real alternative), and its own file adapter."""
        part = "backtest-kit through Node"
        if shutil.which("node") is None:
            return self.skip(part, "`node` is not installed")
        if (
            not (E2E / "node_modules" / "backtest-kit").exists()
            or not (E2E / "node_modules" / "pg").exists()
            or not (E2E.parent / "dist").exists()
        ):
            why = "client/typescript/dist or e2e/node_modules is missing: run scripts/bootstrap"
            return self.skip(part, why)
        options = {
            "samples": "200" if self.args.quick else "2000",
            "warmup": "20" if self.args.quick else "100",
            "seconds": f"{self.seconds:g}",
        }
        few, many = 8, 32
        with (
            bench_database(server_url, "persistd_bench_node") as url,
            Service(url, self.knobs) as svc,
        ):
            postmaster = postmaster_pid(url)

            def run(adapter: str, scenario: str, procs: int = 1) -> Callable[[int], Result]:
                opts = {**options, "processes": str(procs)}
                return lambda r: node_bench(svc, url, adapter, scenario, opts, postmaster)

            # Direct, persistd, file, in turn, round after round.
            m = self.interleaved({
                "direct writeSignalData": run("direct", "latency"),
                "persistd writeSignalData": run("persistd", "latency"),
                "file adapter writeSignalData": run("file", "latency"),
                f"direct {few} processes": run("direct", "processes", few),
                f"persistd {few} processes": run("persistd", "processes", few),
                f"file adapter {few} processes": run("file", "processes", few),
                f"direct {many} processes": run("direct", "processes", many),
                f"persistd {many} processes": run("persistd", "processes", many),
            })  # fmt: skip
        for name, result in m.items():
            procs = int(name.split()[-2]) if name.endswith("processes") else 1
            self.record(name, "node", procs, result)
        s, b = m["persistd writeSignalData"], m["direct writeSignalData"]
        self.add("writeSignalData p50 persistd vs direct PostgreSQL", f"{s.p50_ms:.2f} ms",
                 f"{b.p50_ms:.2f} ms", s.p50_ms / b.p50_ms, "<= 1.20")  # fmt: skip
        self.add("writeSignalData p99 persistd vs direct PostgreSQL", f"{s.p99_ms:.2f} ms",
                 f"{b.p99_ms:.2f} ms", s.p99_ms / b.p99_ms, None)  # fmt: skip
        for procs in (few, many):
            s, b = m[f"persistd {procs} processes"], m[f"direct {procs} processes"]
            self.add(f"{procs} processes writeSignalData/s persistd vs direct PostgreSQL",
                     f"{s.rate:.0f}/s", f"{b.rate:.0f}/s", s.rate / b.rate, ">= 1.0")  # fmt: skip
        s, b = m["persistd writeSignalData"], m["file adapter writeSignalData"]
        self.add("writeSignalData p50 persistd vs file adapter", f"{s.p50_ms:.2f} ms",
                 f"{b.p50_ms:.2f} ms", s.p50_ms / b.p50_ms, "<= 2.0")  # fmt: skip
        # Information only: the file adapter serves one host and shares nothing.
        s, b = m[f"persistd {few} processes"], m[f"file adapter {few} processes"]
        self.add(f"{few} processes writeSignalData/s persistd vs file adapter", f"{s.rate:.0f}/s",
                 f"{b.rate:.0f}/s", s.rate / b.rate, None)  # fmt: skip

    def capacity(self, server_url: str) -> None:
        """The largest number of live bots one persistd serves with write p99 <= 25 ms, no errors.

        Doubling from a small fleet until a step fails, then bisecting between the last good
        and the first bad size; each step is a fresh fleet of N connections (bench/capacity.py).
        """
        limit_ms = 25.0
        seconds, settle = (2.0, 1.0) if self.args.quick else (5.0, 2.0)
        n, top = (100, 200) if self.args.quick else (250, 8000)
        good: tuple[int, Load, dict[str, float]] | None = None
        bad: int | None = None
        steps = 0
        with (
            bench_database(server_url, "persistd_bench_capacity") as url,
            Service(url, self.knobs) as svc,
        ):
            roots = {"service": svc.process.pid if svc.process else None,
                     "postgres": postmaster_pid(url)}  # fmt: skip
            while steps < (2 if self.args.quick else 8):
                steps += 1
                with cpu_meter(roots) as cpu:
                    started = time.process_time()  # the load generator runs in this process
                    load = run_bots(svc.url, n, seconds, settle)
                    cpu["bot"] = time.process_time() - started
                ok = not load.errors and load.write_p99_ms <= limit_ms
                self.log(
                    f"  capacity {n:5d} bots: {len(load.writes) / seconds:6.0f} writes/s,"
                    f" p50 {load.write_p50_ms:6.2f} ms, p99 {load.write_p99_ms:7.2f} ms,"
                    f" startup p99 {load.startup_p99_ms:7.1f} ms, retried {load.retried},"
                    f" errors {load.errors}"
                    f" {load.reasons[:1]}  {'ok' if ok else 'over'}"
                )
                requests = len(load.writes) + len(load.startup) + load.errors
                per = {k: v * 1000 / max(1, requests) for k, v in cpu.items()}
                if ok:
                    good = (n, load, per)
                else:
                    bad = n
                if bad is None:
                    if n >= top:
                        break
                    n = min(2 * n, top)
                else:
                    low = good[0] if good else 0
                    if bad - low <= max(50, low // 8):
                        break
                    n = (low + bad) // 2
        if good is None:
            self.add("capacity: live bots at write p99 <= 25 ms, no errors", "none", "", 0.0,
                     ">= 2000", unit="")  # fmt: skip
            return
        n, load, per = good
        self.add("capacity: live bots at write p99 <= 25 ms, no errors",
                 f"{n} bots", f"p99 {load.write_p99_ms:.1f} ms", float(n), ">= 2000",
                 unit="")  # fmt: skip
        rate = len(load.writes) / seconds
        self.record(f"capacity {n} bots (writes)", "bench", n, Result(
            rate=rate, p50_ms=load.write_p50_ms, p99_ms=load.write_p99_ms,
            count=len(load.writes), errors=load.errors, cpu_ms=per))  # fmt: skip

    def network(self) -> None:
        """The Node rows across a delayed link need namespaces and a qdisc that delays packets."""
        reason = packet_delay_unavailable()
        if reason is None:
            # Not built: no machine this project runs on has offered a delaying qdisc yet.
            reason = "packet delay works here, but the bench has no delayed-network rows yet"
        self.cannot.append(f"across a network (0.5 ms RTT between namespaces): {reason}")
        self.log(f"across a network: cannot be measured here ({reason})")

    # ---- profiling (--profile) ----

    _profiler: subprocess.Popen[bytes] | None = None

    def profile_start(self, svc: Service) -> None:
        if not self.args.profile:
            return
        out = Path(self.args.profile)
        out.mkdir(parents=True, exist_ok=True)
        pid = svc.pids()[-1]  # one worker (the only one with --workers 1)
        self._profiler = subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
             "--output", str(out / "throughput.folded"), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)

    def profile_stop(self) -> None:
        if self._profiler is not None:
            self._profiler.send_signal(2)
            self._profiler.wait(30)
            self._profiler = None

    # ---- the report ----

    def add(
        self,
        name: str,
        service: str,
        baseline: str,
        ratio: float,
        want: str | None,
        unit: str = "x",
    ) -> None:
        self.targets.append(Target(name, service, baseline, ratio, want or "info", unit))

    def skip(self, part: str, reason: str) -> None:
        self.not_run.append(f"{part}: {reason}")
        self.log(f"{part}: not run ({reason})")

    def table(self) -> str:
        lines = [
            "| measure | service | baseline | ratio | target | result |",
            "|---|---|---|---|---|---|",
        ]
        for t in self.targets:
            result = "info" if t.want == "info" else ("PASS" if t.passed else "FAIL")
            want = "" if t.want == "info" else t.want.replace(">=", "≥").replace("<=", "≤")
            ratio = f"{t.ratio:.2f}x" if t.unit == "x" else f"{t.ratio:.0f}"
            lines.append(f"| {t.name} | {t.service} | {t.baseline} | {ratio} | {want} | {result} |")
        lines += [
            "",
            "| run | tool | c | rate/s | p50 ms | p99 ms | errors | service RSS MiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.runs:
            res = r.result
            rss = f"{res.rss_mb:.0f}" if res.rss_mb else ""
            lines.append(
                f"| {r.name} | {r.tool} | {r.connections} | {res.rate:.0f} | {res.p50_ms:.2f} | "
                f"{res.p99_ms:.2f} | {res.errors} | {rss} |"
            )
        accounted = [r for r in self.runs if r.result.cpu_ms]
        if accounted:
            lines += [
                "",
                "CPU per operation, ms (process CPU time from /proc over each run, per request,"
                " transaction or write; bot: the load generator's own: wrk, pgbench, the Node bots"
                " or the capacity fleet):",
                "",
                "| run | c | bot | service | PostgreSQL | total |",
                "|---|---|---|---|---|---|",
            ]
            for r in accounted:
                cpu = r.result.cpu_ms or {}
                cells = [cpu.get(k) for k in ("bot", "service", "postgres")]
                text = [f"{c:.3f}" if c is not None else "" for c in cells]
                total = sum(c for c in cells if c is not None)
                lines.append(f"| {r.name} | {r.connections} | {' | '.join(text)} | {total:.3f} |")
        for line in self.cannot:
            lines += ["", f"cannot be measured here: {line}"]
        return "\n".join(lines)

    def machine(self, server_url: str) -> str:
        cpu = "unknown CPU"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        version = server_version(server_url)
        defaults = {"http": "persistd", "loop": "uvloop"}  # what `persistd serve` runs
        changed = [f"{k}={v}" for k, v in self.knobs.items() if v and defaults.get(k) != v]
        service = f"`persistd serve` with its defaults ({os.cpu_count()} workers, access log on)"
        if changed:
            service += f" but {', '.join(changed)}"
        return (
            f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, PostgreSQL {version}; service: {service}; "
            f"{self.rounds()} x {self.seconds:.0f} s runs per measure, median"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes; targets never fail")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per measure")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PERSISTD_BENCH_DATABASE_URL"),
        help="an existing PostgreSQL server (default: an embedded one in a temp folder)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="PERSISTD_WORKERS (default: persistd's own, one worker per core)",
    )
    parser.add_argument(
        "--log-level", help="PERSISTD_LOG_LEVEL (default: persistd's own, a log line per request)"
    )
    parser.add_argument(
        "--http",
        default="persistd",
        choices=["persistd", "httptools", "h11"],
        help="persistd: httptools with problem+json parser errors, as `persistd serve` runs",
    )
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    parser.add_argument("--pool-max", type=int, default=0, help="PERSISTD_POOL_MAX_SIZE")
    parser.add_argument("--skip-scale", action="store_true", help="skip the 1M-record runs")
    parts = ["throughput", "scale", "node", "history", "capacity", "network", "leases"]
    parser.add_argument("--only", choices=parts, action="append", help="run one part (repeatable)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the throughput runs into DIR")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="persistd-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # the embedded server may run as its own system user
        bench = Bench(args, work)
        with postgres_server(args.database_url, work) as (server_url, pgbench_bin):
            bench.log(f"PostgreSQL at {server_url}, pgbench {pgbench_bin}")
            sql(server_url, "SELECT 1")
            only = args.only or parts
            if "throughput" in only:
                bench.throughput(server_url, pgbench_bin)
            if "scale" in only and not args.skip_scale:
                bench.scale(server_url)
            if "node" in only:
                bench.backtest_kit_node(server_url)
            if "history" in only:
                history.run(bench, server_url)
            if "network" in only:
                bench.network()
            if "capacity" in only:
                bench.capacity(server_url)
            if "leases" in only:
                leases.run(bench, server_url)
            machine = bench.machine(server_url)
    print(f"persistd benchmark{' (--quick)' if args.quick else ''}: {machine}\n")
    print(bench.table())
    failed = [t for t in bench.targets if t.want != "info" and not t.passed]
    errors = [r for r in bench.runs if r.result.errors]
    if errors:
        print(f"\n{len(errors)} runs had errors (failed requests or writes): results are suspect")
    for part in bench.not_run:
        print(f"\nnot run: {part}")
    if args.quick:
        return 0
    return 1 if failed or errors or bench.not_run else 0


if __name__ == "__main__":
    sys.exit(main())
