// persistd console: hash-routed views over the public /v1 routes. No framework and no build step:
// the page is one HTML shell and this file, served by persistd itself (docs/console.md says why).
"use strict";

const TOKEN_KEY = "persistd.console.token"; // sessionStorage only: gone when the tab closes
const RETRY_MS = 1000; // a dropped watch stream is reopened, an unreachable service retried, this often
const ROW_DEBOUNCE_MS = 150; // a burst of changes to one bot costs one re-read of its fleet row
const FLEET_PAGE = 50; // fleet rows per page
const RECORD_PAGE = 50; // records per page in the record browser
const ENTITY_PAGE = 100; // entities per page
const HISTORY_PAGE = 50; // versions per "Older versions" step
const ENTITY_CAP = 50; // entities read per domain for one fleet row: a bot trades a few symbols
const FLEET_DOMAINS = ["signal", "schedule", "risk", "partial", "breakeven"];

const main = document.getElementById("main");
const statusEl = document.getElementById("status");
const crumbsEl = document.getElementById("crumbs");
const signoutEl = document.getElementById("signout");

class Offline extends Error {}
class SignInNeeded extends Error {}
class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

// ---- DOM helpers: every value from the service goes in as text, never as markup ----

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node && name !== "list") node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const enc = encodeURIComponent;
const link = (parts) => "#/" + parts.map(enc).join("/");
const entityPath = (ns, domain, entity) => `/v1/${enc(ns)}/${enc(domain)}/${enc(entity)}`;

function when(value, millis = false) {
  if (value === undefined || value === null || value === "") return "—";
  const date = new Date(value);
  return isNaN(date) ? String(value) : date.toISOString().replace("T", " ").slice(0, millis ? 23 : 19) + "Z";
}

const num = (value) => (value === undefined || value === null ? "—" : String(value));

// ---- the service ----

const token = () => sessionStorage.getItem(TOKEN_KEY);

function setStatus(state, text) {
  statusEl.className = state;
  statusEl.textContent = text;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json", ...authHeader() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch {
    setStatus("reconnecting", "reconnecting…");
    throw new Offline("persistd is not reachable");
  }
  if (statusEl.className === "reconnecting" && !watching) setStatus("live", liveText);
  if (response.status === 401) {
    expired();
    throw new SignInNeeded();
  }
  const parsed = await response.json().catch(() => null);
  if (!response.ok) throw new Problem(response.status, parsed);
  return { body: parsed, headers: response.headers };
}

function authHeader() {
  const bearer = token();
  return bearer ? { Authorization: "Bearer " + bearer } : {};
}

function expired() {
  const had = token();
  sessionStorage.removeItem(TOKEN_KEY);
  signIn(had ? "Your token expired or was revoked: sign in again." : "");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let watching = false; // a watch stream owns the status badge

/**
 * Follow a watch stream (`/v1/<ns>/watch`, or `/v1/_watch` for every namespace): Server-Sent
 * Events read with fetch (EventSource cannot send the token header). A dropped stream is reopened
 * every second with Last-Event-ID, so the service replays exactly the changes missed meanwhile.
 * `onOpen` runs each time a stream is subscribed (its first bytes arrived), the first time and
 * after each reconnect, so state read then misses nothing the stream will not bring.
 */
function watch(path, alive, { onOpen, onChange }) {
  const controller = new AbortController();
  let last = null;
  watching = true;
  (async () => {
    while (alive()) {
      let reader = null;
      try {
        const headers = { Accept: "text/event-stream", ...authHeader() };
        if (last !== null) headers["Last-Event-ID"] = last;
        const response = await fetch(path, { headers, cache: "no-store", signal: controller.signal });
        if (response.status === 401) return expired();
        if (!response.ok) throw new Problem(response.status, await response.json().catch(() => null));
        reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let opened = false;
        let buffer = "";
        let event = { id: null, type: "message", data: "" };
        for (;;) {
          const { value, done } = await reader.read();
          if (done || !alive()) break;
          if (!opened) {
            opened = true;
            await onOpen();
          }
          setStatus("live", liveText);
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, end).replace(/\r$/, "");
            buffer = buffer.slice(end + 1);
            if (line === "") {
              // An id counts even without data: the stream opens with its starting position,
              // so a drop before the first change still resumes from there.
              if (event.id !== null) last = event.id;
              if (event.type === "change" && event.data) {
                onChange(JSON.parse(event.data));
              } else if (event.type === "overflow" && event.data) {
                last = String(JSON.parse(event.data).resume); // too slow: resume from there
              }
              event = { id: null, type: "message", data: "" };
            } else if (line.startsWith("id:")) event.id = line.slice(3).trim();
            else if (line.startsWith("event:")) event.type = line.slice(6).trim();
            else if (line.startsWith("data:")) event.data += line.slice(5).trim();
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        if (!(error instanceof Offline || error instanceof TypeError || error instanceof Problem)) console.warn(error);
      } finally {
        reader?.cancel().catch(() => {}); // a stream given up on frees its connection
      }
      if (!alive()) return;
      setStatus("reconnecting", "reconnecting…");
      await sleep(RETRY_MS);
    }
  })();
  const stop = () => controller.abort();
  const check = setInterval(() => {
    if (!alive()) {
      clearInterval(check);
      stop();
    }
  }, 250);
}

// ---- views: each render bumps `view`, which stops the previous view's stream ----

let view = 0;
let liveText = "";
let fleetFilter = "";

function setCrumbs(parts) {
  const nodes = [h("a", { href: "#/" }, "Fleet")];
  parts.forEach((part, i) => {
    nodes.push(" › ");
    const last = i === parts.length - 1;
    nodes.push(
      last
        ? h("span", { "aria-current": "page" }, part)
        : h("a", { href: link(["ns", ...parts.slice(0, i + 1)]) }, part),
    );
  });
  crumbsEl.replaceChildren(...nodes);
}

function message(text, kind = "notice") {
  main.replaceChildren(h("p", { class: kind, role: "alert" }, text));
}

function showError(error, alive) {
  if (error instanceof SignInNeeded) return;
  if (error instanceof Offline) {
    message("persistd is not reachable; retrying…");
    setTimeout(() => alive() && route(), RETRY_MS);
    return;
  }
  if (error instanceof Problem) {
    const prefix = {
      400: "That address is not valid",
      403: "Your token may not read this",
      404: "Not found",
    }[error.status];
    message(`${prefix || `Error ${error.status}`}: ${error.message}`, "error");
    return;
  }
  message(`The console failed: ${error}`, "error");
}

async function route() {
  const gen = ++view;
  watching = false;
  const alive = () => gen === view;
  signoutEl.hidden = !token();
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search] = raw.split("?");
  const query = new URLSearchParams(search || "");
  const parts = path.split("/").filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  try {
    if (parts.length === 0) await fleetView(alive);
    else if (parts[0] === "ns" && parts.length >= 2 && parts.length <= 5) {
      const views = [namespaceView, domainView, entityView, recordView];
      setCrumbs(parts.slice(1));
      await views[parts.length - 2](alive, query, ...parts.slice(1));
    } else {
      setCrumbs([]);
      message(`The console has no page at “#/${raw}”. Addresses look like #/ns/<namespace>/<domain>/<entity>/<key>.`);
    }
  } catch (error) {
    if (alive()) showError(error, alive);
  }
}

// ---- sign-in ----

function signIn(text) {
  view++;
  watching = false;
  setCrumbs([]);
  setStatus("", "");
  signoutEl.hidden = true;
  main.replaceChildren(document.getElementById("signin-form").content.cloneNode(true));
  const form = main.querySelector("form");
  const input = form.querySelector("#token");
  const error = form.querySelector("#signin-error");
  error.textContent = text;
  input.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const candidate = input.value.trim();
    let response;
    try {
      response = await fetch("/v1", { headers: { Authorization: "Bearer " + candidate }, cache: "no-store" });
    } catch {
      error.textContent = "persistd is not reachable; try again.";
      return;
    }
    if (response.status === 401) error.textContent = "That token was refused: it is wrong, expired or revoked.";
    else if (response.status === 403) error.textContent = "That token lacks the read scope.";
    else if (!response.ok) error.textContent = `Sign-in failed: HTTP ${response.status}.`;
    else {
      sessionStorage.setItem(TOKEN_KEY, candidate);
      route();
    }
  });
}

// ---- fleet ----

/** What one bot holds, read from its trading-state domains. */
async function loadBot(ns) {
  const present = new Set((await api(`/v1/${enc(ns)}`)).body.items.map((i) => i.name));
  const bot = { ns, last: null, signals: [], scheduled: [], risk: [], levels: [] };
  await Promise.all(
    FLEET_DOMAINS.filter((d) => present.has(d)).map(async (domain) => {
      const entities = (await api(`/v1/${enc(ns)}/${domain}`)).body.items.slice(0, ENTITY_CAP);
      await Promise.all(
        entities.map(async ({ name }) => {
          const page = (await api(`${entityPath(ns, domain, name)}/records?values=true&limit=100`)).body;
          for (const item of page.items) collect(bot, domain, name, item);
        }),
      );
    }),
  );
  for (const list of [bot.signals, bot.scheduled, bot.risk, bot.levels]) list.sort((a, b) => (a.sort < b.sort ? -1 : 1));
  return bot;
}

function pnl(mark) {
  const value = mark && (mark.pnlPercentage ?? (mark.pnl && mark.pnl.pnlPercentage));
  return typeof value === "number" ? value.toFixed(2) : value;
}

function collect(bot, domain, entity, item) {
  if (!bot.last || item.updated_at > bot.last) bot.last = item.updated_at;
  const v = item.value;
  if (v === null || typeof v !== "object") return;
  const at = ["ns", bot.ns, domain, entity, item.key];
  if (domain === "signal" || domain === "schedule") {
    const row = {
      sort: `${v.symbol} ${v.strategyName}`,
      at,
      symbol: v.symbol,
      strategy: v.strategyName,
      exchange: v.exchangeName,
      position: v.position,
      entry: v.priceOpen,
      tp: v._trailingPriceTakeProfit ?? v.priceTakeProfit,
      sl: v._trailingPriceStopLoss ?? v.priceStopLoss,
      opened: domain === "signal" ? v.pendingAt : v.scheduledAt,
      peak: pnl(v._peak),
      fall: pnl(v._fall),
    };
    (domain === "signal" ? bot.signals : bot.scheduled).push(row);
  } else if (domain === "risk" && Array.isArray(v)) {
    for (const [, p] of v) {
      if (!p) continue;
      bot.risk.push({ sort: `${entity} ${p.symbol}`, at, profile: entity, symbol: p.symbol, strategy: p.strategyName, position: p.position, entry: p.priceOpen });
    }
  } else if (domain === "partial" || domain === "breakeven") {
    for (const [signalId, d] of Object.entries(v)) {
      if (!d) continue;
      const text =
        domain === "partial"
          ? `profit ${(d.profitLevels || []).join(", ") || "—"} / loss ${(d.lossLevels || []).join(", ") || "—"}`
          : d.reached
            ? "breakeven reached"
            : "breakeven not reached";
      bot.levels.push({ sort: `${entity} ${signalId} ${domain}`, at, text: `${entity} ${signalId}: ${text}` });
    }
  }
}

function positionCell(position) {
  return h("td", { class: `position ${position === "long" || position === "short" ? position : ""}` }, num(position));
}

function signalTable(rows, kind) {
  if (!rows.length) return h("span", { class: "muted" }, "none");
  const head = ["Symbol", "Strategy", "Exchange", "Side", "Entry", "Take-profit", "Stop-loss", kind === "signal" ? "Opened" : "Scheduled", "Peak / fall P&L %"];
  return h(
    "table",
    { class: "inner" },
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      rows.map((r) =>
        h(
          "tr",
          { class: kind, "data-symbol": r.symbol },
          h("td", { class: "symbol" }, h("a", { href: link(r.at) }, num(r.symbol))),
          h("td", { class: "strategy" }, num(r.strategy)),
          h("td", { class: "exchange" }, num(r.exchange)),
          positionCell(r.position),
          h("td", { class: "entry num" }, num(r.entry)),
          h("td", { class: "tp num" }, num(r.tp)),
          h("td", { class: "sl num" }, num(r.sl)),
          h("td", { class: "opened" }, when(r.opened)),
          h("td", { class: "pnl num" }, r.peak === undefined && r.fall === undefined ? "—" : `${num(r.peak)} / ${num(r.fall)}`),
        ),
      ),
    ),
  );
}

function listCell(items, render) {
  if (!items.length) return h("span", { class: "muted" }, "none");
  return h("ul", { class: "plain" }, items.map((i) => h("li", {}, h("a", { href: link(i.at) }, render(i)))));
}

function fillRow(tr, bot) {
  tr.replaceChildren(
    tr.firstChild,
    h("td", { class: "last" }, when(bot.last)),
    h("td", { class: "signals" }, signalTable(bot.signals, "signal")),
    h("td", { class: "scheduled" }, signalTable(bot.scheduled, "scheduled")),
    h("td", { class: "risk" }, listCell(bot.risk, (r) => `${r.profile}: ${r.symbol} ${r.position} @ ${num(r.entry)}`)),
    h("td", { class: "levels" }, listCell(bot.levels, (l) => l.text)),
  );
}

/**
 * Every bot in one table, fed by one stream: `/v1/_watch` brings each change of every namespace
 * the token may read; a change re-reads its bot's row if the row is on screen. Nothing polls.
 */
async function fleetView(alive) {
  setCrumbs([]);
  liveText = "live · watching changes";
  const filter = h("input", { type: "search", id: "filter", placeholder: "filter namespaces", "aria-label": "Filter namespaces", value: fleetFilter });
  const count = h("span", { class: "muted", id: "fleet-count" });
  const prev = h("button", { type: "button" }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  const tbody = h("tbody");
  const heads = ["Namespace", "Last write", "Open signals", "Scheduled signals", "Risk positions", "Partial / breakeven"];
  main.replaceChildren(
    h("h1", {}, "Fleet"),
    h("div", { class: "toolbar" }, filter, count, prev, next),
    h("table", { id: "fleet" }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))), tbody),
  );
  let names = [];
  let known = new Set();
  let page = 0;
  let rows = new Map(); // namespace → {tr, visible, loaded, busy, again, timer, shown}
  let redraw = null;
  // Only rows on screen are read, so 500 bots cost what the visible dozen cost.
  const observer = new IntersectionObserver((entries) => {
    if (!alive()) return observer.disconnect();
    for (const entry of entries) {
      const row = rows.get(entry.target.dataset.ns);
      if (!row) continue;
      row.visible = entry.isIntersecting;
      if (row.visible && !row.loaded) refreshRow(row).catch(() => {});
    }
  });

  async function refreshRow(row) {
    if (!alive()) return;
    if (row.busy) return void (row.again = true); // read again once this read ends
    row.busy = true;
    try {
      const bot = await loadBot(row.name);
      row.loaded = true;
      const shown = JSON.stringify(bot);
      if (shown !== row.shown && alive()) {
        row.shown = shown;
        fillRow(row.tr, bot);
      }
    } catch (error) {
      if (error instanceof Problem && alive()) {
        row.tr.replaceChildren(row.tr.firstChild, h("td", { colspan: 5, class: "error" }, error.message));
      } else throw error;
    } finally {
      row.busy = false;
      if (row.again) {
        row.again = false;
        refreshRow(row).catch(() => {});
      }
    }
  }

  /** Re-read a row on screen once per burst; a row off screen is read when it shows. */
  function stale(row) {
    if (!row.visible) return void (row.loaded = false);
    row.timer ??= setTimeout(() => {
      row.timer = null;
      if (rows.get(row.name) === row) refreshRow(row).catch(() => {}); // still on this page
    }, ROW_DEBOUNCE_MS);
  }

  function draw() {
    const q = filter.value.trim().toLowerCase();
    fleetFilter = filter.value;
    const matching = names.filter((n) => n.name.toLowerCase().includes(q));
    const pages = Math.max(1, Math.ceil(matching.length / FLEET_PAGE));
    page = Math.min(page, pages - 1);
    const slice = matching.slice(page * FLEET_PAGE, (page + 1) * FLEET_PAGE);
    count.textContent = `${matching.length} of ${names.length} namespaces · page ${page + 1} of ${pages}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    const kept = new Map();
    for (const { name } of slice) {
      let row = rows.get(name);
      if (!row) {
        const tr = h("tr", { "data-ns": name }, h("th", { scope: "row" }, h("a", { href: link(["ns", name]) }, name)), h("td", { colspan: 5, class: "muted" }, "…"));
        row = { name, tr, visible: false, loaded: false, busy: false, again: false, timer: null, shown: "" };
        observer.observe(tr);
      }
      kept.set(name, row);
    }
    for (const [name, row] of rows) if (!kept.has(name)) observer.unobserve(row.tr);
    rows = kept;
    tbody.replaceChildren(...[...kept.values()].map((r) => r.tr));
    if (!slice.length) {
      const text = names.length ? "No namespace matches the filter." : "No namespace has records yet.";
      tbody.append(h("tr", {}, h("td", { colspan: 6, class: "notice" }, text)));
    }
  }

  filter.addEventListener("input", () => {
    page = 0;
    draw();
  });
  prev.addEventListener("click", () => {
    page--;
    draw();
  });
  next.addEventListener("click", () => {
    page++;
    draw();
  });
  watch("/v1/_watch", alive, {
    // Subscribed (first time or after a drop): list the namespaces, then read the rows on
    // screen again, so nothing written before the stream or while it was down goes unseen.
    onOpen: async () => {
      names = (await api("/v1")).body.items;
      known = new Set(names.map((n) => n.name));
      if (!alive()) return;
      draw();
      for (const row of rows.values()) if (row.loaded) stale(row);
    },
    onChange: ({ namespace, domain }) => {
      if (!known.has(namespace)) {
        // A new bot shows up with its first change; the page is redrawn once per burst.
        known.add(namespace);
        names.push({ name: namespace });
        names.sort((a, b) => (a.name < b.name ? -1 : 1));
        redraw ??= setTimeout(() => {
          redraw = null;
          if (alive()) draw();
        }, ROW_DEBOUNCE_MS);
        return;
      }
      const row = rows.get(namespace);
      if (row && FLEET_DOMAINS.includes(domain)) stale(row); // a row shows only these domains
    },
  });
}

// ---- record browser ----

function listingTable(items, hrefOf, label) {
  return h(
    "table",
    { class: "listing" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, label), h("th", { scope: "col", class: "num" }, "Records"))),
    h("tbody", {}, items.map((i) => h("tr", {}, h("td", {}, h("a", { href: hrefOf(i.name) }, i.name)), h("td", { class: "num" }, i.records)))),
  );
}

function quiet() {
  setStatus("", "");
}

const nowText = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");
const addressText = (c) => `${c.domain} / ${c.entity} / ${c.key}`;

/** One bot: its live state and change feed from the watch stream, its domains, and restore. */
async function namespaceView(alive, query, ns) {
  liveText = "live · watching changes";
  const items = (await api(`/v1/${enc(ns)}`)).body.items;
  if (!alive()) return;
  if (!items.length) return message(`Namespace “${ns}” has no records: check the name.`);
  const heads = ["Last write", "Open signals", "Scheduled signals", "Risk positions", "Partial / breakeven"];
  const summary = h("tr", { "data-ns": ns }, h("td", { colspan: 5, class: "muted" }, "…"));
  const changes = h("ol", { id: "changes", class: "changes", reversed: true });
  main.replaceChildren(
    h("h1", {}, `Namespace ${ns}`),
    h("table", { id: "bot" }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, summary)),
    h("h2", {}, "Changes since this page opened"),
    changes,
    h("h2", {}, "Domains"),
    listingTable(items, (d) => link(["ns", ns, d]), "Domain"),
    await restorePanel(ns, query),
  );
  if (query.has("domain")) document.getElementById("restore-at")?.focus();
  // fillRow keeps the first cell; this table has no namespace column.
  const show = async () => {
    const bot = await loadBot(ns);
    if (!alive()) return;
    summary.replaceChildren(h("td"));
    fillRow(summary, bot);
    summary.firstChild.remove();
  };
  let pending = null;
  watch(`/v1/${enc(ns)}/watch`, alive, {
    onOpen: show,
    onChange: (change) => {
      const at = ["ns", ns, change.domain, change.entity, change.key];
      changes.prepend(
        h("li", { "data-seq": change.seq }, `#${change.seq} ${when(change.at, true)} ${change.op} `, h("a", { href: link(at) }, addressText(change)), ` v${change.version}`),
      );
      while (changes.children.length > 200) changes.lastChild.remove();
      // Coalesce a burst of changes into one re-read of the bot's state.
      pending ??= setTimeout(() => {
        pending = null;
        show().catch(() => {});
      }, 50);
    },
  });
}

async function domainView(alive, query, ns, domain) {
  quiet();
  const items = (await api(`/v1/${enc(ns)}/${enc(domain)}`)).body.items;
  if (!alive()) return;
  if (!items.length) return message(`Namespace “${ns}” has no records in domain “${domain}”.`);
  let page = 0;
  const pages = Math.ceil(items.length / ENTITY_PAGE);
  const holder = h("div");
  const prev = h("button", { type: "button", onclick: () => draw(page - 1) }, "Previous page");
  const next = h("button", { type: "button", onclick: () => draw(page + 1) }, "Next page");
  const count = h("span", { class: "muted" });
  const draw = (p) => {
    page = p;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    count.textContent = `${items.length} entities · page ${page + 1} of ${pages}`;
    const slice = items.slice(page * ENTITY_PAGE, (page + 1) * ENTITY_PAGE);
    holder.replaceChildren(listingTable(slice, (e) => link(["ns", ns, domain, e]), "Entity"));
  };
  main.replaceChildren(h("h1", {}, `${ns} / ${domain}`), h("div", { class: "toolbar" }, count, prev, next), holder);
  draw(0);
}

/** A value as a tree of <details>: keyboard-usable (summary is a button) and collapsible. */
function jsonTree(value, depth = 0) {
  if (value === null) return h("span", { class: "z" }, "null");
  if (typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    if (!entries.length) return h("span", { class: "z" }, Array.isArray(value) ? "[]" : "{}");
    const label = Array.isArray(value) ? `[ ${entries.length} items ]` : `{ ${entries.length} keys }`;
    return h(
      "details",
      { open: depth < 2 },
      h("summary", {}, label),
      h("ul", {}, entries.map(([k, v]) => h("li", {}, h("span", { class: "k" }, Array.isArray(value) ? `${k}: ` : `${JSON.stringify(k)}: `), jsonTree(v, depth + 1)))),
    );
  }
  return h("span", { class: typeof value === "string" ? "s" : "n" }, JSON.stringify(value));
}

/** The entity's records, now or (`?at=`) as they stood at a past time, a page at a time. */
async function entityView(alive, query, ns, domain, entity) {
  quiet();
  const at = query.get("at");
  const counts = (await api(`/v1/${enc(ns)}/${enc(domain)}`)).body.items;
  const total = (counts.find((i) => i.name === entity) || {}).records || 0;
  if (!alive()) return;
  const cursors = [null];
  const body = h("tbody");
  const count = h("span", { class: "muted", id: "entity-count" });
  const prev = h("button", { type: "button" }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  const atInput = h("input", { id: "at", value: at || nowText(), size: 22, spellcheck: false, "aria-label": "Time (RFC 3339)" });
  const here = link(["ns", ns, domain, entity]);
  const atForm = h(
    "form",
    { class: "toolbar", onsubmit: (e) => (e.preventDefault(), (location.hash = `${here}?at=${enc(atInput.value.trim())}`)) },
    h("label", { for: "at" }, "As of"),
    atInput,
    h("button", { type: "submit" }, "Show at this time"),
    at ? h("a", { href: here }, "Back to now") : null,
    h("a", { href: `${link(["ns", ns])}?domain=${enc(domain)}&entity=${enc(entity)}` }, "Restore this entity…"),
  );
  let index = 0;
  const load = async (i) => {
    const cursor = cursors[i];
    const query = `values=true&limit=${RECORD_PAGE}` + (cursor ? `&cursor=${enc(cursor)}` : "") + (at ? `&at=${enc(at)}` : "");
    const page = (await api(`${entityPath(ns, domain, entity)}/records?${query}`)).body;
    if (!alive()) return;
    index = i;
    if (page.next_cursor) cursors[i + 1] = page.next_cursor;
    prev.disabled = index === 0;
    next.disabled = !page.next_cursor;
    count.textContent = at
      ? `as of ${at} · page ${index + 1}`
      : `${total} records · page ${index + 1} of ${Math.ceil(total / RECORD_PAGE)}`;
    if (!page.items.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "notice" }, `No records at ${at}.`)));
    else
      body.replaceChildren(
        ...page.items.map((item) =>
          h(
            "tr",
            { "data-key": item.key },
            h("td", {}, h("a", { href: link(["ns", ns, domain, entity, item.key]) }, item.key)),
            h("td", { class: "num" }, item.version),
            h("td", {}, when(item.updated_at)),
            h("td", { class: "json" }, jsonTree(item.value, 2)),
          ),
        ),
      );
  };
  prev.addEventListener("click", () => load(index - 1).catch((e) => showError(e, alive)));
  next.addEventListener("click", () => load(index + 1).catch((e) => showError(e, alive)));
  const heads = ["Key", "Version", "Written", "Value"];
  if (!total && !at) {
    // Gone now, but its records may be in the history: the time form stays.
    main.replaceChildren(h("p", { class: "notice", role: "alert" }, `Entity “${entity}” has no records in ${ns} / ${domain}.`), atForm);
    return;
  }
  main.replaceChildren(
    h("h1", {}, `${ns} / ${domain} / ${entity}` + (at ? ` at ${at}` : "")),
    atForm,
    h("div", { class: "toolbar" }, count, prev, next),
    h("table", { id: "records" }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))), body),
  );
  await load(0);
}

/** Line diff (longest common subsequence) of two pretty-printed values. */
function diffLines(a, b) {
  const n = a.length;
  const m = b.length;
  if (n * m > 4_000_000) return [...a.map((l) => ["-", l]), ...b.map((l) => ["+", l])];
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) out.push([" ", a[i++], j++]);
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", a[i++]]);
    else out.push(["+", b[j++]]);
  }
  while (i < n) out.push(["-", a[i++]]);
  while (j < m) out.push(["+", b[j++]]);
  return out;
}

const pretty = (entry) => (entry.op === "delete" ? ["(deleted)"] : JSON.stringify(entry.value, null, 2).split("\n"));

function diffView(older, newer) {
  const lines = diffLines(pretty(older), pretty(newer));
  const changed = lines.some(([mark]) => mark !== " ");
  return h(
    "div",
    { id: "diff" },
    h("h3", {}, `Version ${older.version} → version ${newer.version}`, changed ? "" : " (no difference)"),
    h(
      "pre",
      { class: "diff" },
      lines.map(([mark, text]) =>
        mark === "-" ? h("del", {}, `- ${text}\n`) : mark === "+" ? h("ins", {}, `+ ${text}\n`) : h("span", {}, `  ${text}\n`),
      ),
    ),
  );
}

async function recordView(alive, query, ns, domain, entity, key) {
  liveText = "live · watching changes";
  const path = `${entityPath(ns, domain, entity)}/records/${enc(key)}`;
  const valueBox = h("div");
  const historyBox = h("div");
  let selected = null; // [older, newer] versions chosen for the diff
  let historyLimit = HISTORY_PAGE; // the newest versions shown; "Older versions" adds a page
  let more = false;
  const render = async () => {
    let answer = null;
    try {
      answer = await api(path);
    } catch (error) {
      if (!(error instanceof Problem && error.status === 404)) throw error;
    }
    let versions = [];
    try {
      const page = (await api(`${path}/history?values=true&limit=${historyLimit}`)).body;
      versions = page.items;
      more = page.next_cursor !== null;
    } catch (error) {
      if (!(error instanceof Problem && [404, 409].includes(error.status))) throw error;
      if (error.status === 409) historyBox.replaceChildren(h("p", { class: "muted" }, error.message));
    }
    if (!alive()) return false;
    if (answer === null && !versions.length) return false;
    const version = answer ? (answer.headers.get("ETag") || "").replaceAll('"', "") : "deleted";
    valueBox.replaceChildren(
      h(
        "dl",
        { class: "meta" },
        h("dt", {}, "Version"),
        h("dd", { id: "record-version" }, version),
        h("dt", {}, "Written"),
        h("dd", {}, answer ? when(answer.headers.get("Last-Modified")) : "—"),
      ),
      h("div", { class: "json", id: "record-value" }, answer ? jsonTree(answer.body) : h("p", { class: "notice" }, "This record is deleted; its history is below.")),
    );
    if (versions.length) historyBox.replaceChildren(historyTable(versions));
    return true;
  };
  const historyTable = (versions) => {
    const byVersion = new Map(versions.map((v) => [String(v.version), v]));
    if (!selected || !byVersion.has(selected[0]) || !byVersion.has(selected[1]))
      selected = [String((versions[1] || versions[0]).version), String(versions[0].version)];
    const diffBox = h("div");
    const redraw = () => diffBox.replaceChildren(diffView(byVersion.get(selected[0]), byVersion.get(selected[1])));
    const choose = (side, v) => h("input", {
      type: "radio",
      name: `diff-${side}`,
      value: String(v.version),
      checked: selected[side] === String(v.version),
      "aria-label": `${side === 0 ? "from" : "to"} version ${v.version}`,
      onchange: () => {
        selected[side] = String(v.version);
        redraw();
      },
    });
    const heads = ["From", "To", "Version", "Change", "Time", "Writer (token)", "Value"];
    redraw();
    return h(
      "div",
      {},
      h(
        "table",
        { id: "history" },
        h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          versions.map((v) =>
            h(
              "tr",
              { "data-version": v.version },
              h("td", {}, choose(0, v)),
              h("td", {}, choose(1, v)),
              h("td", { class: "num" }, v.version),
              h("td", {}, v.op),
              h("td", {}, when(v.at, true)),
              h("td", {}, v.token_id ?? "—"),
              h("td", { class: "json" }, v.op === "delete" ? "—" : jsonTree(v.value, 2)),
            ),
          ),
        ),
      ),
      more && historyLimit < 1000
        ? h("button", { type: "button", id: "older", onclick: () => ((historyLimit += HISTORY_PAGE), render().catch(() => {})) }, "Older versions")
        : more
          ? h("p", { class: "muted" }, "The 1000 newest versions are shown; `persistd history show` lists every one.")
          : null,
      diffBox,
    );
  };
  main.replaceChildren(h("h1", {}, `${ns} / ${domain} / ${entity} / ${key}`), valueBox, h("h2", {}, "History"), historyBox);
  if (!(await render())) return message(`There is no record “${key}” in ${ns} / ${domain} / ${entity}.`);
  watch(`/v1/${enc(ns)}/watch?domain=${enc(domain)}&entity=${enc(entity)}`, alive, {
    onOpen: render,
    onChange: (change) => change.key === key && render().catch(() => {}),
  });
}

/**
 * Restore (admin): preview with a dry run, then confirm. The panel is shown only to a token that
 * may restore, asked of the service itself: the scope check comes before the body is read, so
 * an empty body answers 403 to a read token and 400 to an admin one, and changes nothing.
 */
async function restorePanel(ns, query) {
  try {
    await api(`/v1/${enc(ns)}/restore`, { method: "POST", body: {} });
  } catch (error) {
    if (!(error instanceof Problem) || error.status !== 400) return h("p", { class: "muted", id: "restore-absent" }, "Restore needs an admin token.");
  }
  const atInput = h("input", { id: "restore-at", value: nowText(), size: 30, spellcheck: false });
  // `#/ns/<ns>?domain=&entity=` (the entity page's "Restore…" link) narrows the restore.
  const domainInput = h("input", { id: "restore-domain", placeholder: "all domains", size: 12, value: query.get("domain") || "" });
  const entityInput = h("input", { id: "restore-entity", placeholder: "all entities", size: 24, value: query.get("entity") || "" });
  const result = h("div", { id: "restore-result", "aria-live": "polite" });
  const request = (dryRun) => {
    const body = { at: atInput.value.trim(), dry_run: dryRun };
    if (domainInput.value.trim()) body.domain = domainInput.value.trim();
    if (entityInput.value.trim()) body.entity = entityInput.value.trim();
    return body;
  };
  const run = async (body) => {
    try {
      return (await api(`/v1/${enc(ns)}/restore`, { method: "POST", body })).body;
    } catch (error) {
      if (error instanceof Problem) result.replaceChildren(h("p", { class: "error", role: "alert" }, error.message));
      else throw error;
      return null;
    }
  };
  const preview = async (event) => {
    event.preventDefault();
    const body = request(true);
    const plan = await run(body);
    if (!plan) return;
    const scope = [body.domain, body.entity].filter(Boolean).join(" / ") || "the whole namespace";
    const confirm = h("button", { type: "button", id: "restore-confirm" }, `Restore ${scope} to ${body.at}`);
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      const done = await run({ ...body, dry_run: false });
      if (done) result.replaceChildren(h("p", { id: "restore-done", role: "status" }, `Restored ${scope} to ${body.at}: ${done.puts} put, ${done.deletes} deleted.`));
    });
    const rows = (plan.changes || []).map((c) =>
      h("tr", {}, h("td", {}, c.op), h("td", {}, h("a", { href: link(["ns", ns, c.domain, c.entity, c.key]) }, addressText(c))), h("td", { class: "json" }, c.op === "delete" ? "—" : jsonTree(c.value, 2))),
    );
    result.replaceChildren(
      h(
        "p",
        { id: "restore-plan" },
        `Dry run: ${plan.puts} to put back, ${plan.deletes} to delete.`,
        rows.length < plan.puts + plan.deletes ? ` The first ${rows.length} are listed.` : "",
      ),
      rows.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Change", "Record", "Value"].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)) : h("p", {}, "Nothing to change."),
      rows.length ? confirm : null,
    );
  };
  return h(
    "section",
    { id: "restore", "aria-labelledby": "restore-title" },
    h("h2", { id: "restore-title" }, "Restore"),
    h("p", { class: "muted" }, "Write the state as of a time back as new versions (kept in the history). Preview first; nothing changes until you confirm."),
    h(
      "form",
      { class: "toolbar", onsubmit: preview },
      h("label", { for: "restore-at" }, "Time"),
      atInput,
      h("label", { for: "restore-domain" }, "Domain"),
      domainInput,
      h("label", { for: "restore-entity" }, "Entity"),
      entityInput,
      h("button", { type: "submit", id: "restore-preview" }, "Preview (dry run)"),
    ),
    result,
  );
}

// ---- start ----

signoutEl.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  signIn("Signed out.");
});
window.addEventListener("hashchange", () => {
  if (document.querySelector("form.signin")) return;
  route().then(() => main.contains(document.activeElement) || main.focus());
});

(async function start() {
  if (!token()) {
    // With auth off the listing answers without a token and no sign-in is shown.
    try {
      const response = await fetch("/v1", { cache: "no-store" });
      if (response.status === 401) return signIn("");
    } catch {
      setStatus("reconnecting", "reconnecting…");
      setTimeout(start, RETRY_MS);
      return;
    }
  }
  route();
})();
