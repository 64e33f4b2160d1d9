"""The TypeScript adapter (persistd-backtest-kit) and the real backtest-kit 19.5.0, from pytest.

The node suites run against this session's service; the dump round trip goes through the real
`persistd import-dump` command.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.support import ROOT, Service, VersionWriter

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


class NodeWatcher:
    """`client.watch()` in a node process (test/watch-follow.mjs): its changes, as they arrive."""

    def __init__(self, url: str, ns: str, since: int | None = None) -> None:
        args = ["node", "test/watch-follow.mjs", url, ns, *([] if since is None else [str(since)])]
        self.process = subprocess.Popen(
            args, cwd=PACKAGE, env=NODE_ENV, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.lines: list[dict[str, Any]] = []
        self.other: list[str] = []  # anything else the process printed (a crash's trace)
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            try:
                self.lines.append(json.loads(line))
            except json.JSONDecodeError:
                self.other.append(line)

    @property
    def changes(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if "seq" in line]

    def wait_for(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.changes) < count and time.monotonic() < deadline:
            assert self.process.poll() is None, self.lines + self.other
            time.sleep(0.05)
        return self.changes

    def stop(self) -> float:
        """Stop the watch through its signal; the seconds until the iterator ended."""
        assert self.process.stdin is not None
        started = time.monotonic()
        self.process.stdin.close()
        code = self.process.wait(15)
        took = time.monotonic() - started
        self._reader.join(5)
        assert code == 0, self.lines + self.other
        assert self.lines[-1] == {"ended": True}
        return took


def _change_log(url: str, ns: str) -> list[dict[str, Any]]:
    """The namespace's whole change log, page by page."""
    out: list[dict[str, Any]] = []
    since = 0
    while True:
        page = httpx.get(f"{url}/v1/{ns}/changes", params={"since": since, "limit": 1000}).json()
        out += page["items"]
        if not page["items"]:
            return out
        since = page["next_since"]


def _brief(change: dict[str, Any]) -> tuple[int, str, str, int, Any]:
    return change["seq"], change["key"], change["op"], change["version"], change["value"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_node_watch_sees_every_change_once_across_a_service_restart(
    built: None, database_url: str, ns: str, sig: signal.Signals
) -> None:
    """A node watcher follows client.watch() while a writer puts WRITES versions; the service
    is stopped mid-stream (SIGTERM, or SIGKILL) and started again on the same port while the
    writes go on. The watcher sees the change log exactly: every change once, in seq order."""
    writes, cut = 60, 20
    with Service(database_url) as svc:
        watcher = NodeWatcher(svc.url, ns, since=0)
        writer = VersionWriter(svc.url, ns, writes)
        writer.start()
        try:
            assert len(watcher.wait_for(cut)) >= cut
            assert svc.stop(sig) is not None  # mid-stream: the writer is still writing
            time.sleep(1.0)  # down: the watcher reconnects in vain, the writer retries
            svc.start()
            restarted = len(writer.acked)
            writer.join(90)
            assert writer.acked == list(range(writes))
            assert restarted < writes - 10  # most writes after the restart
            log = _change_log(svc.url, ns)
            watcher.wait_for(len(log))
            time.sleep(0.5)  # nothing more may come
            assert watcher.stop() < 5
        finally:
            watcher.process.kill()
            writer.join(90)
        # A write whose answer the stop lost is repeated: the log may hold it twice, the
        # watcher must then see it twice too, as two versions.
        assert {c["value"]["n"] for c in log} == set(range(writes))
        assert [_brief(c) for c in watcher.changes] == [_brief(c) for c in log]
        seqs = [c["seq"] for c in watcher.changes]
        assert seqs == sorted(set(seqs))  # no duplicate, in seq order

        # Started from any position, a watch gets exactly the rest.
        for start in (0, 17, len(log) - 1):
            rest = NodeWatcher(svc.url, ns, since=log[start]["seq"])
            try:
                rest.wait_for(len(log) - start - 1)
                time.sleep(0.5)
                assert rest.stop() < 5
            finally:
                rest.process.kill()
            assert [_brief(c) for c in rest.changes] == [_brief(c) for c in log[start + 1 :]]


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
