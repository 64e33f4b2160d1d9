// E2E bot: a real backtest-kit 19.5.0 live strategy with an offline exchange.
//
// Driven by `lib.strategyCoreService.tick(symbol, when, false, context)` with explicit `when`
// (contract §6.2.3), so it does not wait for wall-clock minutes. The exchange is a pure function
// of the candle timestamp: price 100 before BOT_SWITCH, 120 from it on. Every line on stdout is a
// JSON marker the test reads; there are no sleeps.
//
// Environment:
//   BOT_PERSIST     "persistd" (default): setup() registers all 16 adapters; "file": backtest-kit's
//                   default file adapters (./dump under the working directory)
//   BOT_PHASE       "open": tick at BOT_WHEN; a market long opens; then wait to be killed
//                   "restore": tick at BOT_WHEN; print what the tick did; exit
//   BOT_WHEN        the tick's time (ms, minute-aligned)
//   BOT_SWITCH      the first candle time priced 120 (ms)
//   BOT_STRATEGY    strategy name (default "crash-test"); BOT_RISK: risk profile (default "r1")
//   BOT_RISK_BARRIER=1  after the first risk read, print {"marker":"risk-read"} and wait for a
//                   line on stdin before returning it (the shared-risk test lines two bots up)
//   BOT_EXTRAS=1    also persist Storage, Recent, Notification and Log (opt-ins in backtest-kit)
//   BOT_OPT_IN=1    setup({ optIn: true }) makes the Storage, Notification and Log opt-ins itself
//   BOT_RISK_NAIVE=1  (control) write risk as a plain PUT, without the adapter's merge
//   BOT_LEASE_TTL   hold a lease (setup({ lease })) with this TTL in ms; print {"marker":"lease"}
//                   once acquired, or {"marker":"lease-error"} and exit 3 if it stays held
//   BOT_LEASE_WAIT  how long to wait for a live holder (ms, default 0)
//   BOT_ZOMBIE=1    after "holding", a "write" line on stdin makes the bot print
//                   {"marker":"pausing"}, stop itself (SIGSTOP) and, once continued, rewrite the
//                   signal row it holds in memory; a refused write prints {"marker":"write-refused"}.
//                   When the lease is lost it prints {"marker":"lost"} and exits 1 once that write
//                   has its answer (the renewal, sent just after it, may be refused first); the
//                   default onLost (log, exit 1 at once) is tested in test/lease.test.mjs
//   PERSISTD_URL, PERSISTD_NAMESPACE  the service and this bot's namespace

import { createInterface } from "node:readline";

import * as bk from "backtest-kit";

const env = process.env;
const phase = env.BOT_PHASE ?? "open";
const when = new Date(Number(env.BOT_WHEN));
const switchAt = Number(env.BOT_SWITCH);
const strategyName = env.BOT_STRATEGY ?? "crash-test";
const riskName = env.BOT_RISK ?? "r1";
const exchangeName = "offline";
const symbol = "BTCUSDT";
const MIN = 60_000;

const say = (marker, extra = {}) => process.stdout.write(JSON.stringify({ marker, ...extra }) + "\n");

const stdinLines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdinLines.once("line", resolve));
if (env.BOT_RISK_BARRIER !== "1" && env.BOT_ZOMBIE !== "1") stdinLines.close();

let adapters;
let zombieWrite = Promise.resolve();
if ((env.BOT_PERSIST ?? "persistd") === "persistd") {
  const { setup, ready } = await import("persistd-backtest-kit");
  const lease = env.BOT_LEASE_TTL
    ? { ttlMs: Number(env.BOT_LEASE_TTL), waitMs: Number(env.BOT_LEASE_WAIT ?? 0) }
    : undefined;
  if (lease && env.BOT_ZOMBIE === "1") {
    lease.onLost = (error) => {
      say("lost", { code: error.code });
      zombieWrite.finally(() => {
        console.error(`persistd: ${error.message}; this process is no longer the owner and stops`);
        process.exit(1);
      });
    };
  }
  adapters = setup({ url: env.PERSISTD_URL, namespace: env.PERSISTD_NAMESPACE, optIn: env.BOT_OPT_IN === "1", lease });
  if (lease) {
    try {
      const held = await ready();
      say("lease", { holder: held.holder, token: held.token });
    } catch (error) {
      say("lease-error", { name: error.name, holder: error.holder ?? null, message: error.message });
      process.exit(3);
    }
  }
  if (env.BOT_RISK_BARRIER === "1") {
    let first = true;
    class RiskWithBarrier extends adapters.Risk {
      async readPositionData(w) {
        const rows = await super.readPositionData(w);
        if (first) {
          first = false;
          say("risk-read", { positions: rows.map(([k]) => k) });
          await nextLine();
          stdinLines.close();
        }
        return rows;
      }
    }
    if (env.BOT_RISK_NAIVE === "1") {
      // Control for the shared-risk test: a plain whole-document PUT, as a file adapter does.
      const { PersistdClient } = await import("persistd-backtest-kit");
      const client = new PersistdClient({ url: env.PERSISTD_URL, namespace: env.PERSISTD_NAMESPACE });
      RiskWithBarrier.prototype.writePositionData = async function (rows) {
        await client.put("risk", this.entity, "positions", rows);
      };
    }
    bk.PersistRiskAdapter.usePersistRiskAdapter(RiskWithBarrier);
  }
}

if (env.BOT_EXTRAS === "1") {
  // Opt in to the persisted collections too: signal storage, recent signals, notifications, log.
  bk.Storage.enable();
  bk.Recent.enable();
  bk.NotificationLive.usePersist();
  bk.Notification.enable();
  bk.Log.usePersist();
}

const priceAt = (ts) => (ts < switchAt ? 100 : 120);

bk.addExchangeSchema({
  exchangeName,
  getCandles: async (_symbol, interval, since, limit) => {
    const step = { "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60 }[interval] * MIN;
    return Array.from({ length: limit }, (_, i) => {
      const timestamp = since.getTime() + i * step;
      const p = priceAt(timestamp);
      return { timestamp, open: p, high: p, low: p, close: p, volume: 1 };
    });
  },
  formatPrice: async (_s, price) => price.toFixed(2),
  formatQuantity: async (_s, q) => q.toFixed(6),
});

bk.addRiskSchema({ riskName, validations: [] });

bk.addStrategySchema({
  strategyName,
  interval: "1m",
  riskName,
  getSignal: async () =>
    phase === "open"
      ? { position: "long", priceTakeProfit: 110, priceStopLoss: 90, minuteEstimatedTime: 600, note: "e2e" }
      : null,
});

bk.listenError((error) => say("error", { message: String(error?.message ?? error) }));
bk.listenSignalLive((event) =>
  say(`signal-${event.action}`, { id: event.signal?.id ?? null, closeReason: event.closeReason ?? null }),
);

const context = { strategyName, exchangeName, frameName: "" };
// The method context (strategy, exchange, frame) is what Live.background sets up around its loop.
const result = await bk.MethodContextService.runInContext(
  () => bk.lib.strategyCoreService.tick(symbol, when, false, context),
  context,
);
say("tick", {
  action: result.action,
  id: result.signal?.id ?? null,
  closeReason: result.closeReason ?? null,
  priceOpen: result.signal?.priceOpen ?? null,
  currentPrice: result.currentPrice ?? null,
});

if (phase === "open") {
  // Stay alive with the position open until the test kills us (SIGKILL: no cleanup runs).
  say("holding");
  setInterval(() => {}, 1 << 30);
  if (env.BOT_ZOMBIE === "1") {
    // A paused copy waking up: it still believes the position is open and writes it again.
    const signal = new adapters.Signal(symbol, strategyName, exchangeName);
    const row = await signal.readSignalData();
    stdinLines.on("line", () => {
      // Paused between deciding to write and writing, the worst moment: when the test continues
      // it (SIGCONT), the write goes out before any timer (the lease renewal) gets to run.
      say("pausing");
      process.kill(process.pid, "SIGSTOP");
      zombieWrite = signal.writeSignalData(row).then(
        () => say("written"),
        (error) => say("write-refused", { name: error.name, code: error.code ?? null }),
      );
    });
    say("zombie-ready");
  }
} else {
  process.exit(0);
}
