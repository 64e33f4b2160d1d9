// Adapter layer: the backtest-kit instance classes, generated from one table over one client.
//
// Each table row names a domain, how its constructor arguments become an address (mapping.ts)
// and the kinds (kinds.ts) that make up its methods, under backtest-kit's method names. The
// table is typed by the contracts in types.ts: a row must supply exactly its contract's
// methods with their signatures, so a misspelt or missing method fails `tsc --strict`.

import { InitOnce } from "./base.js";
import { PersistdClient } from "./http.js";
import {
  bucket,
  candles,
  candleState,
  collection,
  dispose,
  document,
  exists,
  keyedDocument,
  restoreSignal,
  restoreStrategy,
  risk,
  type Base,
  type CandleState,
  type Context,
  type Instance,
  type NoState,
  type RiskState,
} from "./kinds.js";
import { addressOf } from "./mapping.js";
import type { AdapterOptions } from "./options.js";
import { DOMAIN_NAMES, type DomainName, type PersistdAdapters } from "./types.js";

type Args<N extends DomainName> = ConstructorParameters<PersistdAdapters[N]>;
type Contract<N extends DomainName> = InstanceType<PersistdAdapters[N]>;

/** The state each domain's instances keep besides their address (the others keep none). */
interface States {
  Candle: CandleState;
  Risk: RiskState;
}
type StateOf<N extends DomainName> = N extends keyof States ? States[N] : NoState;

/** The methods a row supplies: exactly its contract's, but waitForInit (shared by all). */
export type Methods<N extends DomainName> = {
  [M in Exclude<keyof Contract<N>, "waitForInit">]: Contract<N>[M] extends (...args: infer A) => infer R
    ? (this: Instance<StateOf<N>>, ...args: A) => R
    : never;
};

/** One domain of the table: its address, its methods, and its state when it keeps one. */
export type Row<N extends DomainName> = {
  address: (...args: Args<N>) => { domain: string; entity: string; key?: string };
  methods: Methods<N>;
} & (NoState extends StateOf<N>
  ? { state?: undefined }
  : { state: (ctx: Context, ...args: Args<N>) => StateOf<N> });

// ---- the table ----

const TABLE: { readonly [N in DomainName]: Row<N> } = {
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
  Candle: { address: addressOf.candle, state: candleState, methods: candles },
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
        listEntry: (memoryId, data) => ({ memoryId, data }),
      }),
      ...exists("hasMemoryData"),
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
  // backtest-kit 20.x only; `install` skips it on a backtest-kit without PersistDictionaryAdapter.
  Dictionary: {
    address: addressOf.dictionary,
    methods: { ...document("readDictionaryData", "writeDictionaryData"), ...dispose },
  },
};

/**
 * `waitForInit(initial)`: the Utils call it before every operation, so it is a cached no-op
 * after the first call; only an initial call makes one request (POST init), and a failed one is
 * retried by the next call instead of being cached.
 */
function waitForInit(this: Base, initial: boolean): Promise<void> {
  return this._init.wait(initial, () => this.client.init(this.domain, this.entity, true));
}

/**
 * A class named `name` whose instances hold `init(...args)` and inherit `proto`. TypeScript
 * cannot type a prototype assembled at run time, so this one signature states what the body
 * builds; every caller's `init` and `proto` are checked.
 */
function classOf<A extends unknown[], I extends object, P extends object>(
  name: string,
  init: (...args: A) => I,
  proto: P,
): new (...args: A) => I & P {
  const Class = class {
    constructor(...args: A) {
      Object.assign(this, init(...args));
    }
  };
  Object.defineProperty(Class, "name", { value: name });
  for (const [method, fn] of Object.entries(proto)) {
    Object.defineProperty(Class.prototype, method, { value: fn, writable: true, configurable: true });
  }
  return Class as unknown as new (...args: A) => I & P;
}

function makeClass<N extends DomainName>(name: N, ctx: Context) {
  const row: Row<N> = TABLE[name];
  const client = ctx.client.withNamespace(ctx.options.sharedNamespaces?.[name] ?? ctx.client.namespace);
  const init = (...args: Args<N>): Base & StateOf<N> => {
    const address = row.address(...args);
    const base: Base = { ...address, key: address.key ?? "", client, ctx, _init: new InitOnce() };
    const state = (row.state as ((ctx: Context, ...args: Args<N>) => StateOf<N>) | undefined)?.(ctx, ...args);
    return { ...base, ...(state ?? ({} as StateOf<N>)) };
  };
  return classOf(`Persistd${name}Instance`, init, { waitForInit, ...row.methods });
}

/** The instance classes over one client, by domain name (`Signal`, `Risk`, ...). */
export function createAdapters(options: AdapterOptions = {}): PersistdAdapters {
  const ctx: Context = { client: new PersistdClient(options), options };
  for (const [name, ns] of Object.entries(options.sharedNamespaces ?? {})) {
    if (!(DOMAIN_NAMES as readonly string[]).includes(name)) throw new Error(`persistd: unknown domain ${name}`);
    ctx.client.withNamespace(ns as string); // validates the slug now
  }
  // Spelt out so that tsc checks each class against its contract in PersistdAdapters.
  return {
    Signal: makeClass("Signal", ctx),
    Risk: makeClass("Risk", ctx),
    Schedule: makeClass("Schedule", ctx),
    Strategy: makeClass("Strategy", ctx),
    Partial: makeClass("Partial", ctx),
    Breakeven: makeClass("Breakeven", ctx),
    Candle: makeClass("Candle", ctx),
    Storage: makeClass("Storage", ctx),
    Notification: makeClass("Notification", ctx),
    Log: makeClass("Log", ctx),
    Measure: makeClass("Measure", ctx),
    Interval: makeClass("Interval", ctx),
    Memory: makeClass("Memory", ctx),
    Recent: makeClass("Recent", ctx),
    State: makeClass("State", ctx),
    Session: makeClass("Session", ctx),
    Dictionary: makeClass("Dictionary", ctx),
  };
}

/** The persistd domain (the dump folder name) of each backtest-kit domain. */
export const DOMAINS: Readonly<Record<DomainName, string>> = Object.fromEntries(
  DOMAIN_NAMES.map((name) => [name, name.toLowerCase()]),
) as Record<DomainName, string>;
