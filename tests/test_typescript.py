"""The TypeScript adapter (persistd-backtest-kit) and the real backtest-kit 19.5.0, from pytest.

The node suites run against this session's service; the dump round trip goes through the real
`persistd import-dump` command.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGE = ROOT / "client" / "typescript"
NODE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PERSISTD_")}


def _node(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        ["node", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def built() -> None:
    assert (PACKAGE / "node_modules").is_dir(), "run scripts/bootstrap (npm ci) first"
    for folder, script in ((PACKAGE, "build"), (PACKAGE / "e2e", None)):
        if script:
            subprocess.run(["npm", "run", "--silent", script], cwd=folder, check=True)
    assert (PACKAGE / "e2e" / "node_modules" / "backtest-kit").is_dir(), "e2e packages missing"


@pytest.mark.parametrize("suite", ["test", "e2e"])
def test_node_suite_passes_against_the_real_service(
    built: None, service_url: str, suite: str
) -> None:
    env = {**NODE_ENV, "PERSISTD_URL": service_url}
    output = _node(["test/run.mjs", suite], PACKAGE, env, timeout=600)
    passed = re.search(r"^(?:#|\N{INFORMATION SOURCE}) pass (\d+)", output, re.M)
    failed = re.search(r"^(?:#|\N{INFORMATION SOURCE}) fail (\d+)", output, re.M)
    assert passed and int(passed.group(1)) > 0, "the node test runner ran no test"
    assert failed and int(failed.group(1)) == 0


def test_a_dump_written_by_backtest_kit_is_imported_and_restored_by_the_adapter(
    built: None, service_url: str, database_url: str, ns: str, tmp_path: Path
) -> None:
    e2e = PACKAGE / "e2e"
    made = _node(["--preserve-symlinks", "make-dump.mjs", str(tmp_path)], e2e, NODE_ENV, 180)
    dump = json.loads(made.strip().splitlines()[-1])
    assert any(f.startswith("dump/data/signal/") for f in dump["files"]), dump["files"]

    env = {**os.environ, "PERSISTD_DATABASE_URL": database_url}
    imported = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "persistd"), "import-dump", dump["dump"], "--namespace", ns],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "skipped: 0" in imported.stdout

    env = {**NODE_ENV, "PERSISTD_URL": service_url}
    args = ["--preserve-symlinks", "restore-check.mjs", ns, str(dump["when"]), str(dump["switch"])]
    restored = json.loads(_node(args, e2e, env, 180).strip().splitlines()[-1])
    assert restored["action"] == "closed"
    assert restored["closeReason"] == "take_profit"
