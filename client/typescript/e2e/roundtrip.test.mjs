// E2E: a ./dump written by backtest-kit's own file adapters, imported with the documented
// mapping, is restored by a bot using the adapter.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { describe, it } from "node:test";

import { E2E, scratchDir } from "./support.mjs";

function node(script, args) {
  const res = spawnSync(process.execPath, ["--preserve-symlinks", join(E2E, script), ...args], {
    encoding: "utf8",
    env: process.env,
    timeout: 120_000,
  });
  const last = res.stdout.trim().split("\n").at(-1) ?? "";
  return { code: res.status, out: last.startsWith("{") ? JSON.parse(last) : undefined, stderr: res.stderr, stdout: res.stdout };
}

describe("dump round trip", () => {
  it("make-dump → import-dump → restore-check closes the dumped position at take-profit", () => {
    const dir = scratchDir("dump");
    const made = node("make-dump.mjs", [dir]);
    assert.equal(made.code, 0, made.stderr);
    const files = made.out.files;
    for (const expected of [
      "dump/data/signal/BTCUSDT_crash-test_offline/BTCUSDT.json",
      "dump/data/strategy/BTCUSDT_crash-test_offline/strategy.json",
      "dump/data/risk/r1_offline/positions.json",
    ]) {
      assert.ok(files.includes(expected), `${expected} not in ${files.join(", ")}`);
    }
    assert.ok(files.some((f) => f.startsWith("dump/data/candle/offline/BTCUSDT/1m/")));

    const namespace = `dump-${randomBytes(5).toString("hex")}`;
    const imported = node("import-dump.mjs", [made.out.dump, namespace]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.ok(imported.out.imported.signal >= 1 && imported.out.imported.candle >= 5, imported.stdout);

    const check = node("restore-check.mjs", [namespace, String(made.out.when), String(made.out.switch)]);
    assert.equal(check.code, 0, `${check.stdout} ${check.stderr}`);
    assert.equal(check.out.restoredSignal, made.out.signalId);
    assert.equal(check.out.id, made.out.signalId);
    assert.equal(check.out.closeReason, "take_profit");
  });
});
