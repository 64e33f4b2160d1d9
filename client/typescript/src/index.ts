// Package entry: `setup()` registers the persistd adapters with the backtest-kit it resolves.

import * as backtestKit from "backtest-kit";

import { install, type BacktestKitModule, type SetupOptions } from "./install.js";
import type { PersistdAdapters } from "./types.js";

export * from "./core.js";

/**
 * Register persistd for every backtest-kit domain (or `options.domains`):
 * `setup({ url, token, namespace })`; each option defaults to PERSISTD_URL, PERSISTD_TOKEN,
 * PERSISTD_NAMESPACE. `optIn: true` also turns on backtest-kit's persisted storage,
 * notifications and log.
 */
export function setup(options: SetupOptions = {}): PersistdAdapters {
  return install(backtestKit as BacktestKitModule, options);
}
