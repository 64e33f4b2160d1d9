// Package core: everything but `setup()`, usable without backtest-kit installed.

export { createAdapters, DOMAINS } from "./adapters.js";
export { CONTRACT } from "./contract.js";
export type { AdapterOptions } from "./options.js";
export { createPersistBase, PersistBase, type EntityId } from "./base.js";
export {
  checkSlug,
  PersistdClient,
  PersistdError,
  PersistdUnavailableError,
  resolveOptions,
  type ClientOptions,
  type Condition,
  type Fence,
  type Item,
  type Limits,
  type ResolvedClientOptions,
  type Stored,
  type WriteResult,
} from "./http.js";
export { Lease, PersistdFencedError, PersistdLeaseHeldError, type LeaseOptions } from "./lease.js";
export { install, ready, type BacktestKitModule, type OptIns, type SetupOptions } from "./install.js";
import "./history.js";
export type { Change, ChangesPage, HistoryPage, Restored, Scope, Version, WatchOptions } from "./history.js";
export { addressOf, addressOfBase, addressOfDumpPath, DUMP_FOLDERS, dumpPath, type Address } from "./mapping.js";
export * from "./types.js";
