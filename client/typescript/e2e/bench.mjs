// Benchmark: backtest-kit's own PersistSignalAdapter.writeSignalData, the call a live bot makes on
// every new peak or fall of its open position, on backtest-kit's default file adapter and on
// persistd-backtest-kit (setup()) against a running persistd.
//
//   node --preserve-symlinks e2e/bench.mjs --url <persistd url> [--adapter file|persistd]
//        [--scenario latency|processes] [--samples 2000] [--seconds 5] [--processes 8]
//
// latency: one bot process, sequential writes: a warm-up, then --samples timed writes.
// processes: --processes bot processes (own symbol and strategy each) start together and write
//   sequentially for --seconds; the rate is their sum.
// Without --adapter or --scenario, every combination runs. Each result is one JSON line on
// stdout: {"name", "adapter", "scenario", "rate", "p50_ms", "p99_ms", "count", "errors"};
// diagnostics go to stderr. After each run the last row of every bot is read back
// outside the bot (the file itself, or the REST API, whose version must count every write);
// a write that threw or did not land is an error.

import { fork } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual, parseArgs } from "node:util";

const SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "TRXUSDT"];
const EXCHANGE = "binance";

const log = (message) => process.stderr.write(`[bench.mjs] ${message}\n`);

/** A signal row as backtest-kit persists it for an open long (the 21 keys of a real one). */
function signalRow(symbol, strategyName) {
  const now = Date.now();
  const pnl = { pnlPercentage: 0, pnlCost: 0, priceClose: 100, priceOpen: 100, pnlEntries: 100 };
  return {
    position: "long",
    priceTakeProfit: 110,
    priceStopLoss: 90,
    minuteEstimatedTime: 600,
    note: "bench",
    id: randomUUID(),
    cost: 100,
    priceOpen: 100,
    multiplier: 1,
    isolated: true,
    symbol,
    exchangeName: EXCHANGE,
    strategyName,
    frameName: "",
    scheduledAt: now,
    pendingAt: now,
    timestamp: now,
    _isScheduled: false,
    _entry: [{ price: 100, cost: 100, timestamp: now }],
    _peak: { price: 100, timestamp: now, ...pnl },
    _fall: { price: 100, timestamp: now, ...pnl },
  };
}

/** The next tick in a trend: a new peak, so the engine rewrites the whole row. */
function nextPeak(row, i) {
  const price = 100 + i / 1000;
  const pnlPercentage = price - 100;
  row._peak = { ...row._peak, price, timestamp: row.timestamp + i * 60_000, pnlPercentage, pnlCost: pnlPercentage, priceClose: price };
}

function percentile(sorted, pct) {
  if (sorted.length === 0) return NaN;
  const pos = ((sorted.length - 1) * pct) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// ---- one bot process (forked by the parent; the file adapter writes ./dump under its cwd) ----

async function bot(job) {
  const bk = await import("backtest-kit");
  if (job.adapter === "persistd") {
    const { setup } = await import("persistd-backtest-kit");
    // The package's own transport, as a bot runs it (no fetch option).
    const adapters = setup({ url: job.url, namespace: job.namespace, domains: ["Signal"] });
    if (bk.PersistSignalAdapter.PersistSignalInstanceCtor !== adapters.Signal) {
      throw new Error("setup() registered with another copy of backtest-kit (run node with --preserve-symlinks)");
    }
  }
  const { symbol, strategyName } = job;
  const row = signalRow(symbol, strategyName);
  let written = 0;
  let errors = 0;
  let last = null;
  let i = 0;
  const write = async () => {
    nextPeak(row, ++i);
    const started = performance.now();
    try {
      await bk.PersistSignalAdapter.writeSignalData(row, symbol, strategyName, EXCHANGE);
    } catch (error) {
      errors += 1;
      if (errors <= 3) log(`${symbol}: writeSignalData failed: ${error?.message ?? error}`);
      return undefined;
    }
    const ms = performance.now() - started;
    written += 1;
    last = structuredClone(row);
    return ms;
  };

  for (let w = 0; w < job.warmup; w++) await write();
  const warmupErrors = errors;
  process.send({ ready: true });
  await new Promise((resolve) => process.once("message", resolve));

  const latencies = [];
  const started = performance.now();
  const deadline = started + job.seconds * 1000;
  while (job.samples ? latencies.length + errors - warmupErrors < job.samples : performance.now() < deadline) {
    const ms = await write();
    if (ms !== undefined) latencies.push(ms);
  }
  const elapsed = (performance.now() - started) / 1000;
  process.send({ latencies, elapsed, written, errors, last }, () => process.exit(0));
}

// ---- the parent: start the bots, collect, verify ----

function runBot(job, cwd) {
  const child = fork(fileURLToPath(import.meta.url), ["--bot", JSON.stringify(job)], { cwd, stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const messages = [];
  const waiters = [];
  child.on("message", (m) => (waiters.length ? waiters.shift()(m) : messages.push(m)));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const next = () =>
    new Promise((resolve, reject) => {
      if (messages.length) return resolve(messages.shift());
      waiters.push(resolve);
      exited.then((code) => reject(new Error(`bot ${job.symbol} exited with ${code}`)));
    });
  return { child, next, exited };
}

/** The row a bot last wrote, read back outside it; the number of writes that did not land. */
async function lost(job, cwd, report) {
  if (report.last === null) return report.written;
  const entity = `${job.symbol}_${job.strategyName}_${EXCHANGE}`;
  const expected = JSON.parse(JSON.stringify(report.last));
  if (job.adapter === "file") {
    const file = join(cwd, "dump", "data", "signal", entity, `${job.symbol}.json`);
    const stored = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
    return stored === undefined ? report.written : isDeepStrictEqual(stored, expected) ? 0 : 1;
  }
  const token = process.env.PERSISTD_TOKEN;
  const res = await fetch(`${job.url}/v1/${job.namespace}/signal/${encodeURIComponent(entity)}/records/${job.symbol}`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  if (res.status !== 200) return report.written;
  const version = Number(res.headers.get("etag")?.replaceAll('"', ""));
  const stored = await res.json();
  if (version > report.written) log(`${job.symbol}: version ${version} > ${report.written} writes (a write applied twice)`);
  // Every write but none twice: the version counts the writes the service applied.
  return Math.abs(report.written - version) + (isDeepStrictEqual(stored, expected) ? 0 : 1);
}

async function measure(opts, adapter, scenario) {
  const processes = scenario === "latency" ? 1 : opts.processes;
  const cwd = mkdtempSync(join(tmpdir(), "persistd-bench-node-"));
  const run = randomBytes(4).toString("hex");
  const jobs = Array.from({ length: processes }, (_, i) => ({
    adapter,
    url: opts.url,
    namespace: `bench-node-${run}-${i}`,
    symbol: SYMBOLS[i % SYMBOLS.length],
    strategyName: `bench-${run}-${i}`,
    warmup: opts.warmup,
    samples: scenario === "latency" ? opts.samples : 0,
    seconds: opts.seconds,
  }));
  try {
    const bots = jobs.map((job) => runBot(job, cwd));
    await Promise.all(bots.map((b) => b.next())); // every bot warmed up
    for (const b of bots) b.child.send({ go: true });
    const reports = await Promise.all(bots.map((b) => b.next()));
    await Promise.all(bots.map((b) => b.exited));
    let errors = 0;
    for (const [i, report] of reports.entries()) {
      const missing = await lost(jobs[i], cwd, report);
      if (missing) log(`${jobs[i].symbol}: ${missing} writes did not land`);
      errors += report.errors + missing;
    }
    const latencies = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
    return {
      name: `${adapter} writeSignalData ${scenario === "latency" ? "sequential" : `${processes} processes`}`,
      adapter,
      scenario,
      processes,
      rate: reports.reduce((sum, r) => sum + r.latencies.length / r.elapsed, 0),
      p50_ms: percentile(latencies, 50),
      p99_ms: percentile(latencies, 99),
      count: latencies.length,
      errors,
    };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

const { values: args } = parseArgs({
  options: {
    bot: { type: "string" },
    url: { type: "string", default: process.env.PERSISTD_URL },
    adapter: { type: "string" },
    scenario: { type: "string" },
    samples: { type: "string", default: "2000" },
    warmup: { type: "string", default: "50" },
    seconds: { type: "string", default: "5" },
    processes: { type: "string", default: "8" },
  },
});

if (args.bot) {
  await bot(JSON.parse(args.bot));
} else {
  const adapters = args.adapter ? [args.adapter] : ["file", "persistd"];
  const scenarios = args.scenario ? [args.scenario] : ["latency", "processes"];
  if (adapters.includes("persistd") && !args.url) throw new Error("--url (or PERSISTD_URL) is required for persistd");
  const opts = {
    url: args.url?.replace(/\/+$/, ""),
    samples: Number(args.samples),
    warmup: Number(args.warmup),
    seconds: Number(args.seconds),
    processes: Number(args.processes),
  };
  for (const scenario of scenarios) {
    for (const adapter of adapters) {
      const result = await measure(opts, adapter, scenario);
      process.stdout.write(JSON.stringify(result) + "\n");
    }
  }
}
