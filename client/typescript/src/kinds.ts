// Adapter layer, behaviours: the method sets ("kinds") the 16 classes are made of.
//
// A kind is written once (document, keyed document, collection, soft-delete bucket, candles,
// risk) and returns its methods under the names backtest-kit calls; adapters.ts assembles them.

import type { AdapterOptions } from "./adapters.js";
import type { InitOnce } from "./base.js";
import { MAX_BATCH, type PersistdClient } from "./http.js";
import type { CandleData, JsonObject } from "./types.js";

export interface Context {
  client: PersistdClient;
  options: AdapterOptions;
}

/** State every generated instance carries. */
export interface Instance {
  readonly domain: string;
  readonly entity: string;
  readonly key: string;
  readonly client: PersistdClient;
  readonly ctx: Context;
  /** The entity's one init request (waitForInit). */
  readonly _init: InitOnce;
  // Kind-specific caches live on the instance too (see the kinds below).
  [extra: string]: unknown;
}

export type Method = (this: Instance, ...args: any[]) => unknown;

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
export function document(read: string, write: string, restore?: (ctx: Context, value: any) => void): Record<string, Method> {
  return {
    async [read](this: Instance) {
      const stored = await this.client.get(this.domain, this.entity, this.key);
      if (stored === undefined || stored.value === null) return null;
      restore?.(this.ctx, stored.value);
      return stored.value;
    },
    async [write](this: Instance, value: unknown) {
      await this.client.put(this.domain, this.entity, this.key, value ?? null);
    },
  };
}

/** One JSON document per signal id; absent reads as `{}`. `when` is not stored (see README). */
export function keyedDocument(read: string, write: string): Record<string, Method> {
  return {
    async [read](this: Instance, signalId: string) {
      const stored = await this.client.get(this.domain, this.entity, signalId);
      return stored?.value ?? {};
    },
    async [write](this: Instance, data: unknown, signalId: string) {
      await this.client.put(this.domain, this.entity, signalId, data);
    },
  };
}

function readLimit(ctx: Context, domain: "storage" | "notification" | "log"): number {
  return Math.min(10_000, Math.max(1, ctx.options.readLimits?.[domain] ?? 1000));
}

function chunks<T>(items: T[], size = MAX_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * A collection of items keyed by `item.id` (Storage, Notification, Log). A write is one
 * batch-put of the whole list (upsert, or insert-if-absent for the append-only log); a read is
 * one request for the newest records, oldest first.
 */
export function collection(
  read: string,
  write: string,
  mode: "upsert" | "insert_if_absent",
  limit: "storage" | "notification" | "log",
  restore?: (ctx: Context, item: JsonObject) => void,
): Record<string, Method> {
  return {
    async [read](this: Instance) {
      const items = await this.client.newest<JsonObject>(this.domain, this.entity, readLimit(this.ctx, limit));
      const values = items.map((item) => item.value).filter((v) => v !== null && v !== undefined);
      if (restore) for (const value of values) restore(this.ctx, value);
      return values;
    },
    async [write](this: Instance, list: JsonObject[]) {
      // A list never holds one id twice in the engine; keep the last if it ever does.
      const byId = new Map<string, JsonObject>();
      for (const item of list ?? []) byId.set(String(item.id), item);
      const items = [...byId].map(([key, value]) => ({ key, value }));
      for (const part of chunks(items)) {
        await this.client.batchPut(this.domain, this.entity, part, mode);
      }
    },
  };
}

/**
 * Soft-delete buckets (Measure, Interval, Memory): remove rewrites the record with
 * `removed: true`; reads and lists skip removed records; `has` counts them.
 */
export function bucket(names: {
  read: string;
  write: string;
  remove: string;
  list: string;
  has?: string;
  listEntry: (key: string, data: JsonObject) => unknown;
}): Record<string, Method> {
  const methods: Record<string, Method> = {
    async [names.read](this: Instance, key: string) {
      const stored = await this.client.get<JsonObject | null>(this.domain, this.entity, key);
      const data = stored?.value;
      return !data || data.removed ? null : data;
    },
    async [names.write](this: Instance, data: JsonObject, key: string) {
      await this.client.put(this.domain, this.entity, key, data);
    },
    async [names.remove](this: Instance, key: string) {
      // Read-modify-write guarded by the version, so a concurrent write is never undone.
      for (let attempt = 0; attempt < 100; attempt++) {
        const stored = await this.client.get<JsonObject | null>(this.domain, this.entity, key);
        if (!stored || !stored.value) return;
        const removed = { ...stored.value, removed: true };
        const version = await this.client.put(this.domain, this.entity, key, removed, { ifMatch: stored.version });
        if (version !== null) return;
      }
      throw new Error(`persistd: ${this.domain} ${this.entity}:${key} kept changing during remove`);
    },
    [names.list]: async function* (this: Instance) {
      for await (const item of this.client.items<JsonObject | null>(this.domain, this.entity)) {
        if (!item.value || item.value.removed) continue;
        yield names.listEntry(item.key, item.value);
      }
    },
  };
  if (names.has) {
    methods[names.has] = async function (this: Instance, key: string) {
      return this.client.head(this.domain, this.entity, key);
    };
  }
  return methods;
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

/**
 * Candles: immutable, first write wins. A window read is one batch-get of the `limit` expected
 * open times (`since + i·step`) and gives exactly `limit` candles ascending, or null on any gap.
 * Unclosed candles (`timestamp + step > now`) are never written.
 */
export const candles: Record<string, Method> = {
  async readCandlesData(this: Instance, limit: number, sinceTimestamp: number) {
    const step = stepMs(this.interval as string);
    const cache = this.cache as Map<number, CandleData> | undefined;
    const out: Array<CandleData | undefined> = [];
    const wanted: string[] = [];
    for (let i = 0; i < limit; i++) {
      const ts = sinceTimestamp + i * step;
      const hit = cache?.get(ts);
      out.push(hit);
      if (!hit) wanted.push(String(ts));
    }
    for (const part of chunks(wanted)) {
      const { items, missing } = await this.client.batchGet<CandleData>(this.domain, this.entity, part);
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
  async writeCandlesData(this: Instance, list: CandleData[]) {
    const step = stepMs(this.interval as string);
    const now = Date.now();
    const closed = new Map<string, CandleData>();
    for (const candle of list ?? []) {
      if (candle.timestamp + step > now) continue;
      const key = String(candle.timestamp);
      if (!closed.has(key)) closed.set(key, candle);
    }
    const items = [...closed].map(([key, value]) => ({ key, value }));
    for (const part of chunks(items)) {
      await this.client.batchPut(this.domain, this.entity, part, "insert_if_absent");
    }
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

/**
 * Risk: the engine writes its whole in-memory position map, so two bots sharing a risk profile
 * would overwrite each other's positions. Each instance remembers the rows it last read or
 * wrote (its base) and the last server document with its version; a write applies only this
 * process's changes (added, changed and removed position keys) on top of the server document,
 * guarded by If-Match, and re-reads and re-applies after a lost race.
 */
export const risk: Record<string, Method> = {
  async readPositionData(this: Instance) {
    const stored = await this.client.get<RiskRows | null>(this.domain, this.entity, this.key);
    const rows = Array.isArray(stored?.value) ? stored.value : [];
    this.base = rowMap(rows);
    this.server = { rows: rowMap(rows), version: stored?.version ?? 0 };
    restoreRisk(rows);
    return rows;
  },
  async writePositionData(this: Instance, rows: RiskRows) {
    const mine = rowMap(rows ?? []);
    const base = (this.base as Map<string, string> | undefined) ?? new Map<string, string>();
    let server = this.server as { rows: Map<string, string>; version: number } | undefined;
    const maxConflicts = this.ctx.options.maxRiskConflicts ?? 100;
    for (let attempt = 0; attempt <= maxConflicts; attempt++) {
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
      const version = await this.client.put(
        this.domain,
        this.entity,
        this.key,
        value,
        server.version === 0 ? { ifNoneMatch: true } : { ifMatch: server.version },
      );
      if (version !== null) {
        this.base = mine;
        this.server = { rows: merged, version };
        return;
      }
      server = undefined; // lost a race: re-read and re-apply this process's changes
    }
    throw new Error(`persistd: risk ${this.entity} kept changing; gave up after ${maxConflicts} conflicts`);
  },
};

function rowMap(rows: RiskRows): Map<string, string> {
  // JSON text, not objects: compares by value and snapshots what the engine handed over.
  return new Map(rows.map(([key, position]) => [key, JSON.stringify(position)]));
}

export const dispose: Record<string, Method> = {
  dispose() {
    // The Utils never call it; nothing is held open per instance.
  },
};
