// History on PersistdClient: versions, history, point-in-time, changes, restore and watch.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { PersistdClient } from "../dist/esm/core.js";
import { freshNamespace, URL_ } from "./support.mjs";

describe("history", () => {
  it("reads versions, history pages, the past, the change feed, and restores", async () => {
    const client = new PersistdClient({ url: URL_, namespace: freshNamespace() });
    await client.put("misc", "e", "k", { n: 1 });
    const t1 = new Date();
    await new Promise((r) => setTimeout(r, 20));
    await client.put("misc", "e", "k", { n: 2 });
    assert.deepEqual(await client.getVersion("misc", "e", "k", 1), { value: { n: 1 }, version: 1 });
    assert.equal(await client.getVersion("misc", "e", "k", 7), undefined);
    const page = await client.history("misc", "e", "k", { values: true });
    assert.deepEqual(page.items.map((v) => [v.version, v.value]), [[2, { n: 2 }], [1, { n: 1 }]]);
    const past = await client.recordsAt("misc", "e", t1);
    assert.deepEqual(past.items.map((i) => i.value), [{ n: 1 }]);
    const feed = await client.changes();
    assert.deepEqual(feed.items.map((c) => c.version), [1, 2]);
    const plan = await client.restore(t1, { dryRun: true });
    assert.equal(plan.puts, 1);
    assert.equal((await client.restore(t1)).puts, 1);
    assert.deepEqual((await client.get("misc", "e", "k")).value, { n: 1 });
  });

  it("watches from a position and from now, each change once", async () => {
    const client = new PersistdClient({ url: URL_, namespace: freshNamespace() });
    await client.put("misc", "e", "a", 1);
    const first = (await client.changes()).items[0].seq;
    const stop = new AbortController();
    const seen = [];
    const done = (async () => {
      for await (const change of client.watch({ since: 0, signal: stop.signal })) {
        seen.push([change.key, change.version, change.seq]);
        if (seen.length === 3) break;
      }
    })();
    await client.put("misc", "e", "a", 2);
    await client.delete("misc", "e", "a");
    await done;
    stop.abort();
    assert.deepEqual(seen.map(([k, v]) => [k, v]), [["a", 1], ["a", 2], ["a", 3]]);
    assert.equal(seen[0][2], first);
  });
});
