// Contract tests: the 16 instance classes against a real persistd (contract §1.3, §2, §3, §7).

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createAdapters, DOMAINS } from "../dist/esm/core.js";
import { countingFetch, freshNamespace, raw, rawKeys, URL_ } from "./support.mjs";

const WHEN = new Date("2024-01-01T00:00:00Z");

function adapters(extra = {}) {
  const namespace = freshNamespace();
  return { namespace, A: createAdapters({ url: URL_, namespace, ...extra }) };
}

function signalRow(overrides = {}) {
  return {
    id: "sig-1",
    position: "long",
    priceOpen: 100,
    priceTakeProfit: 110,
    priceStopLoss: 90,
    minuteEstimatedTime: 60,
    cost: 100,
    multiplier: 1,
    isolated: true,
    symbol: "BTCUSDT",
    strategyName: "s",
    exchangeName: "e",
    frameName: "",
    scheduledAt: 1,
    pendingAt: 1,
    _isScheduled: false,
    timestamp: 1,
    ...overrides,
  };
}

describe("Signal, Schedule, Strategy", () => {
  it("Signal: absent reads null, writes whole documents, null clears, at the file layout's address", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Signal("BTCUSDT", "s", "e");
    await inst.waitForInit(true);
    assert.equal(await inst.readSignalData(), null);
    await inst.writeSignalData(signalRow());
    assert.deepEqual(await inst.readSignalData(), signalRow());
    const stored = await raw(namespace, "signal", "BTCUSDT_s_e", "BTCUSDT");
    assert.equal(stored.status, 200);
    assert.deepEqual(stored.body, signalRow());
    await inst.writeSignalData(null);
    assert.equal(await inst.readSignalData(), null);
    assert.equal((await raw(namespace, "signal", "BTCUSDT_s_e", "BTCUSDT")).body, null);
  });

  it("Signal: minuteEstimatedTime Infinity is stored as null and restored to Infinity", async () => {
    const { A } = adapters();
    const inst = new A.Signal("ETHUSDT", "s", "e");
    await inst.writeSignalData(signalRow({ minuteEstimatedTime: Infinity }));
    assert.equal((await inst.readSignalData()).minuteEstimatedTime, Infinity);
    // A fresh instance (a restarted process) restores it too.
    assert.equal((await new A.Signal("ETHUSDT", "s", "e").readSignalData()).minuteEstimatedTime, Infinity);
  });

  it("Signal: signalDefaults fills multiplier and isolated missing from old rows", async () => {
    const { A } = adapters({ signalDefaults: () => ({ multiplier: 3, isolated: false }) });
    const inst = new A.Signal("BTCUSDT", "s", "e");
    const { multiplier, isolated, ...old } = signalRow();
    await inst.writeSignalData(old);
    const back = await inst.readSignalData();
    assert.equal(back.multiplier, 3);
    assert.equal(back.isolated, false);
  });

  it("Schedule: same contract, its own domain", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Schedule("BTCUSDT", "s", "e");
    assert.equal(await inst.readScheduleData(), null);
    await inst.writeScheduleData(signalRow({ minuteEstimatedTime: null }));
    assert.equal((await inst.readScheduleData()).minuteEstimatedTime, Infinity);
    assert.equal((await raw(namespace, "schedule", "BTCUSDT_s_e", "BTCUSDT")).status, 200);
    await inst.writeScheduleData(null);
    assert.equal(await inst.readScheduleData(), null);
  });

  it("Strategy: key 'strategy', null is a value, Infinity restored in the six signal slots", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Strategy("BTCUSDT", "s", "e");
    assert.equal(await inst.readStrategyData(), null);
    const snapshot = {
      pendingSignalId: "sig-1",
      lastPendingId: null,
      createdSignal: null,
      commitQueue: [],
      closedSignal: signalRow({ minuteEstimatedTime: Infinity }),
      cancelledSignal: null,
      activatedSignal: null,
      takeProfitSignal: signalRow({ minuteEstimatedTime: Infinity }),
      stopLossSignal: null,
      retryOpenSignal: signalRow({ minuteEstimatedTime: Infinity }),
      retryOpenCount: 0,
      retryCloseCount: 0,
      isPaused: false,
    };
    await inst.writeStrategyData(snapshot);
    const back = await inst.readStrategyData();
    assert.equal(back.closedSignal.minuteEstimatedTime, Infinity);
    assert.equal(back.takeProfitSignal.minuteEstimatedTime, Infinity);
    assert.equal(back.retryOpenSignal.minuteEstimatedTime, Infinity);
    assert.equal((await raw(namespace, "strategy", "BTCUSDT_s_e", "strategy")).body.closedSignal.minuteEstimatedTime, null);
    await inst.writeStrategyData(null);
    assert.equal(await inst.readStrategyData(), null);
  });
});

describe("Risk", () => {
  const pos = (symbol, extra = {}) => [
    `s_e_${symbol}`,
    {
      strategyName: "s",
      exchangeName: "e",
      frameName: "",
      symbol,
      position: "long",
      priceOpen: 100,
      priceStopLoss: 90,
      priceTakeProfit: 110,
      minuteEstimatedTime: 60,
      openTimestamp: 1,
      ...extra,
    },
  ];

  it("absent reads [], writes whole arrays at risk/<risk>_<exchange>/positions, restores Infinity", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Risk("r", "e");
    await inst.waitForInit(true);
    assert.deepEqual(await inst.readPositionData(WHEN), []);
    await inst.writePositionData([pos("BTCUSDT", { minuteEstimatedTime: Infinity })], WHEN);
    const back = await inst.readPositionData(WHEN);
    assert.equal(back.length, 1);
    assert.equal(back[0][1].minuteEstimatedTime, Infinity);
    assert.equal((await raw(namespace, "risk", "r_e", "positions")).status, 200);
    await inst.writePositionData([], WHEN);
    assert.deepEqual(await inst.readPositionData(WHEN), []);
  });

  it("two bots sharing a risk profile keep each other's positions (read-merge-write with If-Match)", async () => {
    const namespace = freshNamespace();
    const botA = new (createAdapters({ url: URL_, namespace }).Risk)("shared", "e");
    const botB = new (createAdapters({ url: URL_, namespace }).Risk)("shared", "e");
    // Both start from the same (empty) state, as two processes reading at startup.
    assert.deepEqual(await botA.readPositionData(WHEN), []);
    assert.deepEqual(await botB.readPositionData(WHEN), []);
    await botA.writePositionData([pos("AAA")], WHEN);
    await botB.writePositionData([pos("BBB")], WHEN); // B's map never saw AAA
    let keys = (await raw(namespace, "risk", "shared_e", "positions")).body.map(([k]) => k).sort();
    assert.deepEqual(keys, ["s_e_AAA", "s_e_BBB"]);
    // A closes AAA: B's position stays.
    await botA.writePositionData([], WHEN);
    keys = (await raw(namespace, "risk", "shared_e", "positions")).body.map(([k]) => k);
    assert.deepEqual(keys, ["s_e_BBB"]);
    // Concurrent opens and closes from both bots lose nothing.
    const a = [], b = [];
    const ops = [];
    for (let i = 0; i < 10; i++) {
      a.push(pos(`A${i}`));
      b.push(pos(`B${i}`));
      ops.push(botA.writePositionData([...a], WHEN), botB.writePositionData([pos("BBB"), ...b], WHEN));
    }
    await Promise.all(ops);
    keys = (await raw(namespace, "risk", "shared_e", "positions")).body.map(([k]) => k).sort();
    const expected = ["s_e_BBB", ...a.map(([k]) => k), ...b.map(([k]) => k)].sort();
    assert.deepEqual(keys, expected);
  });
});

describe("Partial and Breakeven", () => {
  for (const [name, domain, read, write, value] of [
    ["Partial", "partial", "readPartialData", "writePartialData", { "sig-1": { profitLevels: [10, 20], lossLevels: [] } }],
    ["Breakeven", "breakeven", "readBreakevenData", "writeBreakevenData", { "sig-1": { reached: true } }],
  ]) {
    it(`${name}: keyed by signalId, absent reads {}, {} clears`, async () => {
      const { namespace, A } = adapters();
      const inst = new A[name]("BTCUSDT", "s", "e");
      await inst.waitForInit(true);
      assert.deepEqual(await inst[read]("sig-1", WHEN), {});
      await inst[write](value, "sig-1", WHEN);
      assert.deepEqual(await inst[read]("sig-1", WHEN), value);
      assert.deepEqual(await inst[read]("sig-2", WHEN), {});
      assert.deepEqual((await raw(namespace, domain, "BTCUSDT_s_e", "sig-1")).body, value);
      await inst[write]({}, "sig-1", WHEN);
      assert.deepEqual(await inst[read]("sig-1", WHEN), {});
    });
  }
});

describe("Candle", () => {
  const MIN = 60_000;
  const T0 = Date.UTC(2024, 0, 1);
  const candle = (ts, close = 100) => ({ timestamp: ts, open: close, high: close, low: close, close, volume: 1 });

  it("a window read is one request, exactly `limit` candles ascending, null on any gap", async () => {
    const { namespace, A } = adapters();
    const writer = new A.Candle("BTCUSDT", "1m", "binance");
    await writer.writeCandlesData([0, 1, 2, 3, 4].map((i) => candle(T0 + i * MIN, 100 + i)));
    assert.deepEqual(await rawKeys(namespace, "candle", "binance/BTCUSDT/1m"), [0, 1, 2, 3, 4].map((i) => String(T0 + i * MIN)));
    const counting = countingFetch();
    const reader = new (createAdapters({ url: URL_, namespace, fetch: counting.fetch }).Candle)("BTCUSDT", "1m", "binance");
    const window = await reader.readCandlesData(5, T0, T0 + 5 * MIN);
    assert.equal(counting.calls.length, 1);
    assert.equal(window.length, 5);
    assert.deepEqual(window.map((c) => c.close), [100, 101, 102, 103, 104]);
    assert.deepEqual(await reader.readCandlesData(3, T0 + 2 * MIN, 0), [2, 3, 4].map((i) => candle(T0 + i * MIN, 100 + i)));
    assert.equal(await reader.readCandlesData(6, T0, 0), null, "the 6th candle is missing");
    assert.equal(await reader.readCandlesData(2, T0 - MIN, 0), null, "the first candle is missing");
  });

  it("first write wins and unclosed candles are never cached", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Candle("BTCUSDT", "5m", "binance");
    const step = 5 * MIN;
    await inst.writeCandlesData([candle(T0, 1)]);
    await inst.writeCandlesData([candle(T0, 2), candle(T0 + step, 3)]);
    assert.deepEqual((await inst.readCandlesData(2, T0, 0)).map((c) => c.close), [1, 3]);
    const open = Math.floor(Date.now() / step) * step; // the current, unclosed 5m candle
    await inst.writeCandlesData([candle(open - step, 4), candle(open, 5)]);
    const keys = await rawKeys(namespace, "candle", "binance/BTCUSDT/5m");
    assert.ok(keys.includes(String(open - step)));
    assert.ok(!keys.includes(String(open)), "the open candle was written");
  });

  it("windows over 1000 candles and the local cache of immutable candles", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Candle("ETHUSDT", "1m", "binance");
    const list = Array.from({ length: 1500 }, (_, i) => candle(T0 + i * MIN, i));
    await inst.writeCandlesData(list);
    const counting = countingFetch();
    const reader = new (createAdapters({ url: URL_, namespace, fetch: counting.fetch }).Candle)("ETHUSDT", "1m", "binance");
    const window = await reader.readCandlesData(1500, T0, 0);
    assert.equal(window.length, 1500);
    assert.ok(window.every((c, i) => c.timestamp === T0 + i * MIN));
    assert.equal(counting.calls.length, 2);
    await reader.readCandlesData(5, T0 + 10 * MIN, 0);
    assert.equal(counting.calls.length, 2, "a cached window needs no request");
  });

  it("rejects an unknown interval at construction", () => {
    const { A } = adapters();
    assert.throws(() => new A.Candle("BTCUSDT", "7m", "binance"), /unknown candle interval/);
  });
});

describe("Storage, Notification, Log", () => {
  it("Storage: one batch upsert per write keyed by id, one request per read, Infinity restored", async () => {
    const { namespace } = adapters();
    const counting = countingFetch();
    const A = createAdapters({ url: URL_, namespace, fetch: counting.fetch });
    const inst = new A.Storage(false);
    const rows = [signalRow({ id: "a", status: "opened", priority: 1 }), signalRow({ id: "b", status: "closed", priority: 2, minuteEstimatedTime: Infinity })];
    await inst.writeStorageData(rows);
    assert.equal(counting.calls.length, 1);
    assert.match(counting.calls[0].url, /\/storage\/live\/batch-put$/);
    rows[0].status = "closed";
    await inst.writeStorageData(rows);
    const back = await inst.readStorageData();
    assert.equal(counting.calls.length, 3);
    assert.deepEqual(back.map((r) => [r.id, r.status]).sort(), [["a", "closed"], ["b", "closed"]]);
    assert.equal(back.find((r) => r.id === "b").minuteEstimatedTime, Infinity);
    assert.deepEqual(await rawKeys(namespace, "storage", "live"), ["a", "b"]);
    assert.deepEqual(await new A.Storage(true).readStorageData(), [], "backtest and live are separate");
    await inst.writeStorageData([]);
  });

  it("Notification: restores Infinity only on the variants that carry the field", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Notification(true);
    await inst.writeNotificationData([
      { type: "signal.opened", id: "n1", timestamp: 1, backtest: true, minuteEstimatedTime: null, cost: 1 },
      { type: "info", id: "n2", timestamp: 2, backtest: true },
    ]);
    const back = await inst.readNotificationData();
    assert.equal(back.find((n) => n.id === "n1").minuteEstimatedTime, Infinity);
    assert.ok(!("minuteEstimatedTime" in back.find((n) => n.id === "n2")));
    assert.deepEqual(await rawKeys(namespace, "notification", "backtest"), ["n1", "n2"]);
  });

  it("Log: append-only, an id that exists is never overwritten", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Log();
    const entry = (id, topic) => ({ id, type: "info", priority: 1, createdAt: "2024-01-01T00:00:00.000Z", timestamp: 1, methodContext: null, executionContext: null, topic, args: [] });
    await inst.writeLogData([entry("l1", "first"), entry("l2", "second")]);
    await inst.writeLogData([entry("l1", "rewritten"), entry("l3", "third")]);
    const back = await inst.readLogData();
    assert.deepEqual(back.map((e) => [e.id, e.topic]).sort(), [["l1", "first"], ["l2", "second"], ["l3", "third"]]);
    assert.deepEqual(await rawKeys(namespace, "log", "log"), ["l1", "l2", "l3"]);
  });
});

describe("Measure, Interval, Memory (soft delete)", () => {
  for (const [name, domain, m] of [
    ["Measure", "measure", { read: "readMeasureData", write: "writeMeasureData", remove: "removeMeasureData", list: "listMeasureData" }],
    ["Interval", "interval", { read: "readIntervalData", write: "writeIntervalData", remove: "removeIntervalData", list: "listIntervalData" }],
  ]) {
    it(`${name}: remove is soft, read gives null when removed, list yields non-removed keys`, async () => {
      const { namespace, A } = adapters();
      const inst = new A[name]("omni_1m_0");
      await inst.waitForInit(true);
      assert.equal(await inst[m.read]("k1"), null);
      const value = (id) => ({ id, data: { n: id }, removed: false, ...(name === "Interval" ? { when: WHEN } : {}) });
      await inst[m.write](value("k1"), "k1", WHEN);
      await inst[m.write](value("k2"), "k2", WHEN);
      assert.deepEqual((await inst[m.read]("k1")).data, { n: "k1" });
      await inst[m.remove]("k1");
      await inst[m.remove]("absent"); // no-op
      assert.equal(await inst[m.read]("k1"), null);
      const keys = [];
      for await (const k of inst[m.list]()) keys.push(k);
      assert.deepEqual(keys, ["k2"]);
      const stored = await raw(namespace, domain, "omni_1m_0", "k1");
      assert.equal(stored.body.removed, true, "the record stays, marked removed");
      assert.equal((await raw(namespace, domain, "omni_1m_0", "absent")).status, 404);
      if (name === "Interval") assert.equal(stored.body.when, WHEN.toISOString());
    });
  }

  it("Memory: entity <signalId>/<bucket>, has is true even when removed, list yields {memoryId, data}", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Memory("sig-1", "notes");
    await inst.waitForInit(true);
    const value = (i) => ({ priority: i, data: { text: `m${i}` }, removed: false, index: `m${i}`, when: 1 });
    assert.equal(await inst.hasMemoryData("m1"), false);
    await inst.writeMemoryData(value(1), "m1", WHEN);
    await inst.writeMemoryData(value(2), "m2", WHEN);
    await inst.removeMemoryData("m1");
    await inst.removeMemoryData("nope");
    assert.equal(await inst.readMemoryData("m1"), null);
    assert.equal(await inst.hasMemoryData("m1"), true);
    assert.deepEqual((await inst.readMemoryData("m2")).data, { text: "m2" });
    const listed = [];
    for await (const entry of inst.listMemoryData()) listed.push(entry);
    assert.deepEqual(listed, [{ memoryId: "m2", data: value(2) }]);
    assert.equal((await raw(namespace, "memory", "sig-1/notes", "m2")).status, 200);
    assert.equal(inst.dispose(), undefined);
  });
});

describe("Recent, State, Session", () => {
  it("Recent: entity with the frame only when there is one, per mode, Infinity restored", async () => {
    const { namespace, A } = adapters();
    const live = new A.Recent("BTCUSDT", "s", "e", "", false);
    const bt = new A.Recent("BTCUSDT", "s", "e", "f1", true);
    assert.equal(await live.readRecentData(), null);
    await live.writeRecentData(signalRow({ minuteEstimatedTime: null }), WHEN);
    await bt.writeRecentData(signalRow({ id: "bt" }), WHEN);
    assert.equal((await live.readRecentData()).minuteEstimatedTime, Infinity);
    assert.equal((await bt.readRecentData()).id, "bt");
    assert.equal((await raw(namespace, "recent", "BTCUSDT_s_e_live", "BTCUSDT")).status, 200);
    assert.equal((await raw(namespace, "recent", "BTCUSDT_s_e_f1_backtest", "BTCUSDT")).status, 200);
  });

  it("State: entity <signalId>/<bucket>, key <bucket>", async () => {
    const { namespace, A } = adapters();
    const inst = new A.State("sig-1", "trail");
    assert.equal(await inst.readStateData(), null);
    await inst.writeStateData({ id: "trail", data: { peak: 1 }, when: 5 }, WHEN);
    assert.deepEqual(await inst.readStateData(), { id: "trail", data: { peak: 1 }, when: 5 });
    assert.equal((await raw(namespace, "state", "sig-1/trail", "trail")).status, 200);
    assert.equal(inst.dispose(), undefined);
  });

  it("Session: entity <strategy>/<exchange>[/<frame>], key <symbol>_<mode>", async () => {
    const { namespace, A } = adapters();
    const live = new A.Session("s", "e", "", "BTCUSDT", false);
    const bt = new A.Session("s", "e", "f1", "BTCUSDT", true);
    assert.equal(await live.readSessionData(), null);
    await live.writeSessionData({ id: "x", data: { a: 1 }, when: 1 }, WHEN);
    await bt.writeSessionData({ id: "y", data: null, when: 2 }, WHEN);
    assert.deepEqual(await live.readSessionData(), { id: "x", data: { a: 1 }, when: 1 });
    assert.deepEqual(await bt.readSessionData(), { id: "y", data: null, when: 2 });
    assert.equal((await raw(namespace, "session", "s/e", "BTCUSDT_live")).status, 200);
    assert.equal((await raw(namespace, "session", "s/e/f1", "BTCUSDT_backtest")).status, 200);
    assert.equal(live.dispose(), undefined);
  });
});

describe("all 17 classes", () => {
  it("are returned by domain name, with the file layout's domain names", () => {
    const { A } = adapters();
    assert.deepEqual(Object.keys(A), ["Signal", "Risk", "Schedule", "Strategy", "Partial", "Breakeven", "Candle", "Storage", "Notification", "Log", "Measure", "Interval", "Memory", "Recent", "State", "Session", "Dictionary"]);
    assert.deepEqual(Object.values(DOMAINS), ["signal", "risk", "schedule", "strategy", "partial", "breakeven", "candle", "storage", "notification", "log", "measure", "interval", "memory", "recent", "state", "session", "dictionary"]);
  });

  it("waitForInit: one POST init on the first initial call, then cached no-ops; initial=false is free", async () => {
    const counting = countingFetch();
    const A = createAdapters({ url: URL_, namespace: freshNamespace(), fetch: counting.fetch });
    const args = { Signal: ["BTCUSDT", "s", "e"], Risk: ["r", "e"], Schedule: ["BTCUSDT", "s", "e"], Strategy: ["BTCUSDT", "s", "e"], Partial: ["BTCUSDT", "s", "e"], Breakeven: ["BTCUSDT", "s", "e"], Candle: ["BTCUSDT", "1m", "e"], Storage: [false], Notification: [false], Log: [], Measure: ["b"], Interval: ["b"], Memory: ["sig", "b"], Recent: ["BTCUSDT", "s", "e", "", false], State: ["sig", "b"], Session: ["s", "e", "", "BTCUSDT", false], Dictionary: ["sig", "d"] };
    for (const [name, ctorArgs] of Object.entries(args)) {
      const inst = new A[name](...ctorArgs);
      const before = counting.calls.length;
      await inst.waitForInit(false);
      assert.equal(counting.calls.length, before, `${name}: initial=false made a request`);
      await Promise.all([inst.waitForInit(true), inst.waitForInit(true)]);
      await inst.waitForInit(true);
      await inst.waitForInit(false);
      assert.equal(counting.calls.length, before + 1, `${name}: expected exactly one init request`);
      assert.match(counting.calls.at(-1).url, /\/init$/);
    }
  });

  it("different namespaces never see each other's records; sharedNamespaces shares one domain on purpose", async () => {
    const shared = freshNamespace("market");
    const one = createAdapters({ url: URL_, namespace: freshNamespace(), sharedNamespaces: { Candle: shared } });
    const two = createAdapters({ url: URL_, namespace: freshNamespace(), sharedNamespaces: { Candle: shared } });
    await new one.Signal("BTCUSDT", "s", "e").writeSignalData(signalRow());
    assert.equal(await new two.Signal("BTCUSDT", "s", "e").readSignalData(), null);
    const ts = Date.UTC(2024, 0, 1);
    await new one.Candle("BTCUSDT", "1m", "e").writeCandlesData([{ timestamp: ts, open: 1, high: 1, low: 1, close: 1, volume: 1 }]);
    assert.equal((await new two.Candle("BTCUSDT", "1m", "e").readCandlesData(1, ts, 0)).length, 1);
  });

  it("entities and keys with '/', spaces, '%' and non-ASCII stay one segment", async () => {
    const { namespace, A } = adapters();
    const inst = new A.Memory("sig/1 %x", "bücket#?");
    await inst.writeMemoryData({ priority: 1, data: {}, removed: false, index: "", when: 1 }, "a/b c%2F✓", WHEN);
    assert.equal(await inst.hasMemoryData("a/b c%2F✓"), true);
    assert.deepEqual(await rawKeys(namespace, "memory", "sig/1 %x/bücket#?"), ["a/b c%2F✓"]);
  });
});
