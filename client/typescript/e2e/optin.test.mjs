// E2E: setup({ optIn: true }) makes backtest-kit 19.5.0's own opt-ins, so a live bot's
// notifications and signal storage rows land in persistd (read back over REST). Without it,
// backtest-kit keeps them in memory and nothing arrives.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";

import { MIN, pastMinute, startBot } from "./support.mjs";

const URL_ = process.env.PERSISTD_URL;

async function values(namespace, domain, entity) {
  const res = await fetch(`${URL_}/v1/${namespace}/${domain}/${entity}/records?values=true&limit=1000`);
  assert.equal(res.status, 200);
  return (await res.json()).items.map((item) => item.value);
}

/** Poll until `check` holds (the engine writes these after the tick's own writes), or give up. */
async function eventually(check, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result || Date.now() > deadline) return result;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function openPosition(extra) {
  const namespace = `optin-${randomBytes(5).toString("hex")}`;
  const when = pastMinute(60);
  const bot = startBot({
    PERSISTD_URL: URL_,
    PERSISTD_NAMESPACE: namespace,
    BOT_PHASE: "open",
    BOT_WHEN: String(when),
    BOT_SWITCH: String(when + 2 * MIN),
    BOT_STRATEGY: "optin",
    ...extra,
  });
  const opened = await bot.waitFor("tick");
  assert.equal(opened.action, "opened", bot.stderr);
  await bot.waitFor("holding");
  return { namespace, bot, opened };
}

describe("opt-ins", () => {
  it("setup({ optIn: true }): live notifications and storage rows reach persistd", async () => {
    const { namespace, bot, opened } = await openPosition({ BOT_OPT_IN: "1" });
    try {
      const stored = await eventually(async () => {
        const rows = await values(namespace, "storage", "live");
        return rows.find((row) => row.id === opened.id);
      });
      assert.ok(stored, "no storage row for the opened signal");
      assert.equal(stored.status, "opened");
      const notified = await eventually(async () => {
        const items = await values(namespace, "notification", "live");
        return items.find((n) => n.type === "signal.opened");
      });
      assert.ok(notified, "no signal.opened notification");
      assert.equal(notified.backtest, false);
    } finally {
      await bot.kill();
    }
  });

  it("without it, backtest-kit keeps storage and notifications to itself", async () => {
    const { namespace, bot } = await openPosition({});
    try {
      // The signal itself is persisted (no opt-in needed) ...
      const signal = await eventually(async () => (await values(namespace, "signal", "BTCUSDT_optin_offline")).length > 0);
      assert.ok(signal);
      // ... but storage and notifications never arrive.
      assert.deepEqual(await values(namespace, "storage", "live"), []);
      assert.deepEqual(await values(namespace, "notification", "live"), []);
    } finally {
      await bot.kill();
    }
  });
});
