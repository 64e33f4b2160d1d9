// Round trip, step 3: a bot using the adapter restores the imported position and closes it.
//
//   PERSISTD_URL=... node e2e/restore-check.mjs <namespace> <when> <switch>
//
// <when> and <switch> are the values make-dump.mjs printed. Runs bot.mjs (persistd adapters,
// restore phase) ten minutes after <when>, when the offline price is past take-profit, and
// prints one JSON line: {"action", "closeReason", "id", "restoredSignal", "markers"}. Exit code
// 0 when the restored position closed at take-profit, 1 otherwise.

import { MIN, startBot } from "./support.mjs";

const [namespace, whenArg, switchArg] = process.argv.slice(2);
if (!namespace || !whenArg || !switchArg) {
  console.error("usage: restore-check.mjs <namespace> <when> <switch>");
  process.exit(2);
}
const url = process.env.PERSISTD_URL;
const signalUrl = `${url}/v1/${namespace}/signal/${encodeURIComponent("BTCUSDT_crash-test_offline")}/records/BTCUSDT`;
const before = await fetch(signalUrl).then((r) => (r.ok ? r.json() : null));

const bot = startBot({
  PERSISTD_NAMESPACE: namespace,
  BOT_PHASE: "restore",
  BOT_WHEN: String(Number(whenArg) + 10 * MIN),
  BOT_SWITCH: switchArg,
});
const tick = await bot.waitFor("tick");
const { code } = await bot.exited;
const out = {
  action: tick.action,
  closeReason: tick.closeReason,
  id: tick.id,
  restoredSignal: before?.id ?? null,
  markers: bot.markers,
};
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(code === 0 && tick.action === "closed" && tick.closeReason === "take_profit" ? 0 : 1);
