// E2E support: run bot.mjs as a child process and wait on the JSON markers it prints.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const E2E = dirname(fileURLToPath(import.meta.url));
export const MIN = 60_000;

/** A fresh working directory under e2e/.scratch (the file adapters write ./dump there). */
export function scratchDir(prefix = "run") {
  mkdirSync(join(E2E, ".scratch"), { recursive: true });
  return mkdtempSync(join(E2E, ".scratch", `${prefix}-`));
}

/** A minute-aligned time far enough back that every candle the bot reads is closed. */
export function pastMinute(minutesAgo = 60) {
  return Math.floor(Date.now() / MIN) * MIN - minutesAgo * MIN;
}

/**
 * Start bot.mjs. `--preserve-symlinks` makes the linked persistd-backtest-kit resolve
 * backtest-kit from e2e/node_modules, the same copy the bot imports.
 */
export function startBot(env, cwd = scratchDir()) {
  const proc = spawn(process.execPath, ["--preserve-symlinks", join(E2E, "bot.mjs")], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const markers = [];
  const waiters = [];
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  createInterface({ input: proc.stdout }).on("line", (line) => {
    let marker;
    try {
      marker = JSON.parse(line);
    } catch {
      return; // library output, not ours
    }
    markers.push(marker);
    for (const w of [...waiters]) {
      if (w.match(marker)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(marker);
      }
    }
  });
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  const bot = {
    proc,
    cwd,
    markers,
    exited,
    get stderr() {
      return stderr;
    },
    /** Resolve with the first marker named `name` (already seen or still to come). */
    waitFor(name, timeoutMs = 60_000) {
      const match = (m) => m.marker === name;
      const seen = markers.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`bot: no ${name} marker in ${timeoutMs} ms; markers ${JSON.stringify(markers)}; stderr ${stderr}`)),
          timeoutMs,
        );
        const done = (m) => {
          clearTimeout(timer);
          resolve(m);
        };
        waiters.push({ match, resolve: done });
        exited.then(({ code, signal }) => {
          if (!markers.find(match)) {
            clearTimeout(timer);
            reject(new Error(`bot exited (${code ?? signal}) before ${name}; markers ${JSON.stringify(markers)}; stderr ${stderr}`));
          }
        });
      });
    },
    kill(signal = "SIGKILL") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  return bot;
}
