// Adapter layer: the 16 backtest-kit instance classes, generated from one table over one client.
//
// Each table row names a domain, how its constructor arguments become an address (mapping.ts)
// and the kinds (kinds.ts) that make up its methods, under backtest-kit's method names.

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
  domain: string;
  address: (...args: any[]) => { domain: string; entity: string; key?: string };
  methods: Record<string, Method>;
}

// ---- the table ----

const TABLE: Record<DomainName, Row> = {
  Signal: {
    domain: "signal",
    address: addressOf.signal,
    methods: document("readSignalData", "writeSignalData", (ctx, row) => restoreSignal(ctx, row)),
  },
  Risk: { domain: "risk", address: addressOf.risk, methods: risk },
  Schedule: {
    domain: "schedule",
    address: addressOf.schedule,
    methods: document("readScheduleData", "writeScheduleData", (ctx, row) => restoreSignal(ctx, row)),
  },
  Strategy: {
    domain: "strategy",
    address: addressOf.strategy,
    methods: document("readStrategyData", "writeStrategyData", restoreStrategy),
  },
  Partial: {
    domain: "partial",
    address: addressOf.partial,
    methods: keyedDocument("readPartialData", "writePartialData"),
  },
  Breakeven: {
    domain: "breakeven",
    address: addressOf.breakeven,
    methods: keyedDocument("readBreakevenData", "writeBreakevenData"),
  },
  Candle: { domain: "candle", address: addressOf.candle, methods: candles },
  Storage: {
    domain: "storage",
    address: addressOf.storage,
    methods: collection("readStorageData", "writeStorageData", "upsert", "storage", (ctx, row) =>
      restoreSignal(ctx, row),
    ),
  },
  Notification: {
    domain: "notification",
    address: addressOf.notification,
    methods: collection("readNotificationData", "writeNotificationData", "upsert", "notification", (ctx, row) =>
      restoreSignal(ctx, row, true),
    ),
  },
  Log: {
    domain: "log",
    address: addressOf.log,
    methods: collection("readLogData", "writeLogData", "insert_if_absent", "log"),
  },
  Measure: {
    domain: "measure",
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
    domain: "interval",
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
    domain: "memory",
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
    domain: "recent",
    address: addressOf.recent,
    methods: document("readRecentData", "writeRecentData", (ctx, row) => restoreSignal(ctx, row)),
  },
  State: {
    domain: "state",
    address: addressOf.state,
    methods: { ...document("readStateData", "writeStateData"), ...dispose },
  },
  Session: {
    domain: "session",
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
  if (!this._init) {
    if (!initial) return Promise.resolve();
    this._init = this.client.init(this.domain, this.entity, true).then(
      () => undefined,
      (error: unknown) => {
        this._init = undefined;
        throw error;
      },
    );
  }
  return this._init;
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
  DOMAIN_NAMES.map((name) => [name, TABLE[name].domain]),
) as Record<DomainName, string>;
