// Registration layer: `install()` puts the classes into a backtest-kit module's hooks and makes
// its opt-in calls. It takes the module as an argument, so it works without backtest-kit installed.

import { createAdapters } from "./adapters.js";
import { PersistBase } from "./base.js";
import { Lease, type LeaseOptions } from "./lease.js";
import type { AdapterOptions } from "./options.js";
import { DOMAIN_NAMES, OPTIONAL_DOMAIN_NAMES, type DomainName, type PersistdAdapters } from "./types.js";

/** backtest-kit's own switches that decide whether these domains reach any backend (§8). */
export interface OptIns {
  /** `Storage.enable()`: live signal rows are persisted (backtest-kit keeps them in memory otherwise). */
  storage?: boolean;
  /** `NotificationLive.usePersist()` and `Notification.enable()`: live notifications are persisted. */
  notifications?: boolean;
  /** `Log.usePersist()`: the bot's `Log.*` lines are persisted. */
  log?: boolean;
}

/** Options of `setup()`: the adapter options, which domains to register, and opt-ins. */
export interface SetupOptions extends AdapterOptions {
  /** Register only these domains (default all; Dictionary only where backtest-kit has it). */
  domains?: DomainName[];
  /**
   * Make backtest-kit's opt-in calls too, so Storage, Notification and Log reach persistd:
   * `true` for all three, or some of them. Default none (backtest-kit's own defaults).
   */
  optIn?: boolean | OptIns;
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

function call(kit: BacktestKitModule, object: string, method: string): void {
  const target = kit[object];
  if (typeof target?.[method] !== "function") {
    throw new Error(`persistd: this backtest-kit has no ${object}.${method}() to opt in with`);
  }
  target[method]();
}

/** backtest-kit's opt-in calls for the chosen domains. */
function optIn(kit: BacktestKitModule, choice: boolean | OptIns | undefined): void {
  const all = choice === true;
  const some: OptIns = typeof choice === "object" ? choice : {};
  if (all || some.storage) call(kit, "Storage", "enable");
  if (all || some.notifications) {
    call(kit, "NotificationLive", "usePersist");
    call(kit, "Notification", "enable");
  }
  if (all || some.log) call(kit, "Log", "usePersist");
}

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
    if (utils === undefined && OPTIONAL_DOMAIN_NAMES.includes(name)) continue; // an older backtest-kit
    const hook = utils?.[`usePersist${name}Adapter`];
    if (typeof hook !== "function") {
      throw new Error(`persistd: this backtest-kit has no Persist${name}Adapter.usePersist${name}Adapter`);
    }
    hook.call(utils, adapters[name]);
  }
  PersistBase.configure(options);
  optIn(kit, options.optIn);
  return adapters;
}
