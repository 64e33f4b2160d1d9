"""Benchmark tools: the database, the service process, wrk, pgbench, Node and the RSS sampler."""

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from persistd.db import asyncpg_dsn, migrate
from persistd.embedded import free_port
from persistd.protocol import IMPORT_STRING

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"
E2E = ROOT / "client" / "typescript" / "e2e"  # the test package with the real backtest-kit
VALUE = '{"position":"long","priceOpen":42000.5,"note":"bench"}'


@dataclass
class Result:
    """One load run: throughput and latency as the load generator measured them."""

    rate: float  # requests (or transactions) per second
    p50_ms: float
    p99_ms: float
    count: int
    errors: int = 0
    rss_mb: float | None = None
    cpu_ms: dict[str, float] | None = None  # CPU per operation by process group (bot, service, ...)


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"bench: `{name}` is not installed ({hint})")
    return path


# ---- the database ----


@contextmanager
def postgres_server(url: str | None, work: Path) -> Iterator[tuple[str, str]]:
    """(server URL, pgbench path): the given server, else an embedded one of our own."""
    if url:
        yield url, require_tool("pgbench", "apt-get install postgresql-contrib")
        return
    from persistd.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(work / "pg")
    server.start()
    try:
        pgbench = server.bin / "pgbench"
        if not pgbench.exists():
            pgbench = Path(require_tool("pgbench", "apt-get install postgresql-contrib"))
        yield server.url, str(pgbench)
    finally:
        server.stop("immediate")


async def _sql(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def sql(url: str, *statements: str) -> None:
    asyncio.run(_sql(url, *statements))


def server_version(url: str) -> int:
    """The PostgreSQL major version of the server at `url`."""

    async def ask() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return conn.get_server_version().major
        finally:
            await conn.close()

    return asyncio.run(ask())


def with_database(server_url: str, name: str) -> str:
    base, _, _ = asyncpg_dsn(server_url).rpartition("/")
    return f"{base}/{name}"


@contextmanager
def bench_database(server_url: str, name: str) -> Iterator[str]:
    """A fresh, migrated database, dropped afterwards."""
    name = f"{name}_{os.getpid()}"
    sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    try:
        migrate(url)
        yield url
    finally:
        sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def populate(url: str, entity: str, start: int, stop: int) -> None:
    """Records k{start}..k{stop-1} of bench/misc/{entity}, in one INSERT ... SELECT."""
    sql(
        url,
        "INSERT INTO records (namespace, domain, entity, key, value, version) "
        f"SELECT 'bench', 'misc', '{entity}', 'k' || g, '{VALUE}'::jsonb, 1 "
        f"FROM generate_series({start}, {stop - 1}) AS g ON CONFLICT DO NOTHING",
        "VACUUM ANALYZE records",
        "CHECKPOINT",
    )


# ---- the service ----


class Service:
    """persistd as `persistd serve` starts it: its own defaults, except for the knobs given.

    Its log (at the default level, a line per request) goes to a file, as to a log collector.
    The knobs `http` and `loop` other than the defaults run uvicorn directly instead.
    """

    def __init__(self, database_url: str, knobs: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.knobs = knobs
        self.env = {**os.environ, "PERSISTD_DATABASE_URL": database_url}
        for knob, var in (("workers", "PERSISTD_WORKERS"), ("log_level", "PERSISTD_LOG_LEVEL")):
            if knobs.get(knob):
                self.env[var] = knobs[knob]
        if knobs.get("pool_max"):
            self.env["PERSISTD_POOL_MAX_SIZE"] = knobs["pool_max"]
            self.env["PERSISTD_POOL_MIN_SIZE"] = knobs["pool_max"]
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"persistd-bench-{self.port}.log"

    def command(self) -> list[str]:
        http, loop = self.knobs.get("http", "persistd"), self.knobs.get("loop", "uvloop")
        if http == "persistd" and loop == "uvloop":
            return [
                sys.executable, "-m", "persistd.cli", "serve", "--port", str(self.port),
                "--no-migrate",
            ]  # fmt: skip
        return [
            sys.executable, "-m", "uvicorn", "persistd.main:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", self.knobs.get("workers") or str(os.cpu_count() or 1),
            "--http", IMPORT_STRING if http == "persistd" else http, "--loop", loop,
            "--no-access-log", "--log-level", self.knobs.get("log_level") or "info",
        ]  # fmt: skip

    def start(self) -> "Service":
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command(), cwd=ROOT, env=self.env, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise SystemExit(
                    f"bench: the service exited with {self.process.returncode}\n{tail}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit("bench: the service did not become ready")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            self.log_path.unlink(missing_ok=True)

    def pids(self) -> list[int]:
        """The uvicorn process and its workers."""
        if self.process is None:
            return []
        pids = [self.process.pid]
        for pid in list(pids):
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                pids += [int(p) for p in task.read_text().split()]
        return pids

    def __enter__(self) -> "Service":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) if found else 0


@contextmanager
def rss_sampler(service: Service | None) -> Iterator[list[float]]:
    """Peak resident memory (MiB) of the service's processes while the block runs."""
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            if service is not None:
                total = sum(_rss_kib(pid) for pid in service.pids()) / 1024
                peak[0] = max(peak[0], total)
            stop.wait(0.25)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


# ---- CPU accounting (/proc) ----

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of a process (and of its reaped children, when asked)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICK


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            found += [int(p) for p in task.read_text().split()]
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU of a process tree: the root with the reaped children it counts, and its live children.

    A PostgreSQL backend that ends during a run is reaped by the postmaster, so its CPU moves
    from the live children into the postmaster's cutime: the sum is continuous.
    """
    return _cpu_seconds(root, children=True) + sum(_cpu_seconds(p) for p in _children(root))


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process when it runs on this machine (a backend's parent)."""

    async def ask() -> int | None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
            # Read while connected: the backend ends with the connection.
            return _parent(backend)
        finally:
            await conn.close()

    return asyncio.run(ask())


def _parent(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None  # a server on another machine (or in a container): not counted
    found = re.search(r"PPid:\s+(\d+)", status)
    return int(found.group(1)) if found else None


@contextmanager
def cpu_meter(roots: dict[str, int | None]) -> Iterator[dict[str, float]]:
    """CPU seconds each process tree spent while the block ran, by name."""
    before = {name: tree_cpu_seconds(pid) for name, pid in roots.items() if pid}
    spent: dict[str, float] = {}
    try:
        yield spent
    finally:
        for name, start in before.items():
            pid = roots[name]
            assert pid is not None
            spent[name] = tree_cpu_seconds(pid) - start


# ---- a delayed network between namespaces ----


def packet_delay_unavailable() -> str | None:
    """Why this machine cannot delay packets in a network namespace of the bench's own, or None.

    The probe makes a namespace, puts a netem qdisc on its loopback and removes the namespace.
    """
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "iproute2 (`ip`, `tc`) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    ns = f"persistd-bench-{os.getpid()}"
    steps = [
        ["ip", "netns", "add", ns],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
         "delay", "250us"],
    ]  # fmt: skip
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                why = done.stderr.strip() or f"exit code {done.returncode}"
                return f"`{' '.join(step)}` failed: {why}"
        return None
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


# ---- load generators ----


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _per_request(cpu: dict[str, float], client: float, requests: int) -> dict[str, float]:
    """CPU ms per request: the load generator ("bot"), the service and PostgreSQL."""
    spent = {"bot": client, **cpu}
    return {name: seconds * 1000 / max(1, requests) for name, seconds in spent.items()}


def wrk(
    service: Service,
    scenario: str,
    connections: int,
    seconds: float,
    env: dict[str, str] | None = None,
    postmaster: int | None = None,
) -> Result:
    """Drive the service with wrk and one Lua scenario from bench/scripts."""
    require_tool("wrk", "apt-get install wrk")
    script = Path(os.environ.get("TMPDIR", "/tmp")) / f"persistd-bench-{os.getpid()}-{scenario}"
    script.write_text((SCRIPTS / scenario).read_text() + (SCRIPTS / "done.lua").read_text())
    threads = min(connections, 2)
    cmd = [
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(script), service.url,
    ]  # fmt: skip
    roots = {"service": service.process.pid if service.process else None, "postgres": postmaster}
    client = _children_cpu_seconds()
    with rss_sampler(service) as peak, cpu_meter(roots) as cpu:
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
        )
    client = _children_cpu_seconds() - client
    script.unlink(missing_ok=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"bench: wrk failed: {done.stderr or done.stdout}")
    data = json.loads(line[len("BENCH ") :])
    duration = data["duration_us"] / 1e6
    return Result(
        rate=data["requests"] / duration,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        count=data["requests"],
        errors=data["status_errors"] + data["socket_errors"],
        rss_mb=peak[0],
        cpu_ms=_per_request(cpu, client, data["requests"]) if postmaster else None,
    )


def pgbench(
    binary: str,
    url: str,
    script: str,
    clients: int,
    seconds: float,
    variables: dict[str, str],
    work: Path,
    postmaster: int | None = None,
) -> Result:
    """Run one custom pgbench script (prepared statements, like asyncpg); latency from its log."""
    logs = work / f"pgbench-{script}-{clients}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    cmd = [
        binary, "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
        "-T", str(max(1, round(seconds))), "-f", str(SCRIPTS / script), "-l",
        "--log-prefix", str(logs / "tx"),
    ]  # fmt: skip
    for name, value in variables.items():
        cmd += ["-D", f"{name}={value}"]
    client = _children_cpu_seconds()
    with cpu_meter({"postgres": postmaster}) as cpu:
        done = subprocess.run([*cmd, url], capture_output=True, text=True, check=False)
    client = _children_cpu_seconds() - client
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if done.returncode != 0 or tps is None:
        raise SystemExit(f"bench: pgbench failed: {done.stderr or done.stdout}")
    latencies = []
    for log in logs.iterdir():
        for row in log.read_text().splitlines():
            latencies.append(int(row.split()[2]) / 1000)  # microseconds -> ms
    shutil.rmtree(logs, ignore_errors=True)
    return Result(
        rate=float(tps.group(1)),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        count=len(latencies),
        errors=int(failed.group(1)) if failed else 0,
        cpu_ms=_per_request(cpu, client, len(latencies)) if postmaster else None,
    )


def node_bench(
    service: Service,
    database_url: str,
    adapter: str,
    scenario: str,
    options: dict[str, str],
    postmaster: int | None = None,
) -> Result:
    """One run of e2e/bench.mjs: backtest-kit's writeSignalData on the file, persistd or direct
    (node-postgres) adapter; with CPU per write of the bots, the service and PostgreSQL."""
    cmd = [
        "node", "--preserve-symlinks", "bench.mjs", "--url", service.url,
        "--database-url", database_url, "--adapter", adapter, "--scenario", scenario,
    ]  # fmt: skip
    for name, value in options.items():
        cmd += [f"--{name}", value]
    roots = {"service": service.process.pid if service.process else None, "postgres": postmaster}
    with rss_sampler(service if adapter == "persistd" else None) as peak, cpu_meter(roots) as cpu:
        done = subprocess.run(cmd, cwd=E2E, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"bench: bench.mjs failed with exit code {done.returncode} (stderr above)")
    data = json.loads(done.stdout.splitlines()[-1])
    # Every write of the run, the warm-up included, is what the service and PostgreSQL served.
    writes = data["count"] + data["processes"] * int(options.get("warmup", "0"))
    per_write = {"bot": data["bot_cpu_ms"] / max(1, data["count"])}
    if adapter == "persistd":
        per_write["service"] = cpu.get("service", 0.0) * 1000 / max(1, writes)
    if adapter != "file" and "postgres" in cpu:
        per_write["postgres"] = cpu["postgres"] * 1000 / max(1, writes)
    return Result(
        rate=data["rate"],
        p50_ms=data["p50_ms"],
        p99_ms=data["p99_ms"],
        count=data["count"],
        errors=data["errors"],
        rss_mb=peak[0] if adapter == "persistd" else None,
        cpu_ms=per_write,
    )


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def median_result(results: list[Result]) -> Result:
    """The median of repeated runs, measure by measure; errors add up, RSS is the peak."""
    rss = [r.rss_mb for r in results if r.rss_mb is not None]
    cpus = [r.cpu_ms for r in results if r.cpu_ms]
    cpu = {k: statistics.median(c.get(k, 0.0) for c in cpus) for k in cpus[0]} if cpus else None
    return Result(
        rate=statistics.median(r.rate for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        count=sum(r.count for r in results),
        errors=sum(r.errors for r in results),
        rss_mb=max(rss) if rss else None,
        cpu_ms=cpu,
    )
