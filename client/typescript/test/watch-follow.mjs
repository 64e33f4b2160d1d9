// A watcher process for the restart tests (tests/test_typescript.py): follows
// `client.watch()` and prints one JSON line per change; a line on stdin (or its end) stops it.
//
//   node test/watch-follow.mjs URL NAMESPACE [SINCE]
//
// Without SINCE the watch starts from now. Output lines: {"ready":true} once the watch is
// iterating, {"seq","key","op","version","value"} per change, {"ended":true} when the iterator
// ended after the stop, or {"error":...} (exit code 1) when it threw.

import { PersistdClient } from "../dist/esm/core.js";

const [url, namespace, since] = process.argv.slice(2);
const client = new PersistdClient({ url, namespace });
const stop = new AbortController();
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");

process.stdin.on("data", () => stop.abort());
process.stdin.on("end", () => stop.abort());

const options = { signal: stop.signal, ...(since === undefined ? {} : { since: Number(since) }) };
try {
  out({ ready: true });
  for await (const change of client.watch(options)) {
    out({ seq: change.seq, key: change.key, op: change.op, version: change.version, value: change.value });
  }
  out({ ended: true });
  process.exit(0);
} catch (error) {
  out({ error: String(error?.stack ?? error) });
  process.exit(1);
}
