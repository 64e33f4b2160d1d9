// History on PersistdClient: versions, history, point-in-time, changes, restore and watch.

import assert from "node:assert/strict";
import { connect, createServer } from "node:net";
import { describe, it } from "node:test";

import { PersistdClient, PersistdError } from "../dist/esm/core.js";
import { freshNamespace, URL_ } from "./support.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, check, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * A TCP relay to the service that a test can break: `cut()` drops every open connection,
 * `freeze()` leaves them open but silent (a connection lost without a FIN), `close()` refuses
 * new ones until `open()`, `mode = "drop"` accepts and drops them at once, and
 * `mode = "answer"` answers with `reply` itself. `accepted` counts the connections.
 */
async function relay(target) {
  const { hostname, port } = new URL(target);
  const live = new Set();
  const state = { accepted: 0, mode: "relay", reply: "" };
  const server = createServer((down) => {
    state.accepted++;
    if (state.mode === "drop") return void down.destroy();
    if (state.mode === "answer") return void down.end(state.reply, () => down.destroy());
    const up = connect(Number(port), hostname);
    const pair = { down, up, frozen: false };
    live.add(pair);
    down.on("data", (b) => pair.frozen || up.write(b));
    up.on("data", (b) => pair.frozen || down.write(b));
    const end = () => {
      live.delete(pair);
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) s.on("close", end).on("error", end);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const local = server.address().port;
  return Object.assign(state, {
    url: `http://127.0.0.1:${local}`,
    cut: () => live.forEach(({ down, up }) => (down.destroy(), up.destroy())),
    freeze: () => live.forEach((pair) => (pair.frozen = true)),
    close: () => new Promise((r) => (server.close(r), state.cut())),
    open: () => new Promise((r) => server.listen(local, "127.0.0.1", r)),
  });
}

describe("history", () => {
  it("reads versions, history pages, the past, the change feed, and restores", async () => {
    const client = new PersistdClient({ url: URL_, namespace: freshNamespace() });
    await client.put("misc", "e", "k", { n: 1 });
    const t1 = new Date();
    await new Promise((r) => setTimeout(r, 20));
    await client.put("misc", "e", "k", { n: 2 });
    assert.deepEqual(await client.getVersion("misc", "e", "k", 1), { value: { n: 1 }, version: 1 });
    assert.equal(await client.getVersion("misc", "e", "k", 7), undefined);
    const page = await client.history("misc", "e", "k", { values: true });
    assert.deepEqual(page.items.map((v) => [v.version, v.value]), [[2, { n: 2 }], [1, { n: 1 }]]);
    const past = await client.recordsAt("misc", "e", t1);
    assert.deepEqual(past.items.map((i) => i.value), [{ n: 1 }]);
    const feed = await client.changes();
    assert.deepEqual(feed.items.map((c) => c.version), [1, 2]);
    const plan = await client.restore(t1, { dryRun: true });
    assert.equal(plan.puts, 1);
    assert.equal((await client.restore(t1)).puts, 1);
    assert.deepEqual((await client.get("misc", "e", "k")).value, { n: 1 });
  });

  it("watches from a position and from now, each change once", async () => {
    const client = new PersistdClient({ url: URL_, namespace: freshNamespace() });
    await client.put("misc", "e", "a", 1);
    const first = (await client.changes()).items[0].seq;
    const stop = new AbortController();
    const seen = [];
    const done = (async () => {
      for await (const change of client.watch({ since: 0, signal: stop.signal })) {
        seen.push([change.key, change.version, change.seq]);
        if (seen.length === 3) break;
      }
    })();
    await client.put("misc", "e", "a", 2);
    await client.delete("misc", "e", "a");
    await done;
    stop.abort();
    assert.deepEqual(seen.map(([k, v]) => [k, v]), [["a", 1], ["a", 2], ["a", 3]]);
    assert.equal(seen[0][2], first);
  });

  it("survives dropped, silent and refused connections: every change once, in order, backing off", async () => {
    const namespace = freshNamespace();
    const writer = new PersistdClient({ url: URL_, namespace });
    const broken = await relay(URL_);
    const client = new PersistdClient({ url: broken.url, namespace, backoffBaseMs: 50, backoffMaxMs: 400 });
    const stop = new AbortController();
    const seen = [];
    const done = (async () => {
      for await (const change of client.watch({ since: 0, signal: stop.signal, idleTimeoutMs: 1000 })) {
        seen.push(change.seq);
      }
    })();
    let n = 0;
    const write = async (count) => {
      for (let i = 0; i < count; i++, n++) await writer.put("misc", "e", `k${n % 3}`, n);
    };
    try {
      await write(5);
      await until("the first changes", () => seen.length >= 5);
      broken.cut(); // the stream ends mid-way
      await write(5);
      await until("the changes after a cut", () => seen.length >= 10);
      broken.freeze(); // the stream goes silent: only the idle timeout finds out
      await write(5);
      await until("the changes after a silent drop", () => seen.length >= 15);
      await broken.close(); // refused, while writes go on
      await write(5);
      await sleep(500);
      await broken.open();
      await until("the changes after refusals", () => seen.length >= 20);
      // Connections dropped before any answer: retried, with a growing wait (not a busy loop).
      broken.mode = "drop";
      broken.cut();
      const before = broken.accepted;
      await write(5);
      await sleep(2_000);
      const attempts = broken.accepted - before;
      broken.mode = "relay";
      await until("the changes after dropped connections", () => seen.length >= 25);
      assert.ok(attempts >= 3 && attempts <= 30, `${attempts} connection attempts in 2 s`);
      const stopped = Date.now();
      stop.abort();
      await done;
      assert.ok(Date.now() - stopped < 1_000, "the watch ended when stopped");
    } finally {
      stop.abort();
      await broken.close();
    }
    const log = (await writer.changes({ since: 0, limit: 1000 })).items.map((c) => c.seq);
    assert.equal(log.length, 25);
    assert.deepEqual(seen, log);
  });

  it("waits out a 503 per Retry-After and throws on an answer that is not retried", async () => {
    const broken = await relay(URL_);
    const client = new PersistdClient({ url: broken.url, namespace: freshNamespace(), backoffBaseMs: 10, backoffMaxMs: 20 });
    const answer = (status, extra = "") =>
      `HTTP/1.1 ${status} X\r\nContent-Type: application/problem+json\r\n${extra}Content-Length: 33\r\n` +
      `Connection: close\r\n\r\n{"code":"x","detail":"from test"}`;
    broken.mode = "answer";
    broken.reply = answer(503, "Retry-After: 1\r\n");
    const stop = new AbortController();
    const watching = (async () => {
      for await (const _ of client.watch({ since: 0, signal: stop.signal })) assert.fail("no change expected");
    })();
    try {
      await sleep(1_500);
      // Without Retry-After the 10-20 ms backoff would have made dozens of attempts.
      assert.ok(broken.accepted >= 1 && broken.accepted <= 3, `${broken.accepted} attempts in 1.5 s`);
      broken.reply = answer(500);
      const error = await watching.then(() => undefined, (e) => e);
      assert.ok(error instanceof PersistdError, String(error));
      assert.equal(error.status, 500);
    } finally {
      stop.abort();
      await broken.close();
    }
  });
});
