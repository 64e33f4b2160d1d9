// persistd console: hash-routed views over the public /v1 routes. No framework and no build step:
// the page is one HTML shell and this file, served by persistd itself (docs/console.md says why).
"use strict";

const TOKEN_KEY = "persistd.console.token"; // sessionStorage only: gone when the tab closes
const ROW_POLL_MS = 1000; // visible fleet rows are re-read this often
const LIST_POLL_MS = 5000; // the namespace list (a count over every record) this often
const FLEET_PAGE = 50; // fleet rows per page
const RECORD_PAGE = 50; // records per page in the record browser
const ENTITY_PAGE = 100; // entities per page
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

function when(value) {
  if (value === undefined || value === null || value === "") return "—";
  const date = new Date(value);
  return isNaN(date) ? String(value) : date.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

const num = (value) => (value === undefined || value === null ? "—" : String(value));

// ---- the service ----

const token = () => sessionStorage.getItem(TOKEN_KEY);

function setStatus(state, text) {
  statusEl.className = state;
  statusEl.textContent = text;
}

async function api(path) {
  const headers = { Accept: "application/json" };
  const bearer = token();
  if (bearer) headers.Authorization = "Bearer " + bearer;
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store" });
  } catch {
    setStatus("reconnecting", "reconnecting…");
    throw new Offline("persistd is not reachable");
  }
  if (statusEl.className === "reconnecting") setStatus("live", liveText);
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    signIn(bearer ? "Your token expired or was revoked: sign in again." : "");
    throw new SignInNeeded();
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Problem(response.status, body);
  return { body, headers: response.headers };
}

// ---- views: each render bumps `view`, which stops the previous view's polling ----

let view = 0;
let liveText = "";
let fleetFilter = "";

function poll(alive, ms, fn) {
  const tick = async () => {
    if (!alive()) return;
    try {
      await fn();
    } catch (error) {
      if (!(error instanceof Offline || error instanceof SignInNeeded)) console.warn(error);
    }
    if (alive()) setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}

async function eachLimited(items, limit, fn) {
  const queue = [...items];
  const worker = async () => {
    while (queue.length) await fn(queue.shift());
  };
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker));
}

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
    setTimeout(() => alive() && route(), ROW_POLL_MS);
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
  const alive = () => gen === view;
  signoutEl.hidden = !token();
  const raw = location.hash.replace(/^#\/?/, "");
  const parts = raw.split("/").filter(Boolean).map((p) => {
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
      await views[parts.length - 2](alive, ...parts.slice(1));
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

async function fleetView(alive) {
  setCrumbs([]);
  liveText = `live · polling every ${ROW_POLL_MS / 1000} s`;
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
  let page = 0;
  let rows = new Map(); // namespace → {tr, visible, loaded, busy, shown}
  // Only rows on screen are read and polled, so 500 bots cost what the visible dozen cost.
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
    if (row.busy || !alive()) return;
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
    }
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
        row = { name, tr, visible: false, loaded: false, busy: false, shown: "" };
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
  const loadList = async () => {
    names = (await api("/v1")).body.items;
    if (alive()) draw();
  };
  await loadList();
  setStatus("live", liveText);
  poll(alive, ROW_POLL_MS, () => eachLimited([...rows.values()].filter((r) => r.visible), 6, refreshRow));
  poll(alive, LIST_POLL_MS, loadList);
}

// ---- record browser ----

function listingTable(items, hrefOf, label) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, label), h("th", { scope: "col", class: "num" }, "Records"))),
    h("tbody", {}, items.map((i) => h("tr", {}, h("td", {}, h("a", { href: hrefOf(i.name) }, i.name)), h("td", { class: "num" }, i.records)))),
  );
}

function quiet() {
  setStatus("", "");
}

async function namespaceView(alive, ns) {
  quiet();
  const items = (await api(`/v1/${enc(ns)}`)).body.items;
  if (!alive()) return;
  if (!items.length) return message(`Namespace “${ns}” has no records: check the name.`);
  main.replaceChildren(h("h1", {}, `Namespace ${ns}`), listingTable(items, (d) => link(["ns", ns, d]), "Domain"));
}

async function domainView(alive, ns, domain) {
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

async function entityView(alive, ns, domain, entity) {
  quiet();
  const counts = (await api(`/v1/${enc(ns)}/${enc(domain)}`)).body.items;
  const total = (counts.find((i) => i.name === entity) || {}).records || 0;
  if (!alive()) return;
  if (!total) return message(`Entity “${entity}” has no records in ${ns} / ${domain}.`);
  const cursors = [null];
  const body = h("tbody");
  const count = h("span", { class: "muted" });
  const prev = h("button", { type: "button" }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  let index = 0;
  let nextCursor = null;
  const load = async (i) => {
    const cursor = cursors[i];
    const query = `values=true&limit=${RECORD_PAGE}` + (cursor ? `&cursor=${enc(cursor)}` : "");
    const page = (await api(`${entityPath(ns, domain, entity)}/records?${query}`)).body;
    if (!alive()) return;
    index = i;
    nextCursor = page.next_cursor || null;
    if (nextCursor) cursors[i + 1] = nextCursor;
    prev.disabled = index === 0;
    next.disabled = !nextCursor;
    count.textContent = `${total} records · page ${index + 1} of ${Math.ceil(total / RECORD_PAGE)}`;
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
  main.replaceChildren(
    h("h1", {}, `${ns} / ${domain} / ${entity}`),
    h("div", { class: "toolbar" }, count, prev, next),
    h("table", {}, h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))), body),
  );
  await load(0);
}

async function recordView(alive, ns, domain, entity, key) {
  quiet();
  let answer;
  try {
    answer = await api(`${entityPath(ns, domain, entity)}/records/${enc(key)}`);
  } catch (error) {
    if (error instanceof Problem && error.status === 404) {
      return message(`There is no record “${key}” in ${ns} / ${domain} / ${entity}.`);
    }
    throw error;
  }
  if (!alive()) return;
  const version = (answer.headers.get("ETag") || "").replaceAll('"', "");
  main.replaceChildren(
    h("h1", {}, `${ns} / ${domain} / ${entity} / ${key}`),
    h(
      "dl",
      { class: "meta" },
      h("dt", {}, "Version"),
      h("dd", { id: "record-version" }, version),
      h("dt", {}, "Written"),
      h("dd", {}, when(answer.headers.get("Last-Modified"))),
    ),
    h("div", { class: "json", id: "record-value" }, jsonTree(answer.body)),
  );
}

// ---- start ----

signoutEl.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  signIn("Signed out.");
});
window.addEventListener("hashchange", () => {
  if (!document.querySelector("form.signin")) route().then(() => main.focus());
});

(async function start() {
  if (!token()) {
    // With auth off the listing answers without a token and no sign-in is shown.
    try {
      const response = await fetch("/v1", { cache: "no-store" });
      if (response.status === 401) return signIn("");
    } catch {
      setStatus("reconnecting", "reconnecting…");
      setTimeout(start, ROW_POLL_MS);
      return;
    }
  }
  route();
})();
