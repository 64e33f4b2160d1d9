// Package core: everything but `setup()`, usable without backtest-kit installed.

export { createAdapters, DOMAINS, type AdapterOptions } from "./adapters.js";
export { createPersistBase, PersistBase, type EntityId } from "./base.js";
export {
  MAX_BATCH,
  PersistdClient,
  PersistdError,
  PersistdUnavailableError,
  resolveOptions,
  type ClientOptions,
  type Condition,
  type Item,
  type ResolvedClientOptions,
  type Stored,
  type WriteResult,
} from "./http.js";
import "./history.js";
export type { Change, ChangesPage, HistoryPage, Restored, Scope, Version, WatchOptions } from "./history.js";
export { addressOf, addressOfBase, addressOfDumpPath, DUMP_FOLDERS, dumpPath, type Address } from "./mapping.js";
export * from "./types.js";
