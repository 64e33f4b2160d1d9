// The client's rules against the service's published contract (client/contract.json): names,
// batch limits taken from the service, and the one rule for conditional writes.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { checkSlug, CONTRACT, createAdapters, PersistdClient, PersistdUnavailableError } from "../dist/esm/core.js";
import { freshNamespace, raw, URL_ } from "./support.mjs";

const PACKAGE = new URL("..", import.meta.url).pathname;
const FILE = JSON.parse(readFileSync(new URL("../../contract.json", import.meta.url), "utf8"));
const fast = { backoffBaseMs: 5, backoffMaxMs: 20 };

/** A fetch that lets `hook` answer a request itself (return a Response or throw) or pass it on. */
function hookedFetch(hook) {
  const calls = [];
  const f = async (input, init) => {
    const call = { method: init?.method ?? "GET", url: String(input), body: init?.body, headers: init?.headers ?? {} };
    calls.push(call);
    const own = await hook(call, calls.length, () => fetch(input, init));
    return own ?? fetch(input, init);
  };
  return { fetch: f, calls };
}

describe("contract", () => {
  it("the package's generated contract is client/contract.json (run scripts/contract.mjs after `persistd contract`)", () => {
    assert.deepEqual(CONTRACT, FILE);
  });

  it("the service publishes the same contract at GET /v1/_contract", async () => {
    const res = await fetch(`${URL_}/v1/_contract`);
    assert.equal(res.status, 200);
    const served = await res.json();
    assert.deepEqual({ ...served, limits: FILE.limits }, FILE);
  });

  it("namespaces are checked with the contract's slug rule and message", () => {
    const pattern = new RegExp(`^(?:${FILE.names.slug.pattern})$`);
    for (const value of ["a", "bot-1", "a.b_c", "0".repeat(63), "", "A", "-a", "a".repeat(64), "a/b", "a\n"]) {
      let accepted = true;
      try {
        checkSlug("namespace", value);
      } catch (error) {
        accepted = false;
        assert.ok(error.message.includes(FILE.names.slug.rule), error.message);
      }
      assert.equal(accepted, pattern.test(value), JSON.stringify(value));
    }
  });

  it("no name rule is copied by hand into the sources", () => {
    const http = readFileSync(join(PACKAGE, "src", "http.ts"), "utf8");
    assert.ok(!http.includes("[a-z0-9][a-z0-9_.-]"), "http.ts spells the slug pattern itself");
    assert.ok(!/MAX_BATCH\s*=/.test(http), "http.ts hard-codes a batch limit");
  });
});

describe("batch limits come from the service", () => {
  it("a batch larger than the service's limit is sent in as many batches as it needs", async () => {
    const ns = freshNamespace();
    const hooked = hookedFetch(() => undefined);
    const client = new PersistdClient({ url: URL_, namespace: ns, fetch: hooked.fetch });
    const items = Array.from({ length: 2 * FILE.limits.max_batch_items + 5 }, (_, i) => ({ key: `k${i}`, value: i }));
    const written = await client.batchPut("misc", "e", items);
    assert.equal(written.length, items.length);
    assert.ok(written.every((w) => w.written));
    const got = await client.batchGet("misc", "e", items.map((i) => i.key));
    assert.equal(got.items.length, items.length);
    assert.deepEqual(got.missing, []);
    const contractCalls = hooked.calls.filter((c) => c.url.endsWith("/v1/_contract"));
    assert.equal(contractCalls.length, 1, "the limits are asked once and kept");
    assert.equal(hooked.calls.filter((c) => c.url.endsWith("/batch-put")).length, 3);
  });

  it("limits lowered after they were read: a 413 halves the batch until it fits", async () => {
    const ns = freshNamespace();
    // The service as if an operator had set PERSISTD_MAX_BATCH_ITEMS=10 since the client asked.
    const hooked = hookedFetch((call) => {
      if (!call.url.endsWith("/batch-put")) return undefined;
      if (JSON.parse(call.body).items.length <= 10) return undefined;
      const body = { type: "x", title: "Payload too large", status: 413, detail: "at most 10", code: "payload_too_large" };
      return new Response(JSON.stringify(body), { status: 413, headers: { "Content-Type": "application/problem+json" } });
    });
    const A = createAdapters({ url: URL_, namespace: ns, fetch: hooked.fetch });
    const rows = Array.from({ length: 50 }, (_, i) => ({ id: `n${i}`, type: "signal.opened", createdAt: i }));
    await new A.Notification(false).writeNotificationData(rows);
    const keys = [];
    for (let cursor = null; ; ) {
      const res = await fetch(`${URL_}/v1/${ns}/notification/live/records?limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
      const page = await res.json();
      keys.push(...page.keys);
      if (!(cursor = page.next_cursor)) break;
    }
    assert.equal(keys.length, 50);
    const sizes = hooked.calls.filter((c) => c.url.endsWith("/batch-put")).map((c) => JSON.parse(c.body).items.length);
    assert.ok(sizes.filter((n) => n <= 10).reduce((a, b) => a + b, 0) === 50, JSON.stringify(sizes));
  });
});

describe("conditional writes: repeated only after a refused connection (as the Python client)", () => {
  const lostAnswer = (hook) =>
    hookedFetch(async (call, n, send) => {
      if (call.method === "PUT" && hook(n)) {
        await send(); // the service applies it ...
        throw new TypeError("fetch failed", { cause: new Error("socket hang up") }); // ... the answer is lost
      }
      return undefined;
    });

  it("an If-Match PUT whose answer was lost is not repeated: the outcome is unknown", async () => {
    const ns = freshNamespace();
    const plain = new PersistdClient({ url: URL_, namespace: ns });
    const v1 = await plain.put("misc", "e", "k", { n: 1 });
    const hooked = lostAnswer(() => true);
    const client = new PersistdClient({ url: URL_, namespace: ns, fetch: hooked.fetch, ...fast });
    await assert.rejects(client.put("misc", "e", "k", { n: 2 }, { ifMatch: v1 }), PersistdUnavailableError);
    assert.equal(hooked.calls.length, 1, "a conditional PUT was repeated after an ambiguous failure");
    assert.equal((await raw(ns, "misc", "e", "k")).etag, '"2"');
  });

  it("an If-None-Match PUT answered 503 is not repeated", async () => {
    const hooked = hookedFetch(() => new Response("{}", { status: 503, headers: { "Retry-After": "0" } }));
    const client = new PersistdClient({ url: URL_, namespace: freshNamespace(), fetch: hooked.fetch, ...fast });
    await assert.rejects(client.put("misc", "e", "k", 1, { ifNoneMatch: true }), PersistdUnavailableError);
    assert.equal(hooked.calls.length, 1);
  });

  it("a conditional PUT whose connection was refused is repeated", async () => {
    const ns = freshNamespace();
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    const hooked = hookedFetch((call, n) => {
      if (n === 1) throw new TypeError("fetch failed", { cause: refused });
      return undefined;
    });
    const client = new PersistdClient({ url: URL_, namespace: ns, fetch: hooked.fetch, ...fast });
    assert.equal(await client.put("misc", "e", "k", 1, { ifNoneMatch: true }), 1);
    assert.equal(hooked.calls.length, 2);
  });

  it("a plain PUT whose answer was lost is still repeated", async () => {
    const ns = freshNamespace();
    const hooked = lostAnswer((n) => n === 1);
    const client = new PersistdClient({ url: URL_, namespace: ns, fetch: hooked.fetch, ...fast });
    assert.equal(await client.put("misc", "e", "k", { n: 1 }), 2);
    assert.equal(hooked.calls.length, 2);
  });

  it("a Risk write whose conditional PUT lost its answer re-reads and completes", async () => {
    const ns = freshNamespace();
    const hooked = lostAnswer((n) => n === 2); // GET, then the PUT whose answer is lost
    const A = createAdapters({ url: URL_, namespace: ns, fetch: hooked.fetch, ...fast });
    const r = new A.Risk("r", "e");
    await r.writePositionData([["s_e_BTC", { position: "long" }]], new Date());
    assert.deepEqual((await raw(ns, "risk", "r_e", "positions")).body, [["s_e_BTC", { position: "long" }]]);
    assert.deepEqual(hooked.calls.map((c) => c.method), ["GET", "PUT", "GET", "PUT"]);
  });
});

describe("the domain table is typed by the contracts", () => {
  it("a misspelt method, a wrong signature or a missing state fails tsc --strict (test/types/table.ts)", () => {
    const tsc = join(PACKAGE, "node_modules", "typescript", "bin", "tsc");
    const res = spawnSync(process.execPath, [tsc, "-p", join(PACKAGE, "test", "types", "tsconfig.json")], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stdout + res.stderr);
  });

  it("no module of src/ imports itself back through others (adapters.ts and kinds.ts were a cycle)", () => {
    const src = join(PACKAGE, "src");
    const imports = {};
    for (const file of readdirSync(src).filter((f) => f.endsWith(".ts"))) {
      const text = readFileSync(join(src, file), "utf8");
      imports[file] = [...text.matchAll(/^(?:import|export)[^;]*?from "\.\/([\w-]+)\.js";/gms)].map((m) => `${m[1]}.ts`);
    }
    assert.ok(imports["adapters.ts"].includes("kinds.ts"));
    const cycle = (start) => {
      const seen = new Set();
      const walk = (file) => (imports[file] ?? []).some((next) => next === start || (!seen.has(next) && (seen.add(next), walk(next))));
      return walk(start);
    };
    assert.deepEqual(Object.keys(imports).filter(cycle), []);
  });
});
