// install(): registration with a backtest-kit module (here a fake one with the real hook names),
// the 20.x Dictionary domain, and backtest-kit's opt-in calls.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DOMAIN_NAMES, install, OPTIONAL_DOMAIN_NAMES } from "../dist/esm/core.js";
import { freshNamespace, raw, URL_ } from "./support.mjs";

/** A module with backtest-kit's `Persist<X>Adapter.usePersist<X>Adapter` hooks and opt-in switches. */
function fakeKit({ dictionary }) {
  const registered = {};
  const calls = [];
  const kit = {};
  for (const name of DOMAIN_NAMES) {
    if (name === "Dictionary" && !dictionary) continue;
    kit[`Persist${name}Adapter`] = { [`usePersist${name}Adapter`]: (Ctor) => (registered[name] = Ctor) };
  }
  const switches = { Storage: ["enable"], NotificationLive: ["usePersist"], Notification: ["enable"], Log: ["usePersist"] };
  for (const [object, methods] of Object.entries(switches)) {
    kit[object] = Object.fromEntries(methods.map((m) => [m, () => calls.push(`${object}.${m}`)]));
  }
  return { kit, registered, calls };
}

describe("install() and backtest-kit 20.x's Dictionary", () => {
  it("registers a Dictionary adapter when backtest-kit has PersistDictionaryAdapter, and it keeps the documented interface", async () => {
    const namespace = freshNamespace();
    const { kit, registered } = fakeKit({ dictionary: true });
    const adapters = install(kit, { url: URL_, namespace });
    assert.equal(registered.Dictionary, adapters.Dictionary);
    // The documented instance: new (signalId, dictionaryName); waitForInit, read, write(data, when), dispose.
    const d = new registered.Dictionary("sig-1", "prefs");
    await d.waitForInit(true);
    assert.equal(await d.readDictionaryData(), null);
    const data = { id: "prefs", data: { risk: { value: 0.5, when: 1 } }, when: 1 };
    await d.writeDictionaryData(data, new Date(1));
    assert.deepEqual(await d.readDictionaryData(), data);
    const next = { id: "prefs", data: {}, when: 2 };
    await d.writeDictionaryData(next, new Date(2)); // every write replaces the whole snapshot
    assert.deepEqual(await new registered.Dictionary("sig-1", "prefs").readDictionaryData(), next);
    assert.equal(d.dispose(), undefined);
    // Stored where backtest-kit's file adapter keeps it: ./dump/dictionary/<signalId>/<dictionaryName>.json
    assert.deepEqual((await raw(namespace, "dictionary", "sig-1", "prefs")).body, next);
  });

  it("skips Dictionary silently on a backtest-kit without it (19.x), registering the other 16", () => {
    const { kit, registered } = fakeKit({ dictionary: false });
    install(kit, { url: URL_, namespace: freshNamespace() });
    assert.deepEqual(Object.keys(registered).sort(), DOMAIN_NAMES.filter((n) => !OPTIONAL_DOMAIN_NAMES.includes(n)).sort());
    assert.equal(registered.Dictionary, undefined);
  });
});

describe("install() opt-ins", () => {
  it("makes no opt-in call unless asked", () => {
    const { kit, calls } = fakeKit({ dictionary: false });
    install(kit, { url: URL_ });
    assert.deepEqual(calls, []);
  });

  it("optIn: true makes backtest-kit's calls for storage, notifications and log", () => {
    const { kit, calls } = fakeKit({ dictionary: false });
    install(kit, { url: URL_, optIn: true });
    assert.deepEqual(calls, ["Storage.enable", "NotificationLive.usePersist", "Notification.enable", "Log.usePersist"]);
  });

  it("optIn can name some of them", () => {
    const { kit, calls } = fakeKit({ dictionary: false });
    install(kit, { url: URL_, optIn: { notifications: true } });
    assert.deepEqual(calls, ["NotificationLive.usePersist", "Notification.enable"]);
  });
});
