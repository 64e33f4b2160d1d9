// Benchmark: backtest-kit's own PersistSignalAdapter.writeSignalData, the call a live bot makes on
// every new peak or fall of its open position, on backtest-kit's default file adapter, on
// persistd-backtest-kit (setup()) against a running persistd, and on a Signal adapter that
// writes straight to PostgreSQL (node-postgres, the alternative to running persistd).
//
//   node --preserve-symlinks e2e/bench.mjs --url <persistd url> --database-url <postgresql url>
//        [--adapter file|persistd|direct] [--scenario latency|processes] [--samples 2000]
//        [--seconds 5] [--processes 8]
//
// latency: one bot process, sequential writes: a warm-up, then --samples timed writes.
// processes: --processes bot processes (own symbol and strategy each) start together and write
//   sequentially for --seconds; the rate is their sum.
// Without --adapter or --scenario, every combination runs. Each result is one JSON line on
// stdout: {"name", "adapter", "scenario", "rate", "p50_ms", "p99_ms", "count", "errors"};
// diagnostics go to stderr. After each run the last row of every bot is read back
// outside the bot (the file itself, or the row through the REST API or SQL, whose version must
// count every write); a write that threw or did not land is an error. Each bot also reports
// the CPU time it spent while measured ("bot_cpu_ms", user + system).

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

// ---- the direct adapter: what a bot does without persistd ----

// The row persistd stores, at the same address (namespace, domain, entity, key), in the same
// table, by the same kind of statement: one upsert per write, committed before it returns.
const DIRECT_UPSERT = `INSERT INTO records AS r (namespace, domain, entity, key, value, version)
VALUES ($1, 'signal', $2, $3, $4::jsonb, 1)
ON CONFLICT (namespace, domain, entity, key) DO UPDATE
SET value = EXCLUDED.value, version = r.version + 1, updated_at = now()`;
const DIRECT_READ = "SELECT value, version FROM records WHERE namespace = $1 AND domain = 'signal' AND entity = $2 AND key = $3";

/** A backtest-kit Signal instance class over one node-postgres pool (one pool per process). */
function directSignalAdapter(pg, connectionString, namespace) {
  const pool = new pg.Pool({ connectionString, max: 4 });
  return class DirectSignal {
    constructor(symbol, strategyName, exchangeName) {
      this.entity = `${symbol}_${strategyName}_${exchangeName}`;
      this.key = symbol;
    }
    async waitForInit(initial) {
      if (initial) await pool.query("SELECT 1");
    }
    async readSignalData() {
      // Named statements are prepared once per connection, as asyncpg does in persistd.
      const res = await pool.query({ name: "signal-read", text: DIRECT_READ, values: [namespace, this.entity, this.key] });
      return res.rows.length ? res.rows[0].value : null;
    }
    async writeSignalData(row) {
      await pool.query({ name: "signal-write", text: DIRECT_UPSERT, values: [namespace, this.entity, this.key, JSON.stringify(row)] });
    }
  };
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
  } else if (job.adapter === "direct") {
    const { default: pg } = await import("pg");
    bk.PersistSignalAdapter.usePersistSignalAdapter(directSignalAdapter(pg, job.databaseUrl, job.namespace));
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
  const cpu = process.cpuUsage();
  const started = performance.now();
  const deadline = started + job.seconds * 1000;
  while (job.samples ? latencies.length + errors - warmupErrors < job.samples : performance.now() < deadline) {
    const ms = await write();
    if (ms !== undefined) latencies.push(ms);
  }
  const elapsed = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const cpuMs = (used.user + used.system) / 1000;
  process.send({ latencies, elapsed, written, errors, last, cpuMs }, () => process.exit(0));
}

// ---- the parent: start the bots, collect, verify ----

function runBot(job, cwd) {
  const child = fork(fileURLToPath(import.meta.url), ["--bot", JSON.stringify(job)], { cwd, stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const messages = [];
  const waiters = [];
  child.on("message", (m) => (waiters.length ? waiters.shift()(m) : messages.push(m)));
  // "close", not "exit": by then every message the bot sent has been delivered.
  const exited = new Promise((resolve) => child.once("close", resolve));
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
  if (job.adapter === "direct") {
    const { default: pg } = await import("pg");
    const client = new pg.Client({ connectionString: job.databaseUrl });
    await client.connect();
    try {
      const res = await client.query(DIRECT_READ, [job.namespace, entity, job.symbol]);
      if (res.rows.length === 0) return report.written;
      const { value, version } = res.rows[0];
      return Math.abs(report.written - Number(version)) + (isDeepStrictEqual(value, expected) ? 0 : 1);
    } finally {
      await client.end();
    }
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
    databaseUrl: opts.databaseUrl,
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
      bot_cpu_ms: reports.reduce((sum, r) => sum + r.cpuMs, 0),
    };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

const { values: args } = parseArgs({
  options: {
    bot: { type: "string" },
    url: { type: "string", default: process.env.PERSISTD_URL },
    "database-url": { type: "string", default: process.env.PERSISTD_BENCH_DATABASE_URL },
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
  const adapters = args.adapter ? [args.adapter] : ["file", "persistd", "direct"];
  const scenarios = args.scenario ? [args.scenario] : ["latency", "processes"];
  if (adapters.includes("persistd") && !args.url) throw new Error("--url (or PERSISTD_URL) is required for persistd");
  if (adapters.includes("direct") && !args["database-url"]) throw new Error("--database-url is required for direct");
  const opts = {
    url: args.url?.replace(/\/+$/, ""),
    databaseUrl: args["database-url"],
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
