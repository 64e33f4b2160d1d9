// Lease layer: one live instance per bot. A lease is acquired before the bot runs, renewed in
// the background, and its fencing token goes with every write, so a paused or partitioned copy
// that lost the lease cannot overwrite its successor's state (docs/leases.md of persistd).
// The background renewals of every lease in the process with the same service URL and token go
// together: one `POST /v1/_leases/renew` per tick (Renewer).

import { hostname } from "node:os";
import { randomBytes } from "node:crypto";

import { CONTRACT } from "./contract.js";
import { checkSlug, PersistdClient, PersistdError, type ClientOptions, type Fence, type Reply } from "./http.js";

/** Leases in one `POST /v1/_leases/renew` (the service's limit). */
const MAX_RENEW_LEASES = CONTRACT.leases.max_renew_items;

/** Options of `setup({ lease })` and `new Lease()`. */
export interface LeaseOptions {
  /** Lease name (the slug rule of a namespace). Default: the namespace. */
  name?: string;
  /** Time to live in ms (100 to 3600000); renewed every `ttlMs / 3`. Default 10000. */
  ttlMs?: number;
  /** How long to wait for a live holder to go away (a crashed predecessor's TTL). Default 0. */
  waitMs?: number;
  /** Called once when the lease is lost. Default: log the error and `process.exit(1)`. */
  onLost?: (error: PersistdFencedError) => void;
  /** This process's holder id. Default `<hostname>:<pid>:<random>`, unique per process. */
  holder?: string;
}

/**
 * The lease is lost (a renewal was refused, or a write was answered `fenced`): this process is no
 * longer the owner. Every later write throws it. `code` is the service's: `fenced` or `lease_lost`.
 */
export class PersistdFencedError extends PersistdError {
  constructor(
    message: string,
    code: string,
    readonly lease: string,
    readonly token: number | undefined,
  ) {
    super(message, 409, code, message);
    this.name = "PersistdFencedError";
  }
}

/** Another holder kept the lease for all of `waitMs`. */
export class PersistdLeaseHeldError extends PersistdError {
  constructor(
    message: string,
    readonly lease: string,
    readonly holder: string | null,
    readonly expiresAt: string | null,
  ) {
    super(message, 409, "lease_held", message);
    this.name = "PersistdLeaseHeldError";
  }
}

interface LeaseBody {
  name: string;
  holder: string | null;
  token: number;
  ttl_ms: number;
  expires_at: string;
  held: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One item of the batch renewal's answer: the lease, or why it was not renewed. */
interface RenewedItem {
  namespace: string;
  name: string;
  error?: { code: string; detail: string };
}

/** What the renewer needs of a lease. */
interface Renewal {
  readonly namespace: string;
  readonly name: string;
  readonly periodMs: number;
  readonly client: PersistdClient;
  token(): number | undefined;
  lose(code: string, why: string): void;
}

/**
 * The background renewals of every lease of this process with one service URL and token. A lease
 * is due a third of its TTL after its last renewal; one unref'd timer fires at the earliest due
 * time and renews, in one request, every lease due within half of its own period, so leases
 * acquired at different moments fall into step after their first renewal, and each is renewed
 * at a third of its TTL at the latest. The request goes through the client of the batch's
 * shortest-lived lease (whose retries give up within half its TTL).
 */
class Renewer {
  private static readonly all = new Map<string, Renewer>();
  private readonly due = new Map<Renewal, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sending = false;

  private constructor(private readonly key: string) {}

  /** Renew `lease` from now on, with the other leases of its client's URL and token. */
  static add(lease: Renewal): Renewer {
    const { url, token } = lease.client.options;
    const key = `${url} ${token ?? ""}`;
    let renewer = Renewer.all.get(key);
    if (!renewer) Renewer.all.set(key, (renewer = new Renewer(key)));
    renewer.due.set(lease, Date.now() + lease.periodMs);
    renewer.schedule();
    return renewer;
  }

  remove(lease: Renewal): void {
    this.due.delete(lease);
    if (this.due.size === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      Renewer.all.delete(this.key);
    } else {
      this.schedule();
    }
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.sending || this.due.size === 0) return; // tick() schedules once its requests are done
    const first = Math.min(...this.due.values());
    this.timer = setTimeout(() => void this.tick(), Math.max(0, first - Date.now()));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const due = [...this.due].filter(([lease, at]) => at <= now + lease.periodMs / 2).map(([lease]) => lease);
    for (const lease of due) this.due.set(lease, now + lease.periodMs);
    due.sort((a, b) => a.periodMs - b.periodMs);
    this.sending = true;
    try {
      for (let i = 0; i < due.length; i += MAX_RENEW_LEASES) await this.renew(due.slice(i, i + MAX_RENEW_LEASES));
    } finally {
      this.sending = false;
      this.schedule();
    }
  }

  private async renew(leases: Renewal[]): Promise<void> {
    const sent = leases.map((lease) => ({ lease, token: lease.token() })).filter((s) => s.token !== undefined);
    if (sent.length === 0) return;
    let items: RenewedItem[];
    try {
      const res = await sent[0].lease.client.send({
        method: "POST",
        path: "/v1/_leases/renew",
        body: { leases: sent.map(({ lease, token }) => ({ namespace: lease.namespace, name: lease.name, token })) },
      });
      items = (JSON.parse(res.text) as { leases: RenewedItem[] }).leases;
    } catch {
      return; // unreachable for now: the service judges expiry; the next tick retries
    }
    // A refusal loses the lease, as a refused single renewal does (unless it moved on meanwhile).
    sent.forEach(({ lease, token }, i) => {
      const error = items[i]?.error;
      if (error && lease.token() === token) lease.lose(error.code, error.detail);
    });
  }
}

function defaultOnLost(error: PersistdFencedError): void {
  console.error(`persistd: ${error.message}; this process is no longer the owner and stops`);
  process.exit(1);
}

/** A lease of one namespace, held by this process: acquire, background renewal, fence, release. */
export class Lease implements Fence {
  readonly name: string;
  readonly holder: string;
  readonly ttlMs: number;
  readonly waitMs: number;
  private readonly client: PersistdClient;
  private readonly onLost: (error: PersistdFencedError) => void;
  private acquiring: Promise<number> | undefined;
  private current: number | undefined;
  private lostError: PersistdFencedError | undefined;
  private renewer: Renewer | undefined;
  private renewing = false;
  private readonly renewal: Renewal;

  constructor(options: ClientOptions = {}, lease: LeaseOptions = {}) {
    this.ttlMs = lease.ttlMs ?? 10_000;
    this.waitMs = lease.waitMs ?? 0;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < 100 || this.ttlMs > 3_600_000) {
      throw new Error(`persistd lease ttlMs must be an integer from 100 to 3600000; got ${this.ttlMs}`);
    }
    // The lease's own calls are not fenced, and must give up within a TTL to be of any use.
    const within = Math.max(50, Math.floor(this.ttlMs / 2));
    this.client = new PersistdClient({ ...options, fence: undefined, retryDeadlineMs: within, requestTimeoutMs: within });
    this.name = checkSlug("lease name", lease.name ?? this.client.namespace);
    this.holder = lease.holder ?? `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
    this.onLost = lease.onLost ?? defaultOnLost;
    this.renewal = {
      namespace: this.namespace,
      name: this.name,
      periodMs: Math.max(30, Math.floor(this.ttlMs / 3)),
      client: this.client,
      token: () => this.current,
      lose: (code, why) => void this.lose(code, why),
    };
  }

  get namespace(): string {
    return this.client.namespace;
  }

  /** The fencing token of the current acquisition (undefined before it). */
  get token(): number | undefined {
    return this.current;
  }

  /** Whether the lease was lost. */
  get lost(): boolean {
    return this.lostError !== undefined;
  }

  private get path(): string {
    return `/v1/${this.namespace}/leases/${this.name}`;
  }

  /**
   * Acquire the lease (once; later calls share the first), waiting up to `waitMs` for a live
   * holder to let it go; rejects with PersistdLeaseHeldError naming the holder. Starts renewal.
   */
  acquire(): Promise<number> {
    this.acquiring ??= this.take();
    return this.acquiring;
  }

  private async take(): Promise<number> {
    const deadline = Date.now() + this.waitMs;
    const poll = Math.min(500, Math.max(50, Math.floor(this.ttlMs / 4)));
    for (;;) {
      const res = await this.client.send({
        method: "POST",
        path: this.path,
        body: { holder: this.holder, ttl_ms: this.ttlMs },
        accept: [409],
      });
      if (res.status !== 409) {
        this.current = (JSON.parse(res.text) as LeaseBody).token;
        this.renewer = Renewer.add(this.renewal);
        return this.current;
      }
      // Waits the whole of waitMs: a last attempt is made at the deadline itself.
      const left = deadline - Date.now();
      if (left <= 0) throw await this.heldError(res);
      await sleep(Math.min(poll, left));
    }
  }

  private async heldError(res: Reply): Promise<PersistdLeaseHeldError> {
    const detail = (JSON.parse(res.text) as { detail?: string }).detail ?? "";
    let lease: LeaseBody | undefined;
    try {
      lease = JSON.parse((await this.client.send({ method: "GET", path: this.path })).text) as LeaseBody;
    } catch {
      lease = undefined; // the detail still names the holder
    }
    const holder = lease?.holder ?? null;
    return new PersistdLeaseHeldError(
      `persistd lease ${this.namespace}/${this.name} is held by ${JSON.stringify(holder)} ` +
        `(after waiting ${this.waitMs} ms): ${detail}`,
      this.name,
      holder,
      lease?.expires_at ?? null,
    );
  }

  /**
   * Renew this lease now, by itself (PUT); a refusal loses the lease, an unreachable service is
   * left to the next renewal. The background renewals do not need it: they go in batches.
   */
  async renew(): Promise<void> {
    if (this.renewing || this.lostError || this.current === undefined) return;
    this.renewing = true;
    try {
      await this.client.send({ method: "PUT", path: this.path, body: { token: this.current } });
    } catch (error) {
      if (error instanceof PersistdError && (error.code === "lease_lost" || error.status === 404)) {
        this.lose(error.code ?? "lease_lost", error.detail ?? error.message);
      }
      // Anything else (unreachable for now): the service judges expiry; the next renewal retries.
    } finally {
      this.renewing = false;
    }
  }

  /** Mark the lease lost (onLost runs once); the error for this refusal. */
  private lose(code: string, why: string): PersistdFencedError {
    const error = new PersistdFencedError(
      `persistd lease ${this.namespace}/${this.name} (token ${this.current}) is lost: ${why}`,
      code,
      this.name,
      this.current,
    );
    if (!this.lostError) {
      this.lostError = error;
      this.stop();
      // After the refused write's caller has seen its error.
      setImmediate(() => this.onLost(error));
    }
    return error;
  }

  private stop(): void {
    this.renewer?.remove(this.renewal);
    this.renewer = undefined;
  }

  /** Fence: the header of a write; waits for the acquisition; throws once the lease is lost. */
  async header(): Promise<string> {
    const token = await this.acquire();
    if (this.lostError) throw this.lostError;
    return `${this.name}=${token}`;
  }

  /** Fence: a write was refused as `fenced`. */
  refused(error: PersistdError): PersistdError {
    return this.lose("fenced", error.detail ?? error.message);
  }

  /** Stop renewing and free the lease at once (a clean shutdown), so a successor need not wait. */
  async release(): Promise<void> {
    this.stop();
    const token = this.current;
    if (token === undefined || this.lostError) return;
    this.lostError = new PersistdFencedError(
      `persistd lease ${this.namespace}/${this.name} was released`,
      "lease_lost",
      this.name,
      token,
    );
    await this.client.send({ method: "DELETE", path: `${this.path}?token=${token}`, accept: [404, 409] });
  }
}
