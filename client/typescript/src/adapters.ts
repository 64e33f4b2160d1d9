// Adapter layer: the 16 backtest-kit instance classes, generated from one table over one client.
//
// Each table row names a domain, how its constructor arguments become an address (mapping.ts)
// and the kinds (kinds.ts) that make up its methods, under backtest-kit's method names.

import { InitOnce } from "./base.js";
import { PersistdClient, type ClientOptions } from "./http.js";
import {
  bucket,
  candles,
  collection,
  dispose,
  document,
  keyedDocument,
  restoreSignal,
  restoreStrategy,
  risk,
  stepMs,
  type Context,
  type Instance,
  type Method,
} from "./kinds.js";
import { addressOf } from "./mapping.js";
import { DOMAIN_NAMES, type CandleData, type DomainName, type PersistdAdapters } from "./types.js";

/** Options of `createAdapters` and `setup`. */
export interface AdapterOptions extends ClientOptions {
  /**
   * Per-domain namespace overrides, for state shared on purpose across bots that otherwise have
   * namespaces of their own: e.g. `{ Risk: "desk-1", Candle: "market" }`.
   */
  sharedNamespaces?: Partial<Record<DomainName, string>>;
  /**
   * Newest records read back per collection (they are never deleted, so they grow): the engine
   * keeps the last 50 storage rows, 500 notifications and 1000 log lines. Defaults 1000 each.
   */
  readLimits?: { storage?: number; notification?: number; log?: number };
  /** Closed candles kept in memory per candle instance (they are immutable). Default 10000; 0 disables. */
  candleCacheSize?: number;
  /**
   * Config defaults restored on signal rows written before backtest-kit had the field, as its
   * own file adapter does. `setup()` fills it from backtest-kit's `getConfig()`.
   */
  signalDefaults?: () => { multiplier?: number; isolated?: boolean };
  /** Give up a Risk read-merge-write after this many lost races. Default 100. */
  maxRiskConflicts?: number;
}

interface Row {
  address: (...args: any[]) => { domain: string; entity: string; key?: string };
  methods: Record<string, Method>;
}

// ---- the table ----

const TABLE: Record<DomainName, Row> = {
  Signal: {
    address: addressOf.signal,
    methods: document("readSignalData", "writeSignalData", (ctx, row) => restoreSignal(ctx, row)),
  },
  Risk: { address: addressOf.risk, methods: risk },
  Schedule: {
    address: addressOf.schedule,
    methods: document("readScheduleData", "writeScheduleData", (ctx, row) => restoreSignal(ctx, row)),
  },
  Strategy: {
    address: addressOf.strategy,
    methods: document("readStrategyData", "writeStrategyData", restoreStrategy),
  },
  Partial: {
    address: addressOf.partial,
    methods: keyedDocument("readPartialData", "writePartialData"),
  },
  Breakeven: {
    address: addressOf.breakeven,
    methods: keyedDocument("readBreakevenData", "writeBreakevenData"),
  },
  Candle: { address: addressOf.candle, methods: candles },
  Storage: {
    address: addressOf.storage,
    methods: collection("readStorageData", "writeStorageData", "upsert", "storage", (ctx, row) =>
      restoreSignal(ctx, row),
    ),
  },
  Notification: {
    address: addressOf.notification,
    methods: collection("readNotificationData", "writeNotificationData", "upsert", "notification", (ctx, row) =>
      restoreSignal(ctx, row, true),
    ),
  },
  Log: {
    address: addressOf.log,
    methods: collection("readLogData", "writeLogData", "insert_if_absent", "log"),
  },
  Measure: {
    address: addressOf.measure,
    methods: bucket({
      read: "readMeasureData",
      write: "writeMeasureData",
      remove: "removeMeasureData",
      list: "listMeasureData",
      listEntry: (key) => key,
    }),
  },
  Interval: {
    address: addressOf.interval,
    methods: bucket({
      read: "readIntervalData",
      write: "writeIntervalData",
      remove: "removeIntervalData",
      list: "listIntervalData",
      listEntry: (key) => key,
    }),
  },
  Memory: {
    address: addressOf.memory,
    methods: {
      ...bucket({
        read: "readMemoryData",
        write: "writeMemoryData",
        remove: "removeMemoryData",
        list: "listMemoryData",
        has: "hasMemoryData",
        listEntry: (memoryId, data) => ({ memoryId, data }),
      }),
      ...dispose,
    },
  },
  Recent: {
    address: addressOf.recent,
    methods: document("readRecentData", "writeRecentData", (ctx, row) => restoreSignal(ctx, row)),
  },
  State: {
    address: addressOf.state,
    methods: { ...document("readStateData", "writeStateData"), ...dispose },
  },
  Session: {
    address: addressOf.session,
    methods: { ...document("readSessionData", "writeSessionData"), ...dispose },
  },
};

/**
 * `waitForInit(initial)`: the Utils call it before every operation, so it is a cached no-op
 * after the first call; only an initial call makes one request (POST init), and a failed one is
 * retried by the next call instead of being cached.
 */
function waitForInit(this: Instance, initial: boolean): Promise<void> {
  return this._init.wait(initial, () => this.client.init(this.domain, this.entity, true));
}

function makeClass(name: DomainName, row: Row, ctx: Context): new (...args: any[]) => object {
  const client = ctx.client.withNamespace(ctx.options.sharedNamespaces?.[name] ?? ctx.client.namespace);
  const Class = class {
    constructor(...args: any[]) {
      const address = row.address(...args);
      const self = this as unknown as Record<string, unknown>;
      self.domain = address.domain;
      self.entity = address.entity;
      self.key = address.key;
      self.client = client;
      self.ctx = ctx;
      self._init = new InitOnce();
      if (name === "Candle") {
        self.interval = args[1];
        stepMs(args[1]);
        const size = ctx.options.candleCacheSize ?? 10_000;
        self.cache = size > 0 ? new Map<number, CandleData>() : undefined;
      }
    }
  };
  Object.defineProperty(Class, "name", { value: `Persistd${name}Instance` });
  const methods: Record<string, Method> = { waitForInit, ...row.methods };
  for (const [method, fn] of Object.entries(methods)) {
    Object.defineProperty(Class.prototype, method, { value: fn, writable: true, configurable: true });
  }
  return Class;
}

/** The 16 instance classes over one client, by domain name (`Signal`, `Risk`, ...). */
export function createAdapters(options: AdapterOptions = {}): PersistdAdapters {
  const ctx: Context = { client: new PersistdClient(options), options };
  for (const [name, ns] of Object.entries(options.sharedNamespaces ?? {})) {
    if (!(DOMAIN_NAMES as readonly string[]).includes(name)) throw new Error(`persistd: unknown domain ${name}`);
    ctx.client.withNamespace(ns as string); // validates the slug now
  }
  const out: Record<string, unknown> = {};
  for (const name of DOMAIN_NAMES) out[name] = makeClass(name, TABLE[name], ctx);
  return out as unknown as PersistdAdapters;
}

/** The persistd domain (the dump folder name) of each backtest-kit domain. */
export const DOMAINS: Readonly<Record<DomainName, string>> = Object.fromEntries(
  DOMAIN_NAMES.map((name) => [name, name.toLowerCase()]),
) as Record<DomainName, string>;
