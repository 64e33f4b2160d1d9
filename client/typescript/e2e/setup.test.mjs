// E2E: setup() registers the classes with the real backtest-kit (ESM and CommonJS), and the
// classes type-check against backtest-kit's own hook signatures.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";

import { E2E } from "./support.mjs";

function run(args) {
  const res = spawnSync(process.execPath, ["--preserve-symlinks", ...args], { cwd: E2E, encoding: "utf8" });
  assert.equal(res.status, 0, res.stderr);
  return res.stdout.trim();
}

const CHECK = `
  const A = setup({ url: "http://127.0.0.1:1", namespace: "reg" });
  const missing = DOMAIN_NAMES.filter((n) => bk["Persist" + n + "Adapter"]["Persist" + n + "InstanceCtor"] !== A[n]);
  const only = setup({ url: "http://127.0.0.1:1", domains: ["Signal", "Risk"] });
  const partial = DOMAIN_NAMES.filter((n) => bk["Persist" + n + "Adapter"]["Persist" + n + "InstanceCtor"] === only[n]);
  console.log(JSON.stringify({ missing, partial }));
`;

describe("setup()", () => {
  it("registers all 16 classes with backtest-kit loaded by import", () => {
    const out = run(["--input-type=module", "-e", `import * as bk from "backtest-kit"; import { setup, DOMAIN_NAMES } from "persistd-backtest-kit"; ${CHECK}`]);
    assert.deepEqual(JSON.parse(out), { missing: [], partial: ["Signal", "Risk"] });
  });

  it("registers all 16 classes with backtest-kit loaded by require", () => {
    const out = run(["-e", `const bk = require("backtest-kit"); const { setup, DOMAIN_NAMES } = require("persistd-backtest-kit"); ${CHECK}`]);
    assert.deepEqual(JSON.parse(out), { missing: [], partial: ["Signal", "Risk"] });
  });

  it("the classes fit backtest-kit's usePersist*Adapter parameter types (tsc --strict)", () => {
    const tsc = join(E2E, "node_modules", "typescript", "bin", "tsc");
    const res = spawnSync(process.execPath, [tsc, "-p", join(E2E, "tsconfig.json")], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stdout + res.stderr);
  });
});
