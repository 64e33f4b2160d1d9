// Adapter layer, behaviours: the method sets ("kinds") the 16 classes are made of.
//
// A kind is written once (document, keyed document, collection, soft-delete bucket, candles,
// risk) and returns its methods under the names backtest-kit calls; adapters.ts assembles them.

import type { InitOnce } from "./base.js";
import { CONTRACT } from "./contract.js";
import { PersistdUnavailableError, type PersistdClient } from "./http.js";
import type { AdapterOptions } from "./options.js";
import type { CandleData, Doc, JsonObject } from "./types.js";

export interface Context {
  readonly client: PersistdClient;
  readonly options: AdapterOptions;
}

/** What every generated instance holds: its address, its client and its one init request. */
export interface Base {
  readonly domain: string;
  readonly entity: string;
  readonly key: string;
  readonly client: PersistdClient;
  readonly ctx: Context;
  /** The entity's one init request (waitForInit). */
  readonly _init: InitOnce;
}

/** The state of a kind that keeps none. */
export type NoState = Record<never, never>;

/** An instance of a kind whose own state is `S` (candles: their cache; risk: its base). */
export type Instance<S = NoState> = Base & S;

type Method<A extends unknown[], R, S = NoState> = (this: Instance<S>, ...args: A) => R;

/** `{ [name]: fn }`, keyed by the literal name (TypeScript widens a computed key to string). */
function named<K extends string, F>(name: K, fn: F): Record<K, F> {
  return { [name]: fn } as Record<K, F>;
}

// ---- value fixes the file adapters apply on read (contract §2 and §7) ----

/** JSON cannot carry Infinity: an eternal hold's `minuteEstimatedTime` comes back as null. */
export function restoreSignal(ctx: Context, row: unknown, onlyIfCarried = false): void {
  if (!row || typeof row !== "object") return;
  const r = row as JsonObject;
  if ((!onlyIfCarried || "minuteEstimatedTime" in r) && r.minuteEstimatedTime == null) {
    r.minuteEstimatedTime = Infinity;
  }
  const defaults = ctx.options.signalDefaults?.();
  if (!defaults || (onlyIfCarried && !("cost" in r))) return;
  if (r.multiplier == null && defaults.multiplier !== undefined) r.multiplier = defaults.multiplier;
  if (r.isolated == null && defaults.isolated !== undefined) r.isolated = defaults.isolated;
}

const STRATEGY_SLOTS = [
  "closedSignal",
  "cancelledSignal",
  "activatedSignal",
  "takeProfitSignal",
  "stopLossSignal",
  "retryOpenSignal",
] as const;

export function restoreStrategy(ctx: Context, snapshot: unknown): void {
  if (!snapshot || typeof snapshot !== "object") return;
  for (const slot of STRATEGY_SLOTS) restoreSignal(ctx, (snapshot as JsonObject)[slot]);
}

function restoreRisk(rows: RiskRows): void {
  for (const [, position] of rows) {
    if (position && position.minuteEstimatedTime == null) position.minuteEstimatedTime = Infinity;
  }
}

// ---- kinds: each returns methods under the names backtest-kit calls ----

/** One JSON document per instance at a fixed key; `null` is a value ("cleared"). */
export function document<R extends string, W extends string>(
  read: R,
  write: W,
  restore?: (ctx: Context, value: Doc) => void,
): Record<R, Method<[], Promise<Doc | null>>> & Record<W, Method<[value: Doc | null], Promise<void>>> {
  return {
    ...named(read, async function (this: Instance): Promise<Doc | null> {
      const stored = await this.client.get<Doc>(this.domain, this.entity, this.key);
      if (stored === undefined || stored.value === null) return null;
      restore?.(this.ctx, stored.value);
      return stored.value;
    }),
    ...named(write, async function (this: Instance, value: Doc | null): Promise<void> {
      await this.client.put(this.domain, this.entity, this.key, value ?? null);
    }),
  };
}

/** One JSON document per signal id; absent reads as `{}`. `when` is not stored (see README). */
export function keyedDocument<R extends string, W extends string>(
  read: R,
  write: W,
): Record<R, Method<[signalId: string], Promise<Record<string, Doc>>>> &
  Record<W, Method<[data: Record<string, Doc>, signalId: string], Promise<void>>> {
  return {
    ...named(read, async function (this: Instance, signalId: string): Promise<Record<string, Doc>> {
      const stored = await this.client.get<Record<string, Doc> | null>(this.domain, this.entity, signalId);
      return stored?.value ?? {};
    }),
    ...named(write, async function (this: Instance, data: Record<string, Doc>, signalId: string): Promise<void> {
      await this.client.put(this.domain, this.entity, signalId, data);
    }),
  };
}

function readLimit(ctx: Context, domain: "storage" | "notification" | "log"): number {
  return Math.min(CONTRACT.listing.max_newest, Math.max(1, ctx.options.readLimits?.[domain] ?? 1000));
}

/**
 * A collection of items keyed by `item.id` (Storage, Notification, Log). A write is one
 * batch-put of the whole list (upsert, or insert-if-absent for the append-only log); a read is
 * one request for the newest records, oldest first.
 */
export function collection<R extends string, W extends string>(
  read: R,
  write: W,
  mode: "upsert" | "insert_if_absent",
  limit: "storage" | "notification" | "log",
  restore?: (ctx: Context, item: JsonObject) => void,
): Record<R, Method<[], Promise<Doc[]>>> & Record<W, Method<[list: Doc[]], Promise<void>>> {
  return {
    ...named(read, async function (this: Instance): Promise<Doc[]> {
      const items = await this.client.newest<JsonObject>(this.domain, this.entity, readLimit(this.ctx, limit));
      const values = items.map((item) => item.value).filter((v) => v !== null && v !== undefined);
      if (restore) for (const value of values) restore(this.ctx, value);
      return values;
    }),
    ...named(write, async function (this: Instance, list: JsonObject[]): Promise<void> {
      // A list never holds one id twice in the engine; keep the last if it ever does.
      const byId = new Map<string, JsonObject>();
      for (const item of list ?? []) byId.set(String(item.id), item);
      const items = [...byId].map(([key, value]) => ({ key, value }));
      // The client sends as many batches as the service's limits need.
      await this.client.batchPut(this.domain, this.entity, items, mode);
    }),
  };
}

/**
 * A conditional write (If-Match, If-None-Match) by a read-modify-write: `attempt` re-reads and
 * writes, and answers false on a lost race. A write whose outcome is unknown (its answer was
 * lost: the client does not repeat a conditional write) is resolved the same way, by re-reading
 * and writing again: the change is re-applied to what is there, so applying it twice is harmless.
 */
async function readModifyWrite(maxConflicts: number, attempt: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i <= maxConflicts; i++) {
    try {
      if (await attempt()) return true;
    } catch (error) {
      if (!(error instanceof PersistdUnavailableError) || i === maxConflicts) throw error;
    }
  }
  return false;
}

/**
 * Soft-delete buckets (Measure, Interval, Memory): remove rewrites the record with
 * `removed: true`; reads and lists skip removed records.
 */
export function bucket<R extends string, W extends string, D extends string, L extends string, E>(names: {
  read: R;
  write: W;
  remove: D;
  list: L;
  listEntry: (key: string, data: JsonObject) => E;
}): Record<R, Method<[key: string], Promise<Doc | null>>> &
  Record<W, Method<[data: Doc, key: string], Promise<void>>> &
  Record<D, Method<[key: string], Promise<void>>> &
  Record<L, Method<[], AsyncGenerator<E>>> {
  return {
    ...named(names.read, async function (this: Instance, key: string): Promise<Doc | null> {
      const stored = await this.client.get<JsonObject | null>(this.domain, this.entity, key);
      const data = stored?.value;
      return !data || data.removed ? null : data;
    }),
    ...named(names.write, async function (this: Instance, data: Doc, key: string): Promise<void> {
      await this.client.put(this.domain, this.entity, key, data);
    }),
    ...named(names.remove, async function (this: Instance, key: string): Promise<void> {
      // Read-modify-write guarded by the version, so a concurrent write is never undone.
      const done = await readModifyWrite(100, async () => {
        const stored = await this.client.get<JsonObject | null>(this.domain, this.entity, key);
        if (!stored || !stored.value) return true;
        const removed = { ...stored.value, removed: true };
        return (await this.client.put(this.domain, this.entity, key, removed, { ifMatch: stored.version })) !== null;
      });
      if (!done) throw new Error(`persistd: ${this.domain} ${this.entity}:${key} kept changing during remove`);
    }),
    ...named(names.list, async function* (this: Instance): AsyncGenerator<E> {
      for await (const item of this.client.items<JsonObject | null>(this.domain, this.entity)) {
        if (!item.value || item.value.removed) continue;
        yield names.listEntry(item.key, item.value);
      }
    }),
  };
}

/** Whether a record exists, removed or not (Memory's `hasMemoryData`). */
export function exists<H extends string>(name: H): Record<H, Method<[key: string], Promise<boolean>>> {
  return named(name, async function (this: Instance, key: string): Promise<boolean> {
    return this.client.head(this.domain, this.entity, key);
  });
}

const INTERVAL_MINUTES: Readonly<Record<string, number>> = {
  "1m": 1,
  "3m": 3,
  "5m": 5,
  "15m": 15,
  "30m": 30,
  "1h": 60,
  "2h": 120,
  "4h": 240,
  "6h": 360,
  "8h": 480,
  "1d": 1440,
};

export function stepMs(interval: string): number {
  const minutes = INTERVAL_MINUTES[interval];
  if (minutes === undefined) throw new Error(`persistd: unknown candle interval ${JSON.stringify(interval)}`);
  return minutes * 60_000;
}

function isCandle(value: unknown): value is CandleData {
  return !!value && typeof value === "object" && typeof (value as CandleData).timestamp === "number";
}

/** A candle instance's state: its interval and the closed candles it read (immutable). */
export interface CandleState {
  readonly step: number;
  readonly cache: Map<number, CandleData> | undefined;
}

export function candleState(ctx: Context, _symbol: string, interval: string): CandleState {
  const size = ctx.options.candleCacheSize ?? 10_000;
  return { step: stepMs(interval), cache: size > 0 ? new Map<number, CandleData>() : undefined };
}

/**
 * Candles: immutable, first write wins. A window read is one batch-get of the `limit` expected
 * open times (`since + i·step`) and gives exactly `limit` candles ascending, or null on any gap.
 * Unclosed candles (`timestamp + step > now`) are never written.
 */
export const candles = {
  async readCandlesData(
    this: Instance<CandleState>,
    limit: number,
    sinceTimestamp: number,
  ): Promise<CandleData[] | null> {
    const { step, cache } = this;
    const out: Array<CandleData | undefined> = [];
    const wanted: string[] = [];
    for (let i = 0; i < limit; i++) {
      const ts = sinceTimestamp + i * step;
      const hit = cache?.get(ts);
      out.push(hit);
      if (!hit) wanted.push(String(ts));
    }
    if (wanted.length > 0) {
      // The client sends as many batches as the service's limits need.
      const { items, missing } = await this.client.batchGet<CandleData>(this.domain, this.entity, wanted);
      if (missing.length > 0) return null;
      for (const item of items) {
        if (!isCandle(item.value)) return null;
        const ts = Number(item.key);
        out[Math.round((ts - sinceTimestamp) / step)] = item.value;
        if (cache) remember(cache, ts, item.value, this.ctx.options.candleCacheSize ?? 10_000);
      }
    }
    return out.every(isCandle) ? (out as CandleData[]) : null;
  },
  async writeCandlesData(this: Instance<CandleState>, list: CandleData[]): Promise<void> {
    const now = Date.now();
    const closed = new Map<string, CandleData>();
    for (const candle of list ?? []) {
      if (candle.timestamp + this.step > now) continue;
      const key = String(candle.timestamp);
      if (!closed.has(key)) closed.set(key, candle);
    }
    const items = [...closed].map(([key, value]) => ({ key, value }));
    if (items.length > 0) await this.client.batchPut(this.domain, this.entity, items, "insert_if_absent");
  },
};

function remember(cache: Map<number, CandleData>, ts: number, candle: CandleData, size: number): void {
  if (cache.size >= size) {
    // Evict the oldest-inserted tenth: cheap, and windows read recently stay.
    let drop = Math.max(1, Math.floor(size / 10));
    for (const key of cache.keys()) {
      if (drop-- <= 0) break;
      cache.delete(key);
    }
  }
  cache.set(ts, candle);
}

type RiskRows = Array<[string, JsonObject]>;

/** A risk instance's state: the rows this process last read or wrote, and the server's last. */
export interface RiskState {
  base?: Map<string, string>;
  server?: { rows: Map<string, string>; version: number } | undefined;
}

/**
 * Risk: the engine writes its whole in-memory position map, so two bots sharing a risk profile
 * would overwrite each other's positions. Each instance remembers the rows it last read or
 * wrote (its base) and the last server document with its version; a write applies only this
 * process's changes (added, changed and removed position keys) on top of the server document,
 * guarded by If-Match, and re-reads and re-applies after a lost race or an unknown outcome.
 */
export const risk = {
  async readPositionData(this: Instance<RiskState>): Promise<RiskRows> {
    const stored = await this.client.get<RiskRows | null>(this.domain, this.entity, this.key);
    const rows = Array.isArray(stored?.value) ? stored.value : [];
    this.base = rowMap(rows);
    this.server = { rows: rowMap(rows), version: stored?.version ?? 0 };
    restoreRisk(rows);
    return rows;
  },
  async writePositionData(this: Instance<RiskState>, rows: RiskRows): Promise<void> {
    const mine = rowMap(rows ?? []);
    const base = this.base ?? new Map<string, string>();
    const maxConflicts = this.ctx.options.maxRiskConflicts ?? 100;
    const done = await readModifyWrite(maxConflicts, async () => {
      let server = this.server;
      this.server = undefined; // known again only once this write is answered
      if (!server) {
        const stored = await this.client.get<RiskRows | null>(this.domain, this.entity, this.key);
        server = {
          rows: rowMap(Array.isArray(stored?.value) ? stored.value : []),
          version: stored?.version ?? 0,
        };
      }
      const merged = new Map(server.rows);
      for (const key of base.keys()) if (!mine.has(key)) merged.delete(key);
      for (const [key, json] of mine) if (base.get(key) !== json) merged.set(key, json);
      const value = [...merged].map(([key, json]) => [key, JSON.parse(json)]);
      const condition = server.version === 0 ? { ifNoneMatch: true } : { ifMatch: server.version };
      const version = await this.client.put(this.domain, this.entity, this.key, value, condition);
      if (version === null) return false; // lost a race: re-read and re-apply this process's changes
      this.base = mine;
      this.server = { rows: merged, version };
      return true;
    });
    if (!done) throw new Error(`persistd: risk ${this.entity} kept changing; gave up after ${maxConflicts} conflicts`);
  },
};

function rowMap(rows: RiskRows): Map<string, string> {
  // JSON text, not objects: compares by value and snapshots what the engine handed over.
  return new Map(rows.map(([key, position]) => [key, JSON.stringify(position)]));
}

export const dispose = {
  dispose(): void {
    // The Utils never call it; nothing is held open per instance.
  },
};
