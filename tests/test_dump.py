"""`persistd import-dump` / `export-dump`: backtest-kit's file layout maps one-to-one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT
from tests.test_records import SIGNAL

CANDLE = {"timestamp": 1704066900000, "open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 9}
FILES: dict[str, object] = {
    "data/signal/BTCUSDT_s_binance/BTCUSDT.json": SIGNAL,
    "data/schedule/BTCUSDT_s_binance/BTCUSDT.json": None,
    "data/risk/r_binance/positions.json": [["s_binance_BTCUSDT", {"position": "long"}]],
    "data/partial/BTCUSDT_s_binance/sig-1.json": {
        "sig-1": {"profitLevels": [10], "lossLevels": []}
    },
    "data/candle/binance/BTCUSDT/1m/1704066900000.json": CANDLE,
    "data/storage/live/sig-1.json": {"id": "sig-1", "status": "opened"},
    "data/log/log/entry 1.json": {"id": "entry 1", "type": "info"},
    "memory/sig-1/notes/m1.json": {"priority": 1, "data": {}, "removed": False},
    "state/sig-1/bucket/bucket.json": {"id": "x", "data": {}, "when": 1},
    "session/s/binance/BTCUSDT_live.json": {"id": "y", "data": None, "when": 2},
}
BAD = {
    "data/signal/ETHUSDT_s_binance/ETHUSDT.json": b'{"id": "no position"}',
    "data/misc/e/broken.json": b"{not json",
    "loose.json": b"{}",
}


def persistd(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PERSISTD_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "persistd.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.fixture
def dump_dir(tmp_path: Path) -> Path:
    root = tmp_path / "dump"
    for rel, value in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    for rel, raw in BAD.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(raw)
    (root / "data/signal/BTCUSDT_s_binance/.tmp-abc-BTCUSDT.json").write_text("{")
    return root


def test_import_maps_files_to_records_and_reports_bad_files(
    dump_dir: Path, database_url: str, http: httpx.Client, ns: str
) -> None:
    done = persistd("import-dump", str(dump_dir), "--namespace", ns, database_url=database_url)
    assert done.returncode == 1, done.stderr  # bad files were skipped: the exit status says so
    assert "total                 10         0" in done.stdout
    for rel in BAD:
        assert str(dump_dir / rel) in done.stdout
    assert ".tmp-" not in done.stdout
    assert http.get(f"/v1/{ns}/signal/BTCUSDT_s_binance/records/BTCUSDT").json() == SIGNAL
    assert (
        http.get(f"/v1/{ns}/candle/binance%2FBTCUSDT%2F1m/records/1704066900000").json() == CANDLE
    )
    assert http.get(f"/v1/{ns}/memory/sig-1%2Fnotes/records/m1").json()["priority"] == 1
    assert http.get(f"/v1/{ns}/session/s%2Fbinance/records/BTCUSDT_live").json()["id"] == "y"
    assert http.get(f"/v1/{ns}/log/log/records/entry%201").status_code == 200
    assert http.get(f"/v1/{ns}/signal/ETHUSDT_s_binance/records/ETHUSDT").status_code == 404

    again = persistd("import-dump", str(dump_dir), "--namespace", ns, database_url=database_url)
    assert "total                  0        10" in again.stdout, again.stdout
    assert http.get(f"/v1/{ns}/signal/BTCUSDT_s_binance/records/BTCUSDT").headers["etag"] == '"1"'


def test_export_writes_the_same_layout_back_and_is_idempotent(
    dump_dir: Path, database_url: str, tmp_path: Path, ns: str
) -> None:
    persistd("import-dump", str(dump_dir), "--namespace", ns, database_url=database_url)
    out = tmp_path / "exported"
    done = persistd("export-dump", str(out), "--namespace", ns, database_url=database_url)
    assert done.returncode == 0, done.stdout + done.stderr
    exported = {str(p.relative_to(out)) for p in out.rglob("*.json")}
    assert exported == set(FILES)
    for rel, value in FILES.items():
        assert json.loads((out / rel).read_text()) == value
    again = persistd("export-dump", str(out), "--namespace", ns, database_url=database_url)
    assert "total                  0        10" in again.stdout


def test_export_refuses_names_that_are_not_safe_paths(
    database_url: str, http: httpx.Client, tmp_path: Path, ns: str
) -> None:
    http.put(f"/v1/{ns}/misc/a%2F..%2F..%2Fescape/records/k", json=1)
    http.put(f"/v1/{ns}/misc/fine/records/a%2Fb", json=2)
    http.put(f"/v1/{ns}/misc/fine/records/ok", json=3)
    out = tmp_path / "exported"
    done = persistd("export-dump", str(out), "--namespace", ns, database_url=database_url)
    assert done.returncode == 1
    assert "skipped: 2" in done.stdout
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")] == [
        "exported/data/misc/fine/ok.json"
    ]


def test_import_of_a_missing_folder_fails_clearly(database_url: str, tmp_path: Path) -> None:
    done = persistd("import-dump", str(tmp_path / "nope"), database_url=database_url)
    assert done.returncode == 2
    assert "is not a directory" in done.stderr


def test_import_refuses_a_value_over_the_size_limit_as_a_put_does(
    database_url: str, http: httpx.Client, tmp_path: Path, ns: str
) -> None:
    big = json.dumps({"blob": "x" * (1024 * 1024)})  # just over the default 1 MiB limit
    assert http.put(f"/v1/{ns}/misc/e/records/big", content=big).status_code == 413
    root = tmp_path / "dump"
    (root / "data/misc/e").mkdir(parents=True)
    (root / "data/misc/e/big.json").write_text(big)
    (root / "data/misc/e/small.json").write_text("1")
    done = persistd("import-dump", str(root), "--namespace", ns, database_url=database_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "skipped: 1" in done.stdout
    assert "the limit is 1048576 bytes" in done.stdout
    assert http.get(f"/v1/{ns}/misc/e/records/big").status_code == 404
    assert http.get(f"/v1/{ns}/misc/e/records/small").json() == 1


def test_backtest_kit_20_dictionary_files_import_and_export_in_their_own_layout(
    database_url: str, http: httpx.Client, tmp_path: Path, ns: str
) -> None:
    # backtest-kit 20.x: ./dump/dictionary/<signalId>/<dictionaryName>.json, beside data/.
    value = {"id": "prefs", "data": {"risk": {"value": 0.5, "when": 1}}, "when": 1}
    source = tmp_path / "dump" / "dictionary" / "sig-1" / "prefs.json"
    source.parent.mkdir(parents=True)
    source.write_text(json.dumps(value))
    done = persistd(
        "import-dump", str(tmp_path / "dump"), "--namespace", ns, database_url=database_url
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert http.get(f"/v1/{ns}/dictionary/sig-1/records/prefs").json() == value
    out = tmp_path / "exported"
    done = persistd("export-dump", str(out), "--namespace", ns, database_url=database_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.json")] == [
        "dictionary/sig-1/prefs.json"
    ]
    assert json.loads((out / "dictionary" / "sig-1" / "prefs.json").read_text()) == value
