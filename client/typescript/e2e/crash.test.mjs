// E2E: a real backtest-kit live bot over persistd survives SIGKILL; namespaces isolate bots;
// bots sharing a risk profile keep each other's positions.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";

import { MIN, pastMinute, startBot } from "./support.mjs";

const URL_ = process.env.PERSISTD_URL;
const ns = (p) => `${p}-${randomBytes(5).toString("hex")}`;

async function record(namespace, domain, entity, key) {
  const res = await fetch(`${URL_}/v1/${namespace}/${domain}/${encodeURIComponent(entity)}/records/${encodeURIComponent(key)}`);
  return res.status === 200 ? await res.json() : undefined;
}

describe("crash recovery", () => {
  it("a position opened through the adapter survives SIGKILL and closes at take-profit in a fresh process", async () => {
    const namespace = ns("crash");
    const when = pastMinute(60);
    const common = { PERSISTD_URL: URL_, PERSISTD_NAMESPACE: namespace, BOT_SWITCH: String(when + 2 * MIN), BOT_EXTRAS: "1" };

    const a = startBot({ ...common, BOT_PHASE: "open", BOT_WHEN: String(when) });
    const opened = await a.waitFor("tick");
    assert.equal(opened.action, "opened", a.stderr);
    assert.equal(opened.priceOpen, 100);
    await a.waitFor("holding");
    const { signal } = await a.kill("SIGKILL");
    assert.equal(signal, "SIGKILL");

    // What the killed process left in the service: the open position, its risk slot, candles.
    const stored = await record(namespace, "signal", "BTCUSDT_crash-test_offline", "BTCUSDT");
    assert.equal(stored?.id, opened.id);
    const risk = await record(namespace, "risk", "r1_offline", "positions");
    assert.deepEqual(risk.map(([k]) => k), ["crash-test_offline_BTCUSDT"]);

    // A bot in another namespace sees none of it.
    const other = startBot({ ...common, PERSISTD_NAMESPACE: ns("other"), BOT_PHASE: "restore", BOT_WHEN: String(when + 10 * MIN) });
    const idle = await other.waitFor("tick");
    assert.equal(idle.action, "idle", "a bot in another namespace restored a position");
    assert.equal((await other.exited).code, 0);

    const b = startBot({ ...common, BOT_PHASE: "restore", BOT_WHEN: String(when + 10 * MIN) });
    const closed = await b.waitFor("tick");
    assert.equal(closed.action, "closed", `${JSON.stringify(b.markers)} ${b.stderr}`);
    assert.equal(closed.closeReason, "take_profit");
    assert.equal(closed.id, opened.id);
    assert.deepEqual(await b.waitFor("signal-closed"), { marker: "signal-closed", id: opened.id, closeReason: "take_profit" });
    assert.equal((await b.exited).code, 0);

    assert.equal(await record(namespace, "signal", "BTCUSDT_crash-test_offline", "BTCUSDT"), null);
    assert.deepEqual(await record(namespace, "risk", "r1_offline", "positions"), []);
    assert.ok(!b.markers.some((m) => m.marker === "error"), JSON.stringify(b.markers));
    // Everything went to the service: no file adapter wrote a ./dump.
    for (const bot of [a, other, b]) assert.ok(!existsSync(join(bot.cwd, "dump")), `${bot.cwd}/dump exists`);
  });
});

describe("shared risk profile", () => {
  async function race(extra) {
    const namespace = ns("desk");
    const when = pastMinute(60);
    const common = {
      PERSISTD_URL: URL_,
      PERSISTD_NAMESPACE: namespace,
      BOT_SWITCH: String(when + 2 * MIN),
      BOT_PHASE: "open",
      BOT_WHEN: String(when),
      BOT_RISK: "desk",
      BOT_RISK_BARRIER: "1",
      ...extra,
    };
    const bots = [startBot({ ...common, BOT_STRATEGY: "bot-a" }), startBot({ ...common, BOT_STRATEGY: "bot-b" })];
    try {
      // Both loaded the (empty) shared profile into memory: the lost-update setup.
      for (const bot of bots) assert.deepEqual((await bot.waitFor("risk-read")).positions, []);
      for (const bot of bots) bot.proc.stdin.write("go\n");
      for (const bot of bots) assert.equal((await bot.waitFor("tick")).action, "opened", bot.stderr);
      return (await record(namespace, "risk", "desk_offline", "positions")).map(([k]) => k).sort();
    } finally {
      await Promise.all(bots.map((bot) => bot.kill()));
    }
  }

  it("two bots that both read the risk profile before either writes keep both positions", async () => {
    assert.deepEqual(await race({}), ["bot-a_offline_BTCUSDT", "bot-b_offline_BTCUSDT"]);
  });

  it("control: with plain whole-document writes one bot's position is lost", async () => {
    assert.equal((await race({ BOT_RISK_NAIVE: "1" })).length, 1);
  });
});
