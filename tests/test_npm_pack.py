"""persistd-backtest-kit as a bot gets it: `npm pack` from a clean copy of client/typescript
(no node_modules, no dist), the tarball installed into a scratch bot project beside backtest-kit
19.5.0, then `setup()` and a signal round trip through backtest-kit, by `require` and by `import`.
"""

import json
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT

PACKAGE = ROOT / "client" / "typescript"
NPM = ["npm", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"]

# The bot: backtest-kit writes and reads a signal through the adapters setup() registered.
BOT = """
const [url, namespace] = process.argv.slice(2);
const adapters = setup({ url, namespace });
if (bk.PersistSignalAdapter.PersistSignalInstanceCtor !== adapters.Signal) {
  throw new Error("setup() did not register with the bot's backtest-kit");
}
const now = Date.now();
const row = {
  id: "npm-pack-1", position: "long", priceOpen: 100, priceTakeProfit: 110, priceStopLoss: 90,
  minuteEstimatedTime: 600, symbol: "BTCUSDT", strategyName: "s", exchangeName: "e",
  frameName: "", scheduledAt: now, pendingAt: now, timestamp: now, _isScheduled: false,
};
await bk.PersistSignalAdapter.writeSignalData(row, "BTCUSDT", "s", "e");
const back = await bk.PersistSignalAdapter.readSignalData("BTCUSDT", "s", "e");
console.log(JSON.stringify({ id: back.id, priceOpen: back.priceOpen }));
"""
ESM = f"""
import * as bk from "backtest-kit";
import {{ setup }} from "persistd-backtest-kit";
{BOT}
"""
CJS = f"""
const bk = require("backtest-kit");
const {{ setup }} = require("persistd-backtest-kit");
(async () => {{
{BOT}
}})().catch((error) => {{ console.error(error); process.exit(1); }});
"""


def run(args: list[str], cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`npm ci && npm pack` in a copy of the package as a fresh clone has it."""
    clone = tmp_path_factory.mktemp("clone") / "typescript"
    shutil.copytree(PACKAGE, clone, ignore=shutil.ignore_patterns("node_modules", "dist"))
    # Install scripts off for `ci`: `npm pack` alone must build dist/ (the `prepare` script).
    run([*NPM, "ci", "--ignore-scripts"], clone)
    assert not (clone / "dist").exists()
    name = run([*NPM, "pack", "--silent"], clone).strip().splitlines()[-1]
    packed = clone / name
    with tarfile.open(packed) as tar:
        files = set(tar.getnames())
    for needed in ("index.js", "index.d.ts"):
        assert f"package/dist/cjs/{needed}" in files and f"package/dist/esm/{needed}" in files
    assert "package/dist/cjs/package.json" in files  # marks dist/cjs as CommonJS
    assert {"package/LICENSE", "package/README.md", "package/package.json"} <= files
    return packed


@pytest.fixture(scope="module")
def bot(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bot project: backtest-kit 19.5.0 and the tarball, with the overrides the package README
    gives for a registry that lacks backtest-kit's exact dependencies."""
    project = tmp_path_factory.mktemp("bot")
    e2e = json.loads((PACKAGE / "e2e" / "package.json").read_text())
    shutil.copytree(PACKAGE / "e2e" / "di-singleton", project / "di-singleton")
    manifest = {
        "name": "scratch-bot",
        "private": True,
        "version": "0.0.0",
        "dependencies": {
            "backtest-kit": "19.5.0",
            "persistd-backtest-kit": f"file:{tarball}",
        },
        "overrides": e2e["overrides"],
    }
    (project / "package.json").write_text(json.dumps(manifest, indent=2))
    run([*NPM, "install"], project)
    installed = project / "node_modules" / "persistd-backtest-kit"
    assert not installed.is_symlink(), "installed as a folder link, not from the tarball"
    assert (installed / "dist" / "cjs" / "index.js").is_file()
    return project


@pytest.mark.parametrize(("kind", "source"), [("require", CJS), ("import", ESM)])
def test_packed_tarball_works_in_a_bot(bot: Path, service_url: str, kind: str, source: str) -> None:
    namespace = f"npm-{kind}-{uuid.uuid4().hex[:8]}"
    script = bot / ("bot.cjs" if kind == "require" else "bot.mjs")
    script.write_text(source)
    out = run(["node", script.name, service_url, namespace], bot, timeout=120)
    assert json.loads(out.strip().splitlines()[-1]) == {"id": "npm-pack-1", "priceOpen": 100}
    # It went to persistd, at backtest-kit's own address of that signal.
    stored = httpx.get(f"{service_url}/v1/{namespace}/signal/BTCUSDT_s_e/records/BTCUSDT")
    assert stored.status_code == 200
    assert stored.json()["id"] == "npm-pack-1"
    assert not (bot / "dump").exists(), "backtest-kit wrote files instead of using persistd"
