// Transport layer: one HTTP client for the persistd v1 API, with the package's one retry policy.
//
// Requests go through node:http(s) on a keep-alive agent: each call reuses an open connection and
// sends its headers and body in one write. Node's fetch does the same job for about twice the CPU
// per request, which a bot writing on every tick pays (docs/performance.md of persistd).

import * as http from "node:http";
import * as https from "node:https";

import { CONTRACT } from "./contract.js";

/** Connection and retry settings; every field is optional (see `resolveOptions`). */
export interface ClientOptions {
  /** Service base URL. Default: `PERSISTD_URL`, else `http://127.0.0.1:8000`. */
  url?: string;
  /** Bearer token. Default: `PERSISTD_TOKEN` (no header when unset). */
  token?: string;
  /** Namespace of this bot. Default: `PERSISTD_NAMESPACE`, else `default`. */
  namespace?: string;
  /** Give up retrying one call after this many ms, then throw. Default 60000. */
  retryDeadlineMs?: number;
  /** Timeout of one HTTP attempt in ms (a timed-out attempt is retried). Default 15000. */
  requestTimeoutMs?: number;
  /** First backoff step in ms; doubles per attempt, with full jitter. Default 100. */
  backoffBaseMs?: number;
  /** Backoff cap in ms. Default 5000. */
  backoffMaxMs?: number;
  /** A fetch to send requests with instead of node:http (tests, instrumentation). */
  fetch?: typeof fetch;
  /** The lease whose fence every write in its namespace carries (lease.ts; `setup({ lease })`). */
  fence?: Fence;
}

/** What a client needs of a lease to fence its writes (implemented by lease.ts). */
export interface Fence {
  /** The namespace of the lease: writes to other namespaces are not fenced. */
  readonly namespace: string;
  /** The `Persistd-Fence` header value; waits for the acquisition, throws once the lease is lost. */
  header(): Promise<string>;
  /** A write was answered `fenced`: the lease is lost; the error to throw instead. */
  refused(error: PersistdError): PersistdError;
}

export interface ResolvedClientOptions {
  url: string;
  token: string | undefined;
  namespace: string;
  retryDeadlineMs: number;
  requestTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  fetch: typeof fetch | undefined;
  fence: Fence | undefined;
}

// The service's own rule (client/contract.json): a whole name must match its pattern.
const SLUG = new RegExp(`^(?:${CONTRACT.names.slug.pattern})$`);

function env(name: string): string | undefined {
  const value = typeof process !== "undefined" ? process.env[name] : undefined;
  return value === undefined || value === "" ? undefined : value;
}

/** Fill in defaults from the environment (`PERSISTD_URL`, `PERSISTD_TOKEN`, `PERSISTD_NAMESPACE`). */
export function resolveOptions(options: ClientOptions = {}): ResolvedClientOptions {
  const url = (options.url ?? env("PERSISTD_URL") ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
  const namespace = options.namespace ?? env("PERSISTD_NAMESPACE") ?? "default";
  checkSlug("namespace", namespace);
  if (!/^https?:\/\//.test(url)) {
    throw new Error(`persistd url ${JSON.stringify(url)} must start with http:// or https://`);
  }
  const token = (options.token ?? env("PERSISTD_TOKEN")) || undefined;
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    throw new Error("persistd token must be printable ASCII without spaces (as `persistd token create` prints it)");
  }
  return {
    url,
    token,
    namespace,
    retryDeadlineMs: options.retryDeadlineMs ?? 60_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
    backoffBaseMs: options.backoffBaseMs ?? 100,
    backoffMaxMs: options.backoffMaxMs ?? 5_000,
    fetch: options.fetch,
    fence: options.fence,
  };
}

/** Namespaces and domains follow the service's slug rule; fail at setup, not at the first write. */
export function checkSlug(kind: string, value: string): string {
  if (!SLUG.test(value)) {
    throw new Error(`persistd ${kind} ${JSON.stringify(value)} is invalid: it must be ${CONTRACT.names.slug.rule}`);
  }
  return value;
}

/** A non-retryable answer from the service (4xx, 500), with its problem+json fields. */
export class PersistdError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
    readonly detail: string | undefined,
  ) {
    super(message);
    this.name = "PersistdError";
  }
}

/**
 * The service stayed unreachable (network errors, 502/503/504) until the retry deadline, or a
 * conditional write failed in a way that leaves its outcome unknown (it is not repeated).
 */
export class PersistdUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PersistdUnavailableError";
  }
}

/** A stored record with its version (the ETag). */
export interface Stored<T = unknown> {
  value: T;
  version: number;
}

/** One record of a listing or a batch read. */
export interface Item<T = unknown> {
  key: string;
  value: T;
  version: number;
  updated_at: string;
}

export interface WriteResult {
  key: string;
  version: number | null;
  written: boolean;
}

/** Write conditions: `ifMatch` a version, or `ifNoneMatch` (create only). */
export interface Condition {
  ifMatch?: number;
  ifNoneMatch?: boolean;
}

/** The service's batch limits: a running service publishes its own at GET /v1/_contract. */
export interface Limits {
  max_value_bytes: number;
  max_batch_items: number;
  max_batch_bytes: number;
}

/** The largest page of a listing (GET …/records?limit=). */
const PAGE = CONTRACT.listing.max_page;
// Room in a batch body for what is not an item: `{"items":[...],"mode":"insert_if_absent"}`.
const BATCH_OVERHEAD = 64;

/** @internal The statuses retried (502/503/504, the contract's `retry.statuses`); also used by watch (history.ts). */
export const RETRY_STATUS: ReadonlySet<number> = new Set(CONTRACT.retry.statuses);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** @internal The wait before retry `attempt` (0-based): capped exponential backoff with full jitter. */
export function backoffMs(options: Pick<ResolvedClientOptions, "backoffBaseMs" | "backoffMaxMs">, attempt: number): number {
  return Math.random() * Math.min(options.backoffMaxMs, options.backoffBaseMs * 2 ** Math.min(attempt, 30));
}

/** @internal A Retry-After header in ms (seconds or an HTTP date); undefined when absent or unreadable. */
export function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** An HTTP answer, read whole (values are bounded by the service's size limits). */
export interface Reply {
  status: number;
  header(name: string): string | null;
  text: string;
}

interface Outgoing {
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  timeoutMs: number;
}

// Idle connections are closed after 4 s, before the service's 5 s keep-alive timeout, so a call
// does not land on a connection the service is closing. (An active call is not affected.)
const AGENTS = {
  "http:": new http.Agent({ keepAlive: true, timeout: 4_000 }),
  "https:": new https.Agent({ keepAlive: true, timeout: 4_000 }),
};

/** Where requests go: the service URL parsed once per client, not once per call. */
interface Target {
  secure: boolean;
  hostname: string;
  port: string;
  basePath: string;
}

function targetOf(url: string): Target {
  const parsed = new URL(url);
  return {
    secure: parsed.protocol === "https:",
    hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), // an IPv6 literal without brackets
    port: parsed.port,
    basePath: parsed.pathname.replace(/\/+$/, ""),
  };
}

/** One request over node:http(s) on the keep-alive agent; rejects on network errors and timeout.
 *
 * The timeout is a plain timer rather than an AbortSignal, which costs a bot more CPU per call
 * than the rest of the request setup (docs/performance.md of persistd). */
function nodeRequest(target: Target, path: string, out: Outgoing): Promise<Reply> {
  const headers = { ...out.headers };
  if (out.body !== undefined) headers["Content-Length"] = String(Buffer.byteLength(out.body));
  return new Promise((resolve, reject) => {
    let timedOut: DOMException | undefined;
    const fail = (error: unknown) => {
      clearTimeout(timer);
      reject(timedOut ?? error);
    };
    const options = {
      method: out.method,
      hostname: target.hostname,
      port: target.port,
      path: target.basePath + path,
      headers,
      agent: target.secure ? AGENTS["https:"] : AGENTS["http:"],
    };
    const req = (target.secure ? https : http).request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", fail);
      res.on("close", () => {
        if (!res.complete) fail(new Error("the connection closed before the whole answer arrived"));
      });
      res.on("end", () => {
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          header: (name) => {
            const value = res.headers[name.toLowerCase()];
            return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
          },
          text: Buffer.concat(chunks).toString("utf8"),
        });
      });
    });
    const timer = setTimeout(() => {
      timedOut = new DOMException(`no answer within ${out.timeoutMs} ms`, "TimeoutError");
      req.destroy(timedOut);
    }, out.timeoutMs);
    req.on("error", fail);
    req.end(out.body);
  });
}

/** The same request through a fetch given in the options. */
async function fetchRequest(fetchImpl: typeof fetch, url: string, out: Outgoing): Promise<Reply> {
  const res = await fetchImpl(url, {
    method: out.method,
    headers: out.headers,
    body: out.body,
    signal: AbortSignal.timeout(out.timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, header: (name) => res.headers.get(name), text };
}

export interface Request {
  method: "GET" | "HEAD" | "PUT" | "POST" | "DELETE";
  /** A record write: it carries the fence of the client's lease, if any. */
  write?: boolean;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Statuses returned to the caller instead of thrown (besides 2xx). */
  accept?: readonly number[];
  /**
   * A conditional write (If-Match, If-None-Match): repeated only after a refused connection,
   * which proves the request never arrived (the contract's `retry.conditional_writes`).
   */
  conditional?: boolean;
}

/** A connection the service refused: the request was never sent, so repeating it is safe. */
function refused(error: unknown): boolean {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === "ECONNREFUSED") return true;
  }
  return false;
}

/** Split `items` into runs within the batch limits (count, and bytes as JSON). */
function splitBatch<T>(items: T[], limits: Limits): T[][] {
  const out: T[][] = [];
  let part: T[] = [];
  let bytes = BATCH_OVERHEAD;
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (part.length > 0 && (part.length >= limits.max_batch_items || bytes + size > limits.max_batch_bytes)) {
      out.push(part);
      part = [];
      bytes = BATCH_OVERHEAD;
    }
    part.push(item);
    bytes += size;
  }
  if (part.length > 0) out.push(part);
  return out;
}

/** The persistd v1 API, one method per endpoint; every call retries per `ClientOptions`. */
export class PersistdClient {
  readonly options: ResolvedClientOptions;
  // The service's limits, asked once and shared by the clients of other namespaces.
  private readonly shared: { limits?: Promise<Limits> };

  private readonly target: Target;

  constructor(options: ClientOptions | ResolvedClientOptions = {}, shared: { limits?: Promise<Limits> } = {}) {
    this.options = resolveOptions(options);
    this.shared = shared;
    this.target = targetOf(this.options.url);
  }

  get namespace(): string {
    return this.options.namespace;
  }

  /** A client with the same connection settings in another namespace. */
  withNamespace(namespace: string): PersistdClient {
    return namespace === this.namespace
      ? this
      : new PersistdClient({ ...this.options, namespace, fence: undefined }, this.shared);
  }

  private entityPath(domain: string, entity: string): string {
    return `/v1/${this.namespace}/${domain}/${encodeURIComponent(entity)}`;
  }

  private recordPath(domain: string, entity: string, key: string): string {
    return `${this.entityPath(domain, entity)}/records/${encodeURIComponent(key)}`;
  }

  /** Read one record; `undefined` when absent (JSON `null` is a value). */
  async get<T = unknown>(domain: string, entity: string, key: string): Promise<Stored<T> | undefined> {
    const res = await this.send({ method: "GET", path: this.recordPath(domain, entity, key), accept: [404] });
    if (res.status === 404) return undefined;
    return { value: JSON.parse(res.text) as T, version: etagVersion(res) };
  }

  /** Whether a record exists. */
  async head(domain: string, entity: string, key: string): Promise<boolean> {
    const res = await this.send({ method: "HEAD", path: this.recordPath(domain, entity, key), accept: [404] });
    return res.status !== 404;
  }

  /** Write one record (whole-document replace); the new version, or `null` on a failed condition. */
  async put(
    domain: string,
    entity: string,
    key: string,
    value: unknown,
    condition: Condition = {},
  ): Promise<number | null> {
    const headers: Record<string, string> = {};
    if (condition.ifMatch !== undefined) headers["If-Match"] = `"${condition.ifMatch}"`;
    if (condition.ifNoneMatch) headers["If-None-Match"] = "*";
    const conditional = Object.keys(headers).length > 0;
    const res = await this.send({
      method: "PUT",
      path: this.recordPath(domain, entity, key),
      body: value === undefined ? null : value,
      headers,
      write: true,
      accept: conditional ? [412] : [],
      conditional,
    });
    if (res.status === 412) return null;
    return (JSON.parse(res.text) as { version: number }).version;
  }

  /** Delete one record; false when it was absent. */
  async delete(domain: string, entity: string, key: string): Promise<boolean> {
    const res = await this.send({ method: "DELETE", path: this.recordPath(domain, entity, key), accept: [404], write: true });
    return res.status !== 404;
  }

  /** The seed's waitForInit: checks reachability and access; returns the entity's key count. */
  async init(domain: string, entity: string, initial = true): Promise<number> {
    const res = await this.send({
      method: "POST",
      path: `${this.entityPath(domain, entity)}/init`,
      body: { initial },
    });
    return (JSON.parse(res.text) as { keys: number }).keys;
  }

  /** One page of keys in byte order. */
  keysPage(
    domain: string,
    entity: string,
    cursor?: string | null,
    limit = PAGE,
  ): Promise<{ keys: string[]; next_cursor: string | null }> {
    return this.listRecords(domain, entity, { limit: String(limit), ...(cursor ? { cursor } : {}) });
  }

  /** One page of records in key byte order. */
  itemsPage<T = unknown>(
    domain: string,
    entity: string,
    cursor?: string | null,
    limit = PAGE,
  ): Promise<{ items: Item<T>[]; next_cursor: string | null }> {
    const query = { limit: String(limit), values: "true", ...(cursor ? { cursor } : {}) };
    return this.listRecords(domain, entity, query);
  }

  /** Every key of an entity, page by page. */
  async *keys(domain: string, entity: string): AsyncGenerator<string> {
    for await (const page of pages((cursor) => this.keysPage(domain, entity, cursor))) yield* page.keys;
  }

  /** Every record of an entity, page by page. */
  async *items<T = unknown>(domain: string, entity: string): AsyncGenerator<Item<T>> {
    for await (const page of pages((cursor) => this.itemsPage<T>(domain, entity, cursor))) yield* page.items;
  }

  /** The `count` most recently written records, oldest first, in one request. */
  async newest<T = unknown>(domain: string, entity: string, count: number): Promise<Item<T>[]> {
    const page = await this.listRecords<{ items: Item<T>[] }>(domain, entity, { newest: String(count) });
    return page.items;
  }

  /** GET the entity's records listing with this query, parsed. */
  private async listRecords<T>(domain: string, entity: string, query: Record<string, string>): Promise<T> {
    const path = `${this.entityPath(domain, entity)}/records?${new URLSearchParams(query)}`;
    return JSON.parse((await this.send({ method: "GET", path })).text) as T;
  }

  /**
   * The running service's batch limits, asked once (GET /v1/_contract). A service older than
   * that endpoint answers 404: its limits are the defaults.
   */
  limits(): Promise<Limits> {
    this.shared.limits ??= this.send({ method: "GET", path: "/v1/_contract", accept: [404] }).then(
      (res) => (res.status === 404 ? { ...CONTRACT.limits } : (JSON.parse(res.text) as { limits: Limits }).limits),
      (error: unknown) => {
        this.shared.limits = undefined; // not cached: the next batch asks again
        throw error;
      },
    );
    return this.shared.limits;
  }

  /**
   * Run `send` over runs of `items` within the service's limits, in order. A 413 (the limits
   * were lowered since they were read) halves the run and tries again.
   */
  private async inBatches<T, R>(items: T[], send: (part: T[]) => Promise<R[]>): Promise<R[]> {
    const out: R[] = [];
    if (items.length === 0) return out;
    const attempt = async (part: T[]): Promise<void> => {
      try {
        out.push(...(await send(part)));
      } catch (error) {
        if (!(error instanceof PersistdError && error.status === 413 && part.length > 1)) throw error;
        const half = Math.ceil(part.length / 2);
        await attempt(part.slice(0, half));
        await attempt(part.slice(half));
      }
    };
    for (const part of splitBatch(items, await this.limits())) await attempt(part);
    return out;
  }

  /** Many records in request order; any number of keys (sent in batches within the limits). */
  async batchGet<T = unknown>(
    domain: string,
    entity: string,
    keys: string[],
  ): Promise<{ items: Item<T>[]; missing: string[] }> {
    const missing: string[] = [];
    const items = await this.inBatches(keys, async (part) => {
      const res = await this.send({
        method: "POST",
        path: `${this.entityPath(domain, entity)}/batch-get`,
        body: { keys: part },
      });
      const page = JSON.parse(res.text) as { items: Item<T>[]; missing: string[] };
      missing.push(...page.missing);
      return page.items;
    });
    return { items, missing };
  }

  /**
   * Write many records; any number (sent in batches within the limits, each batch atomic).
   */
  async batchPut(
    domain: string,
    entity: string,
    items: Array<{ key: string; value: unknown }>,
    mode: "upsert" | "insert_if_absent" = "upsert",
  ): Promise<WriteResult[]> {
    return this.inBatches(items, async (part) => {
      const res = await this.send({
        method: "POST",
        path: `${this.entityPath(domain, entity)}/batch-put`,
        body: { items: part, mode },
        write: true,
      });
      return (JSON.parse(res.text) as { items: WriteResult[] }).items;
    });
  }

  /**
   * Send with the retry policy: network errors, timeouts and 502/503/504 are retried with capped
   * exponential backoff and full jitter (at least Retry-After when the service sends it) until
   * the deadline; every other non-2xx answer outside `accept` is thrown as a PersistdError.
   * Repeating a plain write leaves the same state (whole-document PUT, batch upsert or
   * insert-if-absent). A conditional write is different: after a lost answer it may have been
   * applied, and a repeat would report its own write as a conflict (a read-modify-write caller
   * would then apply its change twice), so it is repeated only after a refused connection and
   * otherwise fails with PersistdUnavailableError: the outcome is unknown, re-read.
   */
  /** @internal One request with retries; also used by the history methods (history.ts) and the lease (lease.ts). */
  async send(req: Request): Promise<Reply> {
    const { url, token, retryDeadlineMs, requestTimeoutMs } = this.options;
    const fetchImpl = this.options.fetch;
    const headers: Record<string, string> = { Accept: "application/json", ...req.headers };
    if (token) headers["Authorization"] = `Bearer ${token}`;
    const fence = req.write && this.options.fence?.namespace === this.namespace ? this.options.fence : undefined;
    if (fence) headers["Persistd-Fence"] = await fence.header();
    let body: string | undefined;
    if (req.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(req.body);
    }
    const deadline = Date.now() + retryDeadlineMs;
    let lastProblem = "";
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      let waitAtLeast = 0;
      try {
        const out = { method: req.method, headers, body, timeoutMs: requestTimeoutMs };
        const res = fetchImpl
          ? await fetchRequest(fetchImpl, url + req.path, out)
          : await nodeRequest(this.target, req.path, out);
        if ((res.status >= 200 && res.status < 300) || req.accept?.includes(res.status)) return res;
        if (!RETRY_STATUS.has(res.status)) {
          const error = problem(req, res);
          throw fence && error.code === "fenced" ? fence.refused(error) : error;
        }
        if (req.conditional) throw unknownOutcome(req, `HTTP ${res.status}`);
        waitAtLeast = retryAfterMs(res.header("retry-after")) ?? 0;
        lastProblem = `HTTP ${res.status}`;
        lastError = undefined;
      } catch (error) {
        if (error instanceof PersistdError || error instanceof PersistdUnavailableError) throw error;
        lastProblem = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        lastError = error;
        if (req.conditional && !refused(error)) throw unknownOutcome(req, lastProblem, error);
      }
      const delay = Math.max(backoffMs(this.options, attempt), waitAtLeast);
      if (Date.now() + delay > deadline) {
        throw new PersistdUnavailableError(
          `persistd ${req.method} ${req.path} failed after ${attempt + 1} attempts in ` +
            `${retryDeadlineMs} ms: ${lastProblem}`,
          { cause: lastError },
        );
      }
      await sleep(delay);
    }
  }
}

/** Every page of a listing, following next_cursor from the first page to the last. */
async function* pages<P extends { next_cursor: string | null }>(
  fetchPage: (cursor: string | null) => Promise<P>,
): AsyncGenerator<P> {
  let cursor: string | null = null;
  do {
    const page: P = await fetchPage(cursor);
    yield page;
    cursor = page.next_cursor;
  } while (cursor);
}

export function etagVersion(res: Reply): number {
  const etag = res.header("etag");
  const match = etag ? /^(?:W\/)?"(\d+)"$/.exec(etag) : null;
  if (!match) throw new Error(`persistd answered without a version ETag (got ${etag})`);
  return Number(match[1]);
}

function unknownOutcome(req: Request, what: string, cause?: unknown): PersistdUnavailableError {
  return new PersistdUnavailableError(
    `persistd ${req.method} ${req.path} (conditional) failed with ${what}; it may have been applied ` +
      `and is not repeated: re-read before writing again`,
    { cause },
  );
}

/** @internal A non-retryable answer as a PersistdError; also used by watch (history.ts). */
export function problem(req: Pick<Request, "method" | "path">, res: Reply): PersistdError {
  let code: string | undefined;
  let detail: string | undefined;
  const text = res.text;
  try {
    const body = JSON.parse(text) as { code?: string; detail?: string; title?: string };
    code = body.code;
    detail = body.detail ?? body.title;
  } catch {
    detail = text.slice(0, 500) || undefined;
  }
  return new PersistdError(
    `persistd ${req.method} ${req.path} answered ${res.status}${code ? ` ${code}` : ""}` +
      `${detail ? `: ${detail}` : ""}`,
    res.status,
    code,
    detail,
  );
}
