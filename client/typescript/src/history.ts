// History on PersistdClient: versions, history pages, the change feed, restore and watch.
// The methods are added to PersistdClient's prototype here (importing this module installs them).

import http from "node:http";
import https from "node:https";

import {
  backoffMs, etagVersion, PersistdClient, PersistdError, problem, RETRY_STATUS, retryAfterMs, type Item, type Stored,
} from "./http.js";

export interface Version<T = unknown> {
  seq: number;
  op: "put" | "delete";
  version: number;
  at: string;
  token_id: number | null;
  /** Only with `values: true`; null for a delete. */
  value?: T | null;
}

export interface HistoryPage<T = unknown> {
  items: Version<T>[];
  next_cursor: string | null;
}

export interface Change<T = unknown> {
  seq: number;
  namespace: string;
  domain: string;
  entity: string;
  key: string;
  version: number;
  op: "put" | "delete";
  value: T | null;
  at: string;
  token_id: number | null;
}

export interface ChangesPage<T = unknown> {
  items: Change<T>[];
  /** Pass as `since` for the next page. */
  next_since: number;
}

export interface Restored {
  puts: number;
  deletes: number;
  dry_run: boolean;
  changes?: { domain: string; entity: string; key: string; op: "put" | "delete"; value: unknown }[];
}

export interface Scope {
  domain?: string;
  entity?: string;
}

export interface WatchOptions extends Scope {
  /** Start after this seq; default: from now. */
  since?: number;
  /** Stops the watch (the iterator then ends). */
  signal?: AbortSignal;
  /**
   * A stream silent this long (no change, no heartbeat) is taken as dropped and reconnected.
   * Default 60000; the service sends a heartbeat every 15 s by default.
   */
  idleTimeoutMs?: number;
}

declare module "./http.js" {
  interface PersistdClient {
    /** One version of a record; `undefined` when it never existed (a pruned one throws 410). */
    getVersion<T = unknown>(domain: string, entity: string, key: string, version: number): Promise<Stored<T> | undefined>;
    /** One page of a record's versions, newest first. */
    history<T = unknown>(
      domain: string, entity: string, key: string,
      options?: { limit?: number; cursor?: string; values?: boolean },
    ): Promise<HistoryPage<T>>;
    /** One page of an entity's records as they stood at `at`. */
    recordsAt<T = unknown>(
      domain: string, entity: string, at: Date | string, options?: { limit?: number; cursor?: string },
    ): Promise<{ items: Item<T>[]; next_cursor: string | null }>;
    /** One page of the namespace's changes after `since`, in sequence order. */
    changes<T = unknown>(options?: Scope & { since?: number; limit?: number }): Promise<ChangesPage<T>>;
    /** Write the namespace's state at `at` back as new versions (admin scope). */
    restore(at: Date | string, options?: Scope & { dryRun?: boolean }): Promise<Restored>;
    /**
     * Every change from `since` on, each once and in seq order; reconnects and resumes by itself
     * after a dropped connection or a service restart (network errors and 502/503/504 back off
     * per `backoffBaseMs`/`backoffMaxMs`, without a deadline); any other error answer throws a
     * PersistdError. Ends when `signal` aborts.
     */
    watch<T = unknown>(options?: WatchOptions): AsyncGenerator<Change<T>>;
  }
}

// A watch stream silent this long is taken as dropped: the service sends a heartbeat every 15 s.
const WATCH_IDLE_MS = 60_000;

function ns(client: PersistdClient): string {
  return `/v1/${client.namespace}`;
}

function recordPath(client: PersistdClient, domain: string, entity: string, key: string): string {
  return `${ns(client)}/${domain}/${encodeURIComponent(entity)}/records/${encodeURIComponent(key)}`;
}

function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : "";
}

function iso(at: Date | string): string {
  return at instanceof Date ? at.toISOString() : at;
}

const proto = PersistdClient.prototype;

proto.getVersion = async function getVersion<T>(
  this: PersistdClient, domain: string, entity: string, key: string, version: number,
): Promise<Stored<T> | undefined> {
  const path = recordPath(this, domain, entity, key) + query({ version });
  const res = await this.send({ method: "GET", path, accept: [404] });
  if (res.status === 404) return undefined;
  return { value: JSON.parse(res.text) as T, version: etagVersion(res) };
};

proto.history = async function history<T>(
  this: PersistdClient, domain: string, entity: string, key: string,
  options: { limit?: number; cursor?: string; values?: boolean } = {},
): Promise<HistoryPage<T>> {
  const path = recordPath(this, domain, entity, key) + "/history" +
    query({ limit: options.limit, cursor: options.cursor, values: options.values || undefined });
  return JSON.parse((await this.send({ method: "GET", path })).text) as HistoryPage<T>;
};

proto.recordsAt = async function recordsAt<T>(
  this: PersistdClient, domain: string, entity: string, at: Date | string,
  options: { limit?: number; cursor?: string } = {},
): Promise<{ items: Item<T>[]; next_cursor: string | null }> {
  const path = `${ns(this)}/${domain}/${encodeURIComponent(entity)}/records` +
    query({ at: iso(at), values: true, limit: options.limit, cursor: options.cursor });
  return JSON.parse((await this.send({ method: "GET", path })).text) as { items: Item<T>[]; next_cursor: string | null };
};

proto.changes = async function changes<T>(
  this: PersistdClient, options: Scope & { since?: number; limit?: number } = {},
): Promise<ChangesPage<T>> {
  const path = `${ns(this)}/changes` + query({ ...options });
  return JSON.parse((await this.send({ method: "GET", path })).text) as ChangesPage<T>;
};

proto.restore = async function restore(
  this: PersistdClient, at: Date | string, options: Scope & { dryRun?: boolean } = {},
): Promise<Restored> {
  const body = { at: iso(at), domain: options.domain, entity: options.entity, dry_run: options.dryRun ?? false };
  const res = await this.send({ method: "POST", path: `${ns(this)}/restore`, body });
  return JSON.parse(res.text) as Restored;
};

/** A watch connection refused with a retryable status (502/503/504): wait at least `waitMs`. */
class RetryLater extends Error {
  constructor(readonly status: number, readonly waitMs: number) {
    super(`persistd watch answered ${status}`);
  }
}

/** One block of an event stream: its `event` (default "message"), `data` and numeric `id`, if any. */
interface Block {
  event: string;
  data: string | undefined;
  id: number | undefined;
}

/**
 * One SSE connection: yields its blocks (comments, the heartbeats, are left out). A non-retryable
 * answer throws a PersistdError; a retryable one throws RetryLater; a stream silent for
 * `idleMs` is dropped (the service sends a heartbeat every 15 s).
 */
async function* stream(
  url: string, path: string, headers: Record<string, string>, signal: AbortSignal | undefined,
  idleMs: number,
): AsyncGenerator<Block> {
  const get = url.startsWith("https:") ? https.get : http.get;
  const res = await new Promise<http.IncomingMessage>((ok, fail) => {
    const req = get(url + path, { headers, signal, timeout: idleMs }, ok);
    req.on("timeout", () => req.destroy(new Error(`the watch stream was silent for ${idleMs} ms`)));
    req.on("error", fail);
  });
  res.setEncoding("utf8");
  if (res.statusCode !== 200) {
    let text = "";
    for await (const chunk of res as AsyncIterable<string>) text += chunk;
    const status = res.statusCode ?? 0;
    const header = (name: string): string | null => {
      const value = res.headers[name.toLowerCase()];
      return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
    };
    if (RETRY_STATUS.has(status)) throw new RetryLater(status, retryAfterMs(header("retry-after")) ?? 0);
    throw problem({ method: "GET", path }, { status, header, text });
  }
  let buffer = "";
  for await (const chunk of res as AsyncIterable<string>) {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        fields[name] = name === "data" && fields.data !== undefined ? `${fields.data}\n${value}` : value;
      }
      const id = fields.id !== undefined && /^\d+$/.test(fields.id) ? Number(fields.id) : undefined;
      if (fields.data !== undefined || id !== undefined) yield { event: fields.event ?? "message", data: fields.data, id };
    }
  }
}

/** Wait `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

proto.watch = async function* watch<T>(this: PersistdClient, options: WatchOptions = {}): AsyncGenerator<Change<T>> {
  const { signal } = options;
  const idleMs = options.idleTimeoutMs ?? WATCH_IDLE_MS;
  const path = `${ns(this)}/watch` + query({ domain: options.domain, entity: options.entity });
  // The resume position: the last change yielded, or the stream's own position (its first `id:`,
  // sent before any change), so a reconnect never starts from a later "now".
  let last = options.since;
  let attempt = 0;
  while (!signal?.aborted) {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (this.options.token) headers.Authorization = `Bearer ${this.options.token}`;
    if (last !== undefined) headers["Last-Event-ID"] = String(last);
    const opened = Date.now();
    let waitAtLeast = 0;
    try {
      for await (const block of stream(this.options.url, path, headers, signal, idleMs)) {
        if (block.event === "change" && block.data !== undefined) {
          const change = JSON.parse(block.data) as Change<T>;
          if (last === undefined || change.seq > last) {
            last = change.seq;
            attempt = 0; // progress: the next reconnect starts the backoff over
            yield change;
          }
        } else if (block.data === undefined && block.id !== undefined && (last === undefined || block.id > last)) {
          last = block.id; // the stream's starting position
        }
      }
    } catch (error) {
      if (signal?.aborted) return;
      if (error instanceof PersistdError) throw error;
      if (error instanceof RetryLater) waitAtLeast = error.waitMs;
    }
    // A stream that stayed up a while also starts the backoff over (the service ended it).
    if (Date.now() - opened > this.options.backoffMaxMs) attempt = 0;
    await pause(Math.max(backoffMs(this.options, attempt++), waitAtLeast), signal);
  }
};
