// Lease tests against the real service: the fence on writes, renewal, loss and release.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";

import { Lease, PersistdClient, PersistdFencedError, PersistdLeaseHeldError } from "../dist/esm/core.js";
import { countingFetch, freshNamespace, raw, URL_ } from "./support.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function leased(ns, lease = {}) {
  const lost = [];
  const l = new Lease({ url: URL_, namespace: ns }, { ttlMs: 300, onLost: (e) => lost.push(e), ...lease });
  const client = new PersistdClient({ url: URL_, namespace: ns, fence: l });
  return { lease: l, client, lost };
}

async function steal(ns, name = ns) {
  for (;;) {
    const res = await fetch(`${URL_}/v1/${ns}/leases/${name}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ holder: "thief", ttl_ms: 60_000 }),
    });
    if (res.status === 200) return (await res.json()).token;
    await sleep(50);
  }
}

describe("lease", () => {
  it("renews in the background, fences every write and keeps working past many TTLs", async () => {
    const ns = freshNamespace();
    // A TTL of 1 s renewed every third of it: a busy machine may delay a renewal by most of
    // two thirds of a second without losing the lease; the loop outlives it three times over.
    const { lease, client, lost } = leased(ns, { ttlMs: 1000 });
    assert.equal(await lease.acquire(), 1);
    for (let i = 0; i < 5; i++) {
      await client.put("misc", "e", "k", { i });
      await sleep(600);
    }
    assert.equal(lost.length, 0);
    assert.deepEqual((await raw(ns, "misc", "e", "k")).body, { i: 4 });
    await lease.release();
    const after = await (await fetch(`${URL_}/v1/${ns}/leases/${ns}`)).json();
    assert.equal(after.held, false);
  });

  it("writes elsewhere (another namespace) carry no fence", async () => {
    const ns = freshNamespace();
    const { lease, client } = leased(ns);
    await lease.acquire();
    await client.withNamespace(`${ns}-shared`).put("misc", "e", "k", 1);
    await lease.release();
  });

  it("a write answered fenced throws PersistdFencedError, every later write too, and onLost runs once", async () => {
    const ns = freshNamespace();
    const { lease, client, lost } = leased(ns, { ttlMs: 100 });
    await lease.acquire();
    await client.put("misc", "e", "k", "mine");
    // Paused: renewal stops, the lease runs out and someone else takes it.
    lease["stop"]();
    await steal(ns);
    await assert.rejects(client.put("misc", "e", "k", "stale"), (e) => e instanceof PersistdFencedError && e.code === "fenced");
    await assert.rejects(client.batchPut("misc", "e", [{ key: "k", value: 1 }]), PersistdFencedError);
    await assert.rejects(client.delete("misc", "e", "k"), PersistdFencedError);
    await sleep(20);
    assert.equal(lost.length, 1);
    assert.deepEqual((await raw(ns, "misc", "e", "k")).body, "mine");
    assert.equal(await client.get("misc", "e", "k").then((s) => s.value), "mine"); // reads still work
  });

  it("a refused renewal loses the lease", async () => {
    const ns = freshNamespace();
    const { lease, client, lost } = leased(ns, { ttlMs: 200 });
    await lease.acquire();
    lease["stop"]();
    await steal(ns);
    await lease["renew"]();
    await sleep(20);
    assert.equal(lost.length, 1);
    assert.equal(lost[0].code, "lease_lost");
    assert.ok(lease.lost);
    await assert.rejects(client.put("misc", "e", "k", 1), PersistdFencedError);
    assert.equal((await raw(ns, "misc", "e", "k")).status, 404);
  });

  it("a held lease is waited for up to waitMs, then fails naming the holder", async () => {
    const ns = freshNamespace();
    await steal(ns);
    const { lease, client } = leased(ns, { waitMs: 300 });
    const started = Date.now();
    await assert.rejects(lease.acquire(), (e) => e instanceof PersistdLeaseHeldError && e.holder === "thief" && /thief/.test(e.message));
    assert.ok(Date.now() - started >= 250);
    await assert.rejects(client.put("misc", "e", "k", 1), PersistdLeaseHeldError);
    assert.equal((await raw(ns, "misc", "e", "k")).status, 404);
  });

  it("by default a lost lease logs and exits the process with status 1", async () => {
    const ns = freshNamespace();
    const script = `
      import { Lease, PersistdClient } from "../dist/esm/core.js";
      const lease = new Lease({ url: ${JSON.stringify(URL_)}, namespace: "${ns}" }, { ttlMs: 100 });
      const client = new PersistdClient({ url: ${JSON.stringify(URL_)}, namespace: "${ns}", fence: lease });
      await lease.acquire();
      lease["stop"]();
      console.log("acquired");
      process.stdin.once("data", () => client.put("misc", "e", "k", 1).catch((e) => console.log(e.code)));
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: new URL(".", import.meta.url) });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    while (!out.includes("acquired")) await sleep(20);
    await steal(ns);
    child.stdin.write("go\n");
    assert.equal(await exited, 1, err);
    assert.match(out, /fenced/);
    assert.match(err, /no longer the owner/);
  });

  it("fifty leases of one process are renewed by one request per tick, and one lost among them calls only its onLost", async () => {
    const ns = freshNamespace();
    const counting = countingFetch();
    const ttlMs = 600;
    const bots = Array.from({ length: 50 }, (_, i) => {
      const lost = [];
      const options = { url: URL_, namespace: `${ns}-${i}`, fetch: counting.fetch };
      const lease = new Lease(options, { ttlMs, onLost: (e) => lost.push(e) });
      return { lease, lost, client: new PersistdClient({ ...options, fence: lease }) };
    });
    await Promise.all(bots.map((b) => b.lease.acquire()));
    const renewals = () => counting.calls.filter((c) => c.url.endsWith("/v1/_leases/renew") || (c.method === "PUT" && c.url.includes("/leases/")));
    const before = renewals().length;
    const started = Date.now();
    await sleep(4 * ttlMs); // four TTLs: about twelve ticks
    const ticks = renewals().length - before;
    const expected = (Date.now() - started) / (ttlMs / 3);
    assert.ok(ticks >= expected - 2 && ticks <= expected + 2, `${ticks} renewal requests for ${expected} ticks`);
    assert.ok(renewals().every((c) => c.method === "POST" && c.url.endsWith("/v1/_leases/renew")));
    await Promise.all(bots.map((b) => b.client.put("misc", "e", "k", 1))); // all still held
    // One is acquired anew under its holder's name (a new token): the next batch loses it.
    const taken = await fetch(`${URL_}/v1/${ns}-7/leases/${ns}-7`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ holder: bots[7].lease.holder, ttl_ms: 60_000 }),
    });
    assert.equal((await taken.json()).token, bots[7].lease.token + 1);
    await sleep(ttlMs);
    assert.equal(bots[7].lost.length, 1);
    assert.equal(bots[7].lost[0].code, "lease_lost");
    assert.ok(bots[7].lost[0] instanceof PersistdFencedError);
    await assert.rejects(bots[7].client.put("misc", "e", "k", 2), PersistdFencedError);
    await Promise.all(bots.filter((_, i) => i !== 7).map((b) => b.client.put("misc", "e", "k", 2)));
    assert.deepEqual(bots.map((b, i) => (b.lost.length ? i : -1)).filter((i) => i >= 0), [7]);
    await Promise.all(bots.map((b) => b.lease.release()));
  });

  it("bad options fail at construction", () => {
    assert.throws(() => new Lease({ url: URL_, namespace: "x" }, { ttlMs: 10 }), /ttlMs/);
    assert.throws(() => new Lease({ url: URL_, namespace: "x" }, { name: "Bad Name" }), /lease name/);
  });
});
