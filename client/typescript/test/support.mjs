// Test support: the service URL the runner provides and a fresh namespace per test.

import { randomBytes } from "node:crypto";

export const URL_ = process.env.PERSISTD_URL;
if (!URL_) throw new Error("PERSISTD_URL is not set: run the tests through `npm test` (test/run.mjs)");

/** A namespace of the test's own, so tests never see each other's records. */
export function freshNamespace(prefix = "ts") {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

/** Raw GET of a record: { status, body }. */
export async function raw(ns, domain, entity, key) {
  const res = await fetch(`${URL_}/v1/${ns}/${domain}/${encodeURIComponent(entity)}/records/${encodeURIComponent(key)}`);
  const text = await res.text();
  return { status: res.status, body: res.status === 200 ? JSON.parse(text) : undefined, etag: res.headers.get("etag") };
}

/** Raw listing of an entity's keys. */
export async function rawKeys(ns, domain, entity) {
  const res = await fetch(`${URL_}/v1/${ns}/${domain}/${encodeURIComponent(entity)}/records?limit=1000`);
  return (await res.json()).keys;
}

/**
 * A fetch that counts requests, for "one request" assertions. `calls` leaves out the client's
 * one-time GET /v1/_contract (its batch limits, asked once per process); `all` has every one.
 */
export function countingFetch() {
  const calls = [];
  const all = [];
  const f = async (input, init) => {
    const call = { method: init?.method ?? "GET", url: String(input) };
    all.push(call);
    if (!call.url.endsWith("/v1/_contract")) calls.push(call);
    return fetch(input, init);
  };
  return { fetch: f, calls, all };
}
