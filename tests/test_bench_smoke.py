"""The benchmark runs end to end in --quick mode and prints its table (no timing assertions)."""

import shutil
import subprocess
import sys

from tests.support import ROOT


def test_bench_quick_completes_and_prints_the_table() -> None:
    for tool in ("wrk", "pgbench"):
        assert shutil.which(tool), (
            f"{tool} is not installed (apt-get install wrk postgresql-contrib)"
        )
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=480,  # about 2-3 minutes on a busy 2-core machine
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| measure | service | baseline | ratio | target | result |" in out, out
    for row in (
        "writes c=32",
        "reads c=32",
        "batch-put rows/s",
        "read p50 latency",
        "write p50 latency",
        "writeSignalData p50 persistd vs direct PostgreSQL",
        "writeSignalData p99 persistd vs direct PostgreSQL",
        "8 processes writeSignalData/s persistd vs direct PostgreSQL",
        "32 processes writeSignalData/s persistd vs direct PostgreSQL",
        "writeSignalData p50 persistd vs file adapter",
        "8 processes writeSignalData/s persistd vs file adapter",
        "capacity: live bots at write p99 <= 25 ms",
        "| run | c | bot | service | PostgreSQL | total |",  # CPU accounting
        "cannot be measured here: across a network",  # or, where packets can be delayed, its rows
        "writes c=32 history on vs off",
        "watch p99 at 100 watchers",
        "watch p99 vs the same PUTs' own p99",
        "fenced PUT c=32 vs PUT c=32",
        "leases renewed every 5 s",
        "batch-renewed every 5 s",
    ):
        assert row in out, out
    assert "runs had errors" not in out, out
    assert "not run" not in out, out
