// Package entry: `setup()` registers the 16 persistd adapters with backtest-kit.

import * as backtestKit from "backtest-kit";

import { createAdapters, type AdapterOptions } from "./adapters.js";
import { PersistBase } from "./base.js";
import { Lease, type LeaseOptions } from "./lease.js";
import { DOMAIN_NAMES, type DomainName, type PersistdAdapters } from "./types.js";

export * from "./core.js";

/** Options of `setup()`: the adapter options plus which domains to register (default all 16). */
export interface SetupOptions extends AdapterOptions {
  domains?: DomainName[];
  /** Hold a lease for this bot: one live instance, and a zombie's writes refused (`ready()`). */
  lease?: LeaseOptions;
}

let lease: Lease | undefined;

/**
 * With `setup({ lease })`: resolves with the lease once it is acquired (rejects with
 * PersistdLeaseHeldError naming the holder after `waitMs`). Await it before starting the bot;
 * writes made earlier wait for the acquisition too. Without a lease it resolves undefined.
 */
export async function ready(): Promise<Lease | undefined> {
  if (lease) await lease.acquire();
  return lease;
}

/** The part of backtest-kit `install()` uses: `Persist<X>Adapter.usePersist<X>Adapter(Ctor)`. */
export type BacktestKitModule = Record<string, any>;

/**
 * Register persistd classes with a backtest-kit module (the one your bot imports). Returns the
 * classes. `setup()` calls this with the `backtest-kit` this package resolves.
 */
export function install(kit: BacktestKitModule, options: SetupOptions = {}): PersistdAdapters {
  const signalDefaults =
    options.signalDefaults ??
    (typeof kit.getConfig === "function"
      ? () => {
          const config = kit.getConfig() as Record<string, unknown>;
          return {
            multiplier: config.CC_SIGNAL_LEVERAGE_MULTIPLIER as number | undefined,
            isolated: config.CC_SIGNAL_ISOLATED_MARGIN as boolean | undefined,
          };
        }
      : undefined);
  if (options.lease) {
    lease = new Lease(options, options.lease);
    lease.acquire().catch(() => undefined); // reported by ready() and by every write
    options = { ...options, fence: lease };
  }
  const adapters = createAdapters({ ...options, signalDefaults });
  const domains = options.domains ?? DOMAIN_NAMES;
  for (const name of domains) {
    const utils = kit[`Persist${name}Adapter`];
    const hook = utils?.[`usePersist${name}Adapter`];
    if (typeof hook !== "function") {
      throw new Error(`persistd: this backtest-kit has no Persist${name}Adapter.usePersist${name}Adapter`);
    }
    hook.call(utils, adapters[name]);
  }
  PersistBase.configure(options);
  return adapters;
}

/**
 * Register persistd for all 16 backtest-kit domains (or `options.domains`):
 * `setup({ url, token, namespace })`; each option defaults to PERSISTD_URL, PERSISTD_TOKEN,
 * PERSISTD_NAMESPACE.
 */
export function setup(options: SetupOptions = {}): PersistdAdapters {
  return install(backtestKit as BacktestKitModule, options);
}
