// E2E: leases with real backtest-kit live bots: a second copy is refused, a crashed bot's
// successor takes over after the TTL, and a paused copy (a zombie) cannot overwrite its successor.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";

import { MIN, pastMinute, startBot } from "./support.mjs";

const URL_ = process.env.PERSISTD_URL;
const TTL = 1500;
const SIGNAL = ["signal", "BTCUSDT_crash-test_offline", "BTCUSDT"];

const ns = (p) => `${p}-${randomBytes(5).toString("hex")}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function json(path) {
  const res = await fetch(`${URL_}${path}`);
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return res.json();
}

async function record(namespace, domain, entity, key) {
  const res = await fetch(`${URL_}/v1/${namespace}/${domain}/${encodeURIComponent(entity)}/records/${encodeURIComponent(key)}`);
  return res.status === 200 ? await res.json() : undefined;
}

/** Every record of a namespace with its version: what a reader of the service sees. */
async function snapshot(namespace) {
  const out = {};
  for (const { name: domain } of (await json(`/v1/${namespace}`)).items) {
    for (const { name: entity } of (await json(`/v1/${namespace}/${domain}`)).items) {
      const page = await json(`/v1/${namespace}/${domain}/${encodeURIComponent(entity)}/records?values=true&limit=1000`);
      for (const item of page.items) out[`${domain}/${entity}/${item.key}`] = [item.version, item.value];
    }
  }
  return out;
}

function common(namespace, when) {
  return {
    PERSISTD_URL: URL_,
    PERSISTD_NAMESPACE: namespace,
    BOT_SWITCH: String(when + 2 * MIN),
    BOT_LEASE_TTL: String(TTL),
  };
}

describe("leases", () => {
  it("a second copy of a running bot waits, then fails naming the holder, and stores nothing", async () => {
    const namespace = ns("second");
    const when = pastMinute(60);
    const a = startBot({ ...common(namespace, when), BOT_PHASE: "open", BOT_WHEN: String(when) });
    try {
      const held = await a.waitFor("lease");
      assert.equal((await a.waitFor("tick")).action, "opened", a.stderr);
      await a.waitFor("holding");
      const before = await snapshot(namespace);

      const started = Date.now();
      const b = startBot({ ...common(namespace, when), BOT_PHASE: "restore", BOT_WHEN: String(when + 10 * MIN), BOT_LEASE_WAIT: String(2 * TTL) });
      const refused = await b.waitFor("lease-error");
      assert.equal((await b.exited).code, 3);
      assert.ok(Date.now() - started >= 2 * TTL, "B gave up before waitMs");
      // A renews in the background, so it is still the holder after more than one TTL.
      assert.equal(refused.holder, held.holder);
      assert.ok(refused.message.includes(held.holder), refused.message);
      assert.ok(!b.markers.some((m) => m.marker === "tick"), "B ran its bot without the lease");
      assert.deepEqual(await snapshot(namespace), before);
      const lease = await json(`/v1/${namespace}/leases/${namespace}`);
      assert.deepEqual([lease.holder, lease.token, lease.held], [held.holder, held.token, true]);
    } finally {
      await a.kill();
    }
  });

  it("after a crash, the successor takes over once the TTL ran out, restores the position and closes it", async () => {
    const namespace = ns("takeover");
    const when = pastMinute(60);
    const a = startBot({ ...common(namespace, when), BOT_PHASE: "open", BOT_WHEN: String(when) });
    const heldA = await a.waitFor("lease");
    const opened = await a.waitFor("tick");
    assert.equal(opened.action, "opened", a.stderr);
    await a.waitFor("holding");
    await a.kill("SIGKILL");

    const started = Date.now();
    const b = startBot({ ...common(namespace, when), BOT_PHASE: "restore", BOT_WHEN: String(when + 10 * MIN), BOT_LEASE_WAIT: String(10 * TTL) });
    const heldB = await b.waitFor("lease");
    assert.ok(heldB.token > heldA.token);
    assert.notEqual(heldB.holder, heldA.holder);
    const closed = await b.waitFor("tick");
    assert.deepEqual([closed.action, closed.closeReason, closed.id], ["closed", "take_profit", opened.id], b.stderr);
    assert.equal((await b.exited).code, 0);
    assert.ok(Date.now() - started < 10 * TTL);
    assert.equal(await record(namespace, ...SIGNAL), null);
    assert.ok(!b.markers.some((m) => m.marker === "error"), JSON.stringify(b.markers));
  });

  it("a paused bot that lost its lease has its next write refused as fenced and exits; every record is its successor's", async () => {
    const namespace = ns("zombie");
    const when = pastMinute(60);
    const a = startBot({ ...common(namespace, when), BOT_PHASE: "open", BOT_WHEN: String(when), BOT_ZOMBIE: "1" });
    try {
      const heldA = await a.waitFor("lease");
      const opened = await a.waitFor("tick");
      assert.equal(opened.action, "opened", a.stderr);
      await a.waitFor("zombie-ready");

      a.proc.stdin.write("write\n");
      await a.waitFor("pausing");
      await sleep(TTL + 300);
      const b = startBot({ ...common(namespace, when), BOT_PHASE: "restore", BOT_WHEN: String(when + 10 * MIN), BOT_LEASE_WAIT: String(5 * TTL) });
      const heldB = await b.waitFor("lease");
      assert.ok(heldB.token > heldA.token);
      const closed = await b.waitFor("tick");
      assert.deepEqual([closed.action, closed.closeReason], ["closed", "take_profit"], b.stderr);
      assert.equal((await b.exited).code, 0);
      const successors = await snapshot(namespace);
      assert.equal(await record(namespace, ...SIGNAL), null);

      // A wakes up believing the position is still open, and writes it.
      a.proc.kill("SIGCONT");
      const refused = await a.waitFor("write-refused");
      assert.deepEqual([refused.name, refused.code], ["PersistdFencedError", "fenced"], JSON.stringify(a.markers));
      const exited = await a.exited;
      assert.equal(exited.code, 1, a.stderr);
      assert.ok(["fenced", "lease_lost"].includes((await a.waitFor("lost")).code));
      assert.match(a.stderr, /no longer the owner/);
      assert.ok(!a.markers.some((m) => m.marker === "written"));

      assert.deepEqual(await snapshot(namespace), successors);
      assert.equal(await record(namespace, ...SIGNAL), null);
    } finally {
      a.proc.kill("SIGCONT");
      await a.kill();
    }
  });
});
