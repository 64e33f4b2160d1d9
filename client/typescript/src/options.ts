// Options layer: what `createAdapters` and `setup` accept, apart from the generated classes.

import type { ClientOptions } from "./http.js";
import type { DomainName } from "./types.js";

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
