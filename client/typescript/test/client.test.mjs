// Client tests: retry policy, errors, the seed PersistBase, the dump mapping and the CJS build.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { createServer } from "node:http";
import { describe, it } from "node:test";

import {
  addressOf,
  addressOfDumpPath,
  createAdapters,
  createPersistBase,
  dumpPath,
  PersistBase,
  PersistdClient,
  PersistdError,
  PersistdUnavailableError,
} from "../dist/esm/core.js";
import { freshNamespace, raw, URL_ } from "./support.mjs";

const fast = { backoffBaseMs: 5, backoffMaxMs: 20 };

/** A fetch that answers the first `failures` calls itself (status or network error), then passes through. */
function flakyFetch(failures, answer) {
  const calls = [];
  const f = async (input, init) => {
    calls.push(init?.method ?? "GET");
    if (calls.length <= failures) return answer();
    return fetch(input, init);
  };
  return { fetch: f, calls };
}

describe("retries", () => {
  it("a write retried through 503 with Retry-After and 502/504 resolves only after the 2xx", async () => {
    const ns = freshNamespace();
    const statuses = [503, 502, 504];
    let i = 0;
    const flaky = flakyFetch(3, () => new Response("{}", { status: statuses[i++], headers: { "Retry-After": "0" } }));
    const client = new PersistdClient({ url: URL_, namespace: ns, fetch: flaky.fetch, ...fast });
    const version = await client.put("signal", "e", "k", null);
    assert.equal(version, 1);
    assert.equal(flaky.calls.length, 4);
    assert.equal((await raw(ns, "signal", "e", "k")).status, 200);
  });

  it("honours Retry-After", async () => {
    const flaky = flakyFetch(1, () => new Response("", { status: 503, headers: { "Retry-After": "1" } }));
    const client = new PersistdClient({ url: URL_, namespace: freshNamespace(), fetch: flaky.fetch, ...fast });
    const start = Date.now();
    await client.put("state", "e", "k", { a: 1 });
    assert.ok(Date.now() - start >= 950, "waited less than Retry-After");
  });

  it("network errors are retried, reads too", async () => {
    const ns = freshNamespace();
    const A = createAdapters({ url: URL_, namespace: ns });
    await new A.State("sig", "b").writeStateData({ id: "b", data: {}, when: 1 }, new Date());
    const flaky = flakyFetch(2, () => Promise.reject(new TypeError("fetch failed")));
    const B = createAdapters({ url: URL_, namespace: ns, fetch: flaky.fetch, ...fast });
    assert.deepEqual(await new B.State("sig", "b").readStateData(), { id: "b", data: {}, when: 1 });
    assert.equal(flaky.calls.length, 3);
  });

  it("gives up at the deadline with PersistdUnavailableError, never reporting success", async () => {
    // A port with nothing listening: connection refused on every attempt.
    const server = createServer();
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address();
    await new Promise((r) => server.close(r));
    const A = createAdapters({ url: `http://127.0.0.1:${port}`, namespace: "x", retryDeadlineMs: 300, ...fast });
    const start = Date.now();
    await assert.rejects(new A.Signal("BTCUSDT", "s", "e").writeSignalData(null), PersistdUnavailableError);
    assert.ok(Date.now() - start < 2000);
  });

  it("a timed-out attempt is retried", async () => {
    let n = 0;
    const server = createServer((req, res) => {
      n++;
      if (n === 1) return; // never answers: the attempt times out
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end('{"version":7}');
      });
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    try {
      const client = new PersistdClient({ url: `http://127.0.0.1:${server.address().port}`, namespace: "x", requestTimeoutMs: 200, ...fast });
      assert.equal(await client.put("signal", "e", "k", null), 7);
      assert.equal(n, 2);
      const failing = new PersistdClient({
        url: `http://127.0.0.1:${server.address().port}`,
        namespace: "x",
        requestTimeoutMs: 50,
        retryDeadlineMs: 120,
        ...fast,
      });
      n = 0; // every attempt of this client goes unanswered
      server.removeAllListeners("request");
      server.on("request", () => {});
      const err = await failing.put("signal", "e", "k", null).catch((e) => e);
      assert.ok(err instanceof PersistdUnavailableError, String(err));
      assert.match(err.message, /TimeoutError/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("an answer cut off mid-body is retried, never taken as written", async () => {
    let n = 0;
    const server = createServer((req, res) => {
      n++;
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "13" });
        if (n === 1) {
          res.write('{"vers');
          res.socket.destroy(); // the connection drops after half of the answer
          return;
        }
        res.end('{"version":8}');
      });
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    try {
      const client = new PersistdClient({ url: `http://127.0.0.1:${server.address().port}`, namespace: "x", ...fast });
      assert.equal(await client.put("signal", "e", "k", null), 8);
      assert.equal(n, 2);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("sequential calls share one kept-alive connection", async () => {
    const server = createServer();
    let connections = 0;
    server.on("connection", () => connections++);
    server.on("request", (req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end('{"version":1}');
      });
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    try {
      const local = new PersistdClient({ url: `http://127.0.0.1:${server.address().port}`, namespace: "x" });
      for (let i = 0; i < 5; i++) assert.equal(await local.put("signal", "e", `k${i}`, null), 1);
      assert.equal(connections, 1);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("4xx answers are not retried and carry the problem code", async () => {
    const counting = flakyFetch(0, null);
    const client = new PersistdClient({ url: URL_, namespace: freshNamespace(), fetch: counting.fetch, ...fast });
    const err = await client.put("signal", "e", "k", { not: "a signal" }).catch((e) => e);
    assert.ok(err instanceof PersistdError);
    assert.equal(err.status, 422);
    assert.equal(err.code, "invalid_value");
    assert.equal(counting.calls.length, 1);
  });

  it("sends the token as a bearer header", async () => {
    const seen = [];
    const f = async (input, init) => {
      seen.push(init.headers.Authorization);
      return fetch(input, init);
    };
    const client = new PersistdClient({ url: URL_, namespace: freshNamespace(), token: "s3cret", fetch: f });
    await client.head("signal", "e", "k");
    assert.deepEqual(seen, ["Bearer s3cret"]);
  });

  it("options default from PERSISTD_URL, PERSISTD_TOKEN and PERSISTD_NAMESPACE", () => {
    const saved = { ...process.env };
    try {
      process.env.PERSISTD_URL = "http://example.invalid:1/";
      process.env.PERSISTD_TOKEN = "tok";
      process.env.PERSISTD_NAMESPACE = "bot-7";
      const client = new PersistdClient();
      assert.equal(client.options.url, "http://example.invalid:1");
      assert.equal(client.options.token, "tok");
      assert.equal(client.namespace, "bot-7");
    } finally {
      process.env = saved;
    }
    assert.throws(() => new PersistdClient({ namespace: "Bad Name" }), /namespace/);
    assert.throws(() => new PersistdClient({ token: "pd_1_abc\ndef" }), /token/);
  });
});

describe("PersistBase (the seed's IPersistBase)", () => {
  it("domain is the last folder of baseDir; read/has/write/keys; readValue throws when missing", async () => {
    const ns = freshNamespace();
    const Base = createPersistBase({ url: URL_, namespace: ns });
    const base = new Base("BTCUSDT_s_e", "./dump/data/signal/");
    assert.equal(base.domain, "signal");
    await base.waitForInit(true);
    await base.waitForInit(false);
    assert.equal(await base.hasValue("BTCUSDT"), false);
    await assert.rejects(base.readValue("BTCUSDT"), /Entity BTCUSDT_s_e:BTCUSDT not found/);
    const row = { id: "x", position: "short", priceOpen: 1, priceTakeProfit: 0.5, priceStopLoss: 2 };
    await base.writeValue("BTCUSDT", row);
    await base.writeValue("ETHUSDT", null);
    assert.equal(await base.hasValue("BTCUSDT"), true);
    assert.deepEqual(await base.readValue("BTCUSDT"), row);
    assert.equal(await base.readValue("ETHUSDT"), null);
    const keys = [];
    for await (const k of base.keys()) keys.push(k);
    assert.deepEqual(keys, ["BTCUSDT", "ETHUSDT"]);
    // The same records as the Signal adapter's.
    const A = createAdapters({ url: URL_, namespace: ns });
    assert.deepEqual(await new A.Signal("BTCUSDT", "s", "e").readSignalData(), { ...row, minuteEstimatedTime: Infinity });
  });

  it("memory, state and session baseDirs map like the adapters", () => {
    assert.deepEqual(
      { domain: new PersistBase("notes", "./dump/memory/sig-1/").domain, entity: new PersistBase("notes", "./dump/memory/sig-1/").entity },
      { domain: "memory", entity: "sig-1/notes" },
    );
    const session = new PersistBase("f1", "./dump/session/s/e/");
    assert.deepEqual([session.domain, session.entity], ["session", "s/e/f1"]);
    const state = new PersistBase("trail", "./dump/state/sig-1/");
    assert.deepEqual([state.domain, state.entity], ["state", "sig-1/trail"]);
  });

  it("PersistBase.configure sets the settings of plain PersistBase instances", async () => {
    const ns = freshNamespace();
    PersistBase.configure({ url: URL_, namespace: ns });
    const base = new PersistBase("r_e", "./dump/data/risk");
    await base.writeValue("positions", []);
    assert.equal((await raw(ns, "risk", "r_e", "positions")).status, 200);
  });
});

describe("dump mapping", () => {
  it("every domain's address maps to its file path and back", () => {
    const cases = [
      [addressOf.signal("BTCUSDT", "s", "e"), "dump/data/signal/BTCUSDT_s_e/BTCUSDT.json"],
      [addressOf.risk("r", "e"), "dump/data/risk/r_e/positions.json"],
      [addressOf.schedule("BTCUSDT", "s", "e"), "dump/data/schedule/BTCUSDT_s_e/BTCUSDT.json"],
      [addressOf.strategy("BTCUSDT", "s", "e"), "dump/data/strategy/BTCUSDT_s_e/strategy.json"],
      [{ ...addressOf.partial("BTCUSDT", "s", "e"), key: "uuid" }, "dump/data/partial/BTCUSDT_s_e/uuid.json"],
      [{ ...addressOf.breakeven("BTCUSDT", "s", "e"), key: "uuid" }, "dump/data/breakeven/BTCUSDT_s_e/uuid.json"],
      [{ ...addressOf.candle("BTCUSDT", "1m", "e"), key: "1704066900000" }, "dump/data/candle/e/BTCUSDT/1m/1704066900000.json"],
      [{ ...addressOf.storage(false), key: "uuid" }, "dump/data/storage/live/uuid.json"],
      [{ ...addressOf.notification(true), key: "uuid" }, "dump/data/notification/backtest/uuid.json"],
      [{ ...addressOf.log(), key: "uuid" }, "dump/data/log/log/uuid.json"],
      [{ ...addressOf.measure("omni-cache_1m_0"), key: "BTCUSDT_1" }, "dump/data/measure/omni-cache_1m_0/BTCUSDT_1.json"],
      [{ ...addressOf.interval("omni-interval_1m_0"), key: "BTCUSDT_1" }, "dump/data/interval/omni-interval_1m_0/BTCUSDT_1.json"],
      [{ ...addressOf.memory("sig", "bucket"), key: "m1" }, "dump/memory/sig/bucket/m1.json"],
      [addressOf.recent("BTCUSDT", "s", "e", "", false), "dump/data/recent/BTCUSDT_s_e_live/BTCUSDT.json"],
      [addressOf.recent("BTCUSDT", "s", "e", "f", true), "dump/data/recent/BTCUSDT_s_e_f_backtest/BTCUSDT.json"],
      [addressOf.state("sig", "bucket"), "dump/state/sig/bucket/bucket.json"],
      [addressOf.session("s", "e", "", "BTCUSDT", false), "dump/session/s/e/BTCUSDT_live.json"],
      [addressOf.session("s", "e", "f", "BTCUSDT", true), "dump/session/s/e/f/BTCUSDT_backtest.json"],
      [addressOf.dictionary("sig", "prefs"), "dump/dictionary/sig/prefs.json"],
    ];
    for (const [address, path] of cases) {
      assert.equal(dumpPath(address), path);
      assert.deepEqual(addressOfDumpPath(path), address);
    }
    assert.equal(addressOfDumpPath("dump/data/signal/x/.tmp-ab12-BTCUSDT.json"), undefined);
  });
});

describe("CommonJS build", () => {
  it("require() loads the same API", () => {
    const require = createRequire(import.meta.url);
    const cjs = require("../dist/cjs/core.js");
    assert.equal(typeof cjs.createAdapters, "function");
    assert.equal(typeof cjs.PersistBase, "function");
    assert.deepEqual(Object.keys(cjs.createAdapters({ url: URL_ })).length, 17);
  });
});
