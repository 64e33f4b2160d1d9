// Round trip, step 2 (reference importer): load a backtest-kit ./dump into a persistd namespace.
//
//   PERSISTD_URL=... node e2e/import-dump.mjs <dir containing dump/ or the dump itself> <namespace>
//
// Uses the package's documented mapping (README, "Mapping"): addressOfDumpPath turns
// dump/data/<domain>/<entity dirs>/<key>.json and dump/{memory,state,session,dictionary}/<entity dirs>/<key>.json
// into (domain, entity, key). `persistd import-dump` implements the same mapping in Python.

import { readFileSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";

import { addressOfDumpPath, PersistdClient } from "persistd-backtest-kit/core";

let root = resolve(process.argv[2] ?? ".");
if (basename(root) === "dump") root = dirname(root);
const namespace = process.argv[3] ?? process.env.PERSISTD_NAMESPACE ?? "default";
const client = new PersistdClient({ namespace });

const groups = new Map();
let skipped = 0;
const walk = (d) => {
  for (const name of readdirSync(d).sort()) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) {
      walk(p);
      continue;
    }
    const address = addressOfDumpPath(relative(root, p));
    if (!address) {
      skipped++;
      continue;
    }
    let value;
    try {
      value = JSON.parse(readFileSync(p, "utf8"));
    } catch {
      skipped++; // an unparsable file: backtest-kit itself deletes these at init
      continue;
    }
    const id = `${address.domain}\u0000${address.entity}`;
    if (!groups.has(id)) groups.set(id, { ...address, items: [] });
    groups.get(id).items.push({ key: address.key, value });
  }
};
walk(join(root, "dump"));

const counts = {};
for (const { domain, entity, items } of groups.values()) {
  await client.batchPut(domain, entity, items, "upsert"); // in batches within the service's limits
  counts[domain] = (counts[domain] ?? 0) + items.length;
}
process.stdout.write(JSON.stringify({ namespace, imported: counts, skipped }) + "\n");
