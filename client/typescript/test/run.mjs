// Test runner: one real persistd for the whole run, then `node --test` over the test files.
//
// With PERSISTD_URL set, the tests use that service (the Python suite passes the one it
// started). Otherwise this starts one: `python -m uvicorn persistd.main:create_app --factory` from
// the repository root on a free port, over PERSISTD_DATABASE_URL if set, else over a scratch
// database created (and dropped afterwards) on PERSISTD_TEST_DATABASE_URL's server (default
// postgresql://postgres@127.0.0.1:5432). Arguments select test folders: `test`, `e2e` (default both).

import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const root = resolve(pkg, "..", "..");

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

function python() {
  if (process.env.PERSISTD_PYTHON) return process.env.PERSISTD_PYTHON;
  const venv = join(root, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

function pg(tool, serverUrl, args) {
  const u = new URL(serverUrl);
  const conn = ["-h", u.hostname || "127.0.0.1", "-p", u.port || "5432", "-U", decodeURIComponent(u.username || "postgres")];
  const env = { ...process.env, ...(u.password ? { PGPASSWORD: decodeURIComponent(u.password) } : {}) };
  const res = spawnSync(tool, [...conn, ...args], { env, encoding: "utf8" });
  if (res.status !== 0) throw new Error(`${tool} ${args.join(" ")} failed: ${res.stderr || res.error}`);
}

async function waitReady(url, proc, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`persistd exited with ${proc.exitCode}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error("persistd did not become ready in time");
}

async function startService() {
  let databaseUrl = process.env.PERSISTD_DATABASE_URL;
  let dropDatabase;
  if (!databaseUrl) {
    const server = process.env.PERSISTD_TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
    const name = `persistd_ts_${process.pid}_${Math.random().toString(16).slice(2, 8)}`;
    pg("createdb", server, [name]);
    databaseUrl = withDatabase(server, name);
    dropDatabase = () => pg("dropdb", server, ["--force", name]);
  }
  const env = { ...process.env, PERSISTD_DATABASE_URL: databaseUrl, PERSISTD_LOG_LEVEL: "warning" };
  const migrate = spawnSync(python(), ["-c", "import sys; from persistd.cli import main; sys.exit(main(['migrate']))"], {
    cwd: root,
    env,
    stdio: "inherit",
  });
  if (migrate.status !== 0) throw new Error("persistd migrate failed");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(
    python(),
    ["-m", "uvicorn", "persistd.main:create_app", "--factory", "--host", "127.0.0.1", "--port", String(port), "--log-level", "warning"],
    { cwd: root, env, stdio: ["ignore", "ignore", "inherit"] },
  );
  await waitReady(url, proc);
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
    }
    dropDatabase?.();
  };
  return { url, stop };
}

rmSync(join(pkg, "e2e", ".scratch"), { recursive: true, force: true }); // bot working directories

const folders = process.argv.slice(2).length ? process.argv.slice(2) : ["test", "e2e"];
const files = [];
for (const folder of folders) {
  for (const f of readdirSync(join(pkg, folder)).sort()) {
    if (f.endsWith(".test.mjs")) files.push(join(folder, f));
  }
}

let service;
if (process.env.PERSISTD_URL) {
  service = { url: process.env.PERSISTD_URL.replace(/\/+$/, ""), stop: async () => {} };
} else {
  service = await startService();
}
const started = Date.now();
const child = spawn(process.execPath, ["--test", "--test-reporter=spec", "--test-concurrency=1", ...files], {
  cwd: pkg,
  env: { ...process.env, PERSISTD_URL: service.url },
  stdio: "inherit",
});
const code = await new Promise((r) => child.once("exit", (c, sig) => r(c ?? (sig ? 1 : 0))));
await service.stop();
console.log(`persistd-backtest-kit tests finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(code);
