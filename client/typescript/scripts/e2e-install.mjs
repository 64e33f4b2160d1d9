// Test helper: install e2e/ (real backtest-kit) from its lockfile unless it is already there.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";

const e2e = new URL("../e2e/", import.meta.url);
if (existsSync(new URL("node_modules/backtest-kit/package.json", e2e))) process.exit(0);
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const run = spawnSync(npm, ["ci", "--no-audit", "--no-fund"], { cwd: e2e, stdio: "inherit" });
process.exit(run.status ?? 1);
