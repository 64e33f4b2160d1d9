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

// 19.5.0 has no PersistDictionaryAdapter (20.x does): setup() skips it without a word.
const CHECK = `
  const A = setup({ url: "http://127.0.0.1:1", namespace: "reg" });
  const present = DOMAIN_NAMES.filter((n) => bk["Persist" + n + "Adapter"] !== undefined);
  const missing = present.filter((n) => bk["Persist" + n + "Adapter"]["Persist" + n + "InstanceCtor"] !== A[n]);
  const only = setup({ url: "http://127.0.0.1:1", domains: ["Signal", "Risk"] });
  const partial = present.filter((n) => bk["Persist" + n + "Adapter"]["Persist" + n + "InstanceCtor"] === only[n]);
  const absent = DOMAIN_NAMES.filter((n) => !present.includes(n));
  console.log(JSON.stringify({ missing, partial, absent, registered: present.length }));
`;

describe("setup()", () => {
  it("registers all 16 classes with backtest-kit 19.5.0 loaded by import, skipping Dictionary", () => {
    const out = run(["--input-type=module", "-e", `import * as bk from "backtest-kit"; import { setup, DOMAIN_NAMES } from "persistd-backtest-kit"; ${CHECK}`]);
    assert.deepEqual(JSON.parse(out), { missing: [], partial: ["Signal", "Risk"], absent: ["Dictionary"], registered: 16 });
  });

  it("registers all 16 classes with backtest-kit 19.5.0 loaded by require, skipping Dictionary", () => {
    const out = run(["-e", `const bk = require("backtest-kit"); const { setup, DOMAIN_NAMES } = require("persistd-backtest-kit"); ${CHECK}`]);
    assert.deepEqual(JSON.parse(out), { missing: [], partial: ["Signal", "Risk"], absent: ["Dictionary"], registered: 16 });
  });

  it("on a backtest-kit with PersistDictionaryAdapter (20.x; faked on 19.5.0) Dictionary is registered too", () => {
    const script = `
      import * as bk from "backtest-kit";
      import { install } from "persistd-backtest-kit";
      let registered;
      const kit = { ...bk, PersistDictionaryAdapter: { usePersistDictionaryAdapter: (Ctor) => (registered = Ctor) } };
      const A = install(kit, { url: "http://127.0.0.1:1", namespace: "reg" });
      const d = new registered("sig-1", "prefs");
      console.log(JSON.stringify({
        dictionary: registered === A.Dictionary,
        signal: bk.PersistSignalAdapter.PersistSignalInstanceCtor === A.Signal,
        methods: ["waitForInit", "readDictionaryData", "writeDictionaryData", "dispose"].filter((m) => typeof d[m] === "function"),
      }));
    `;
    const out = run(["--input-type=module", "-e", script]);
    assert.deepEqual(JSON.parse(out), {
      dictionary: true,
      signal: true,
      methods: ["waitForInit", "readDictionaryData", "writeDictionaryData", "dispose"],
    });
  });

  it("the classes fit backtest-kit's usePersist*Adapter parameter types (tsc --strict)", () => {
    const tsc = join(E2E, "node_modules", "typescript", "bin", "tsc");
    const res = spawnSync(process.execPath, [tsc, "-p", join(E2E, "tsconfig.json")], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stdout + res.stderr);
  });
});
