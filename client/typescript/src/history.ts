// History on PersistdClient: versions, history pages, the change feed, restore and watch.
// The methods are added to PersistdClient's prototype here (importing this module installs them).

import http from "node:http";
import https from "node:https";

import { etagVersion, PersistdClient, type Item, type Stored } from "./http.js";

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
    /** Every change from `since` on, each once; reconnects and resumes by itself. */
    watch<T = unknown>(options?: WatchOptions): AsyncGenerator<Change<T>>;
  }
}

const WATCH_RECONNECT_MS = 500;

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

/** One SSE connection: yields (event, data) blocks and reports every `id:` seen. */
async function* stream(
  url: string, headers: Record<string, string>, signal: AbortSignal | undefined, onId: (id: number) => void,
): AsyncGenerator<[string, string]> {
  const get = url.startsWith("https:") ? https.get : http.get;
  const res = await new Promise<http.IncomingMessage>((ok, fail) => {
    const req = get(url, { headers, signal }, ok);
    req.on("error", fail);
  });
  if (res.statusCode !== 200) {
    res.resume();
    throw new Error(`persistd watch answered ${res.statusCode}`);
  }
  res.setEncoding("utf8");
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
        fields[name] = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      }
      if (fields.data !== undefined) yield [fields.event ?? "message", fields.data];
      if (fields.id !== undefined && /^\d+$/.test(fields.id)) onId(Number(fields.id));
    }
  }
}

proto.watch = async function* watch<T>(this: PersistdClient, options: WatchOptions = {}): AsyncGenerator<Change<T>> {
  let last = options.since;
  const base = this.options.url + `${ns(this)}/watch` + query({ domain: options.domain, entity: options.entity });
  while (!options.signal?.aborted) {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (this.options.token) headers.Authorization = `Bearer ${this.options.token}`;
    if (last !== undefined) headers["Last-Event-ID"] = String(last);
    let position = last;
    try {
      for await (const [event, data] of stream(base, headers, options.signal, (id) => (position = id))) {
        if (event !== "change") continue;
        const change = JSON.parse(data) as Change<T>;
        if (last === undefined || change.seq > last) {
          last = change.seq;
          yield change;
        }
      }
    } catch (error) {
      if (options.signal?.aborted) return;
      if (error instanceof Error && /answered 4\d\d/.test(error.message) && !/answered 429/.test(error.message)) throw error;
    }
    // The stream's own position (sent before any change) survives a reconnect too.
    if (position !== undefined && (last === undefined || position > last)) last = position;
    await new Promise((r) => setTimeout(r, WATCH_RECONNECT_MS));
  }
};
