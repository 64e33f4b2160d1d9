// Seed-form layer: `PersistBase(entityName, baseDir)`, backtest-kit's IPersistBase over persistd.

import { PersistdClient, type ClientOptions } from "./http.js";
import { addressOfBase } from "./mapping.js";

let defaultOptions: ClientOptions = {};
let defaultClient: PersistdClient | undefined;

function sharedClient(): PersistdClient {
  defaultClient ??= new PersistdClient(defaultOptions);
  return defaultClient;
}

/**
 * The seed's `waitForInit(initial)` for one entity: the first initial call makes the one request
 * (POST init); later calls share it, and a failed one is forgotten so the next call retries.
 */
export class InitOnce {
  private pending: Promise<void> | undefined;

  wait(initial: boolean, request: () => Promise<unknown>): Promise<void> {
    if (!this.pending && !initial) return Promise.resolve();
    this.pending ??= request().then(
      () => undefined,
      (error: unknown) => {
        this.pending = undefined;
        throw error;
      },
    );
    return this.pending;
  }
}

/** Entity ids as backtest-kit types them. */
export type EntityId = string | number;

/**
 * backtest-kit's `IPersistBase` (the seed's interface plus `keys()`) on persistd. The domain is
 * the last folder of `baseDir` (`./dump/data/signal/` → `signal`), the entity is `entityName`
 * and the key is the entity id, so `new PersistBase("BTCUSDT_s_e", "./dump/data/signal/")`
 * addresses the same records as the Signal adapter. Connection settings come from
 * `PersistBase.configure()` (which `setup()` calls) or the PERSISTD_* environment variables.
 */
export class PersistBase<EntityName extends string = string, Entity = unknown> {
  /** Set the connection settings of every PersistBase created without a client. */
  static configure(options: ClientOptions): void {
    defaultOptions = { ...options };
    defaultClient = undefined;
  }

  readonly domain: string;
  readonly entity: string;
  private readonly client: PersistdClient;
  private readonly init = new InitOnce();

  constructor(
    readonly entityName: EntityName,
    readonly baseDir: string = "./dump/data",
    client?: PersistdClient,
  ) {
    const address = addressOfBase(entityName, baseDir);
    this.domain = address.domain;
    this.entity = address.entity;
    this.client = client ?? sharedClient();
  }

  /** The first call with `initial` checks the service (POST init); later calls are cached no-ops. */
  waitForInit(initial: boolean): Promise<void> {
    return this.init.wait(initial, () => this.client.init(this.domain, this.entity, true));
  }

  /** The stored value; throws `Entity <name>:<id> not found` when absent. */
  async readValue<T = Entity>(entityId: EntityId): Promise<T> {
    const stored = await this.client.get<T>(this.domain, this.entity, String(entityId));
    if (stored === undefined) throw new Error(`Entity ${this.entityName}:${entityId} not found`);
    return stored.value;
  }

  /** Whether a value is stored under the id. */
  hasValue(entityId: EntityId): Promise<boolean> {
    return this.client.head(this.domain, this.entity, String(entityId));
  }

  /** Replace the whole value under the id (durable once this resolves). */
  async writeValue<T = Entity>(entityId: EntityId, entity: T): Promise<void> {
    await this.client.put(this.domain, this.entity, String(entityId), entity ?? null);
  }

  /** Every stored id, in byte order (the file version yields natural order; no caller relies on it). */
  async *keys(): AsyncGenerator<EntityId> {
    yield* this.client.keys(this.domain, this.entity);
  }
}

/** A PersistBase class bound to its own connection settings (e.g. another namespace). */
export function createPersistBase(options: ClientOptions): typeof PersistBase {
  const client = new PersistdClient(options);
  return class BoundPersistBase<EntityName extends string = string, Entity = unknown> extends PersistBase<
    EntityName,
    Entity
  > {
    constructor(entityName: EntityName, baseDir?: string) {
      super(entityName, baseDir, client);
    }
  };
}
