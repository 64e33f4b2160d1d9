// Round trip, step 1: a real bot on backtest-kit's own file adapters writes a ./dump.
//
//   node e2e/make-dump.mjs <dir>
//
// Runs bot.mjs (BOT_PERSIST=file, BOT_EXTRAS=1) in <dir> until its position is open and
// persisted, stops it with SIGKILL, and prints one JSON line:
//   {"dump": "<dir>/dump", "when": <ms>, "switch": <ms>, "signalId": "...", "files": [...]}
// Feed the dump to an importer (`persistd import-dump`, or e2e/import-dump.mjs), then run
// e2e/restore-check.mjs with the same when/switch.

import { mkdirSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

import { MIN, pastMinute, startBot } from "./support.mjs";

const dir = resolve(process.argv[2] ?? ".");
mkdirSync(dir, { recursive: true });
const when = pastMinute(60);
const switchAt = when + 2 * MIN;

const bot = startBot(
  { BOT_PERSIST: "file", BOT_EXTRAS: "1", BOT_PHASE: "open", BOT_WHEN: String(when), BOT_SWITCH: String(switchAt) },
  dir,
);
try {
  const tick = await bot.waitFor("tick");
  if (tick.action !== "opened") throw new Error(`the bot did not open a position: ${JSON.stringify(bot.markers)} ${bot.stderr}`);
  await bot.waitFor("holding");
  await bot.kill("SIGKILL");

  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(relative(dir, p));
    }
  };
  walk(join(dir, "dump"));
  process.stdout.write(JSON.stringify({ dump: join(dir, "dump"), when, switch: switchAt, signalId: tick.id, files }) + "\n");
} catch (error) {
  await bot.kill("SIGKILL");
  console.error(error);
  process.exit(1);
}
