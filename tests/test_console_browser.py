"""/console in a real browser: a live bot's positions, the record browser, sign-in, reconnecting.

Debian's chromium driven headless by playwright, as in tests/test_docs_browser.py. Every page
records the requests it makes; each test fails if one went anywhere but the service under test.
"""

import json
import os
import queue
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from signal import SIGKILL
from typing import Any

import httpx
import pytest

from tests.support import ROOT, Service
from tests.test_auth import new_token, persistd
from tests.test_docs_browser import ARGS, ARTIFACTS, chromium, local

E2E = ROOT / "client" / "typescript" / "e2e"
NODE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PERSISTD_")}
MIN = 60_000
SIGNAL_ENTITY = "BTCUSDT_crash-test_offline"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium(), headless=True, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Console:
    """One browser page on /console that remembers every request it made."""

    def __init__(self, browser: Any, service_url: str):
        self.context = browser.new_context(viewport={"width": 1500, "height": 1000})
        self.page = self.context.new_page()
        self.service_url = service_url
        self.requests: list[str] = []
        self.page.on("request", lambda req: self.requests.append(req.url))

    def open(self, fragment: str = "") -> Any:
        self.page.goto(f"{self.service_url}/console{fragment}")
        return self.page

    def close(self) -> None:
        elsewhere = [url for url in self.requests if not local(url, self.service_url)]
        self.context.close()
        assert not elsewhere, f"the console reached outside persistd: {elsewhere}"


@pytest.fixture
def console(browser: Any, service_url: str) -> Iterator[Console]:
    opened = Console(browser, service_url)
    yield opened
    opened.close()


class Bot:
    """client/typescript/e2e/bot.mjs: a real backtest-kit 19.5.0 live bot; reads its markers."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        assert (E2E / "node_modules" / "backtest-kit").is_dir(), "run scripts/bootstrap first"
        cwd.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["node", "--preserve-symlinks", str(E2E / "bot.mjs")],
            cwd=cwd, env={**NODE_ENV, **env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, marker: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict) and parsed.get("marker") == marker:
                return parsed
        raise AssertionError(f"bot: no {marker} marker; output: {''.join(self.seen)[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def past_minute(minutes_ago: int) -> int:
    return (int(time.time() * 1000) // MIN) * MIN - minutes_ago * MIN


def test_fleet_shows_a_live_bots_position_within_2_s_and_drops_it_when_closed(
    console: Console, service_url: str, http: httpx.Client, ns: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    when = past_minute(60)
    env = {
        "PERSISTD_URL": service_url,
        "PERSISTD_NAMESPACE": ns,
        "BOT_SWITCH": str(when + 2 * MIN),
    }
    # The bot's first, idle tick: it reads (and so stores) candles, and the namespace exists.
    idle = Bot(tmp_path / "idle", {**env, "BOT_PHASE": "restore", "BOT_WHEN": str(when)})
    try:
        assert idle.wait_for("tick")["action"] == "idle"
    finally:
        idle.stop()

    page = console.open()
    page.fill("#filter", ns)
    row = page.locator(f'#fleet tr[data-ns="{ns}"]')
    expect(row).to_be_visible(timeout=10_000)
    expect(row.locator("td.signals")).to_contain_text("none")
    signal = row.locator('tr.signal[data-symbol="BTCUSDT"]')

    bot = Bot(tmp_path / "open", {**env, "BOT_PHASE": "open", "BOT_WHEN": str(when)})
    try:
        opened = bot.wait_for("tick")
        assert opened["action"] == "opened", opened
        started = time.monotonic()
        expect(signal).to_be_visible(timeout=2_000)
        shown_after = time.monotonic() - started
        bot.wait_for("holding")
    finally:
        bot.stop()  # SIGKILL: the position stays open in persistd
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
    expect(signal.locator(".symbol")).to_have_text("BTCUSDT")
    expect(signal.locator(".strategy")).to_have_text("crash-test")
    expect(signal.locator(".exchange")).to_have_text("offline")
    expect(signal.locator(".position")).to_have_text("long")
    expect(signal.locator(".entry")).to_have_text("100")
    expect(signal.locator(".tp")).to_have_text("110")
    expect(signal.locator(".sl")).to_have_text("90")
    expect(row.locator("td.risk")).to_contain_text("r1_offline: BTCUSDT long @ 100")
    stored = http.get(f"/v1/{ns}/signal/{SIGNAL_ENTITY}/records/BTCUSDT").json()
    assert stored["id"] == opened["id"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-fleet.png"))

    closer = Bot(
        tmp_path / "close", {**env, "BOT_PHASE": "restore", "BOT_WHEN": str(when + 10 * MIN)}
    )
    try:
        closed = closer.wait_for("tick")
        assert closed["action"] == "closed" and closed["closeReason"] == "take_profit", closed
        started = time.monotonic()
        expect(signal).to_have_count(0, timeout=2_000)
        gone_after = time.monotonic() - started
    finally:
        closer.stop()
    expect(row.locator("td.risk")).to_contain_text("none")
    print(
        f"position shown {shown_after:.2f} s after the open, "
        f"gone {gone_after:.2f} s after the close"
    )


def test_record_browser_pages_an_entity_and_deep_links_a_record(
    console: Console, http: httpx.Client, ns: str
) -> None:
    from playwright.sync_api import expect

    items = [
        {"key": f"k{i:03d}", "value": {"n": i, "nested": {"deep": [i, "x"]}}} for i in range(60)
    ]
    assert http.post(f"/v1/{ns}/misc/e%2Fone/batch-put", json={"items": items}).status_code == 200

    page = console.open(f"#/ns/{ns}")
    expect(page.locator("main table.listing")).to_contain_text("misc")
    page.get_by_role("link", name="misc").focus()
    page.keyboard.press("Enter")  # keyboard-usable: links all the way down
    expect(page.locator("main table.listing")).to_contain_text("e/one")
    page.get_by_role("link", name="e/one").click()
    expect(page.locator("#entity-count")).to_have_text("60 records · page 1 of 2")
    expect(page.locator("#records tbody tr")).to_have_count(50)
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#records tbody tr")).to_have_count(10)
    expect(page.locator('tr[data-key="k059"]')).to_contain_text('"deep"')

    page.goto(f"{console.service_url}/console#/ns/{ns}/misc/e%2Fone/k042")
    expect(page.locator("#record-version")).to_have_text("1")
    value = page.locator("#record-value")
    expect(value).to_contain_text('"n": 42')
    expect(value).to_contain_text('"deep"')
    value.locator("summary").first.click()  # collapses the whole value
    expect(value.locator('text="n": ')).to_be_hidden()

    for fragment, text in (
        (f"#/ns/{ns}/misc/e%2Fone/nope", f"There is no record “nope” in {ns} / misc / e/one."),
        (f"#/ns/{ns}/misc/other", f"Entity “other” has no records in {ns} / misc."),
        ("#/ns/no-such-bot", "Namespace “no-such-bot” has no records"),
        ("#/ns/Bad Name!", "That address is not valid"),
        ("#/elsewhere", "The console has no page at"),
    ):
        page.goto(f"{console.service_url}/console{fragment}")
        expect(page.get_by_role("alert")).to_contain_text(text)


def test_fleet_with_500_namespaces_reads_only_the_rows_on_screen(
    console: Console, http: httpx.Client
) -> None:
    from playwright.sync_api import expect

    prefix = f"f{uuid.uuid4().hex[:6]}"

    def seed(i: int) -> int:
        body = [["s_x", {"symbol": f"S{i}", "position": "long", "priceOpen": i}]]
        return http.put(f"/v1/{prefix}-{i:03d}/risk/r_x/records/positions", json=body).status_code

    assert {seed(i) for i in range(500)} == {201}
    started = time.monotonic()
    page = console.open()
    page.fill("#filter", prefix)
    expect(page.locator("#fleet-count")).to_contain_text("500 of ", timeout=5_000)
    expect(page.locator("#fleet-count")).to_contain_text("page 1 of 10")
    expect(page.locator(f'tr[data-ns="{prefix}-000"] td.risk')).to_contain_text("S0 long @ 0")
    first_rows = time.monotonic() - started
    page.wait_for_timeout(2_500)  # nothing is polled: rows off screen stay unread
    # This test's namespaces read: before the filter applies, the page also shows (and reads)
    # the rows of other tests' namespaces, and the stream is a /v1 request of its own.
    paths = (u.split("/v1/")[1] for u in console.requests if "/v1/" in u)
    read = {ns for ns in (p.split("/")[0] for p in paths) if ns.startswith(prefix)}
    # Only the rows on screen (a 1000 px viewport shows about 20) are read, not all 500.
    assert 5 <= len(read) <= 30, sorted(read)
    page.get_by_role("button", name="Next page").click()
    expect(page.locator(f'tr[data-ns="{prefix}-050"] td.risk')).to_contain_text("S50 long @ 50")
    calls = sum("/v1/" in u for u in console.requests)
    print(f"500 namespaces: first rows in {first_rows:.2f} s; {len(read)} read; {calls} requests")


def signal_value(symbol: str, entry: float) -> dict[str, Any]:
    return {
        **{"id": f"sig-{symbol}", "symbol": symbol, "strategyName": "s", "exchangeName": "x"},
        **{"position": "long", "priceOpen": entry, "priceTakeProfit": 1e6, "priceStopLoss": 0},
    }


def signal_path(ns: str, symbol: str) -> str:
    return f"/v1/{ns}/signal/{symbol}_s_x/records/{symbol}"


def shown_within(page: Any, ns: str, entry: str, timeout: float = 1.0) -> float:
    """Seconds until the fleet row of `ns` shows `entry` as its signal's entry price (checked
    on every animation frame)."""
    started = time.monotonic()
    page.wait_for_function(
        """([ns, entry]) => {
          const cell = document.querySelector(`#fleet tr[data-ns="${ns}"] tr.signal .entry`);
          return cell !== null && cell.textContent === entry;
        }""",
        arg=[ns, entry],
        timeout=timeout * 1000,
    )
    return time.monotonic() - started


def api_calls(urls: list[str]) -> list[str]:
    """The /v1 requests among `urls`, less the service-wide watch stream."""
    return [u for u in urls if "/v1" in u and "/v1/_watch" not in u]


def test_fleet_follows_one_stream_shows_a_put_within_1_s_and_never_polls(
    console: Console, http: httpx.Client, ns: str
) -> None:
    from playwright.sync_api import expect

    assert http.put(signal_path(ns, "BTCUSDT"), json=signal_value("BTCUSDT", 100)).is_success
    page = console.open()
    page.fill("#filter", ns)
    expect(page.locator(f'#fleet tr[data-ns="{ns}"] tr.signal .entry')).to_have_text("100")
    expect(page.locator("#status")).to_have_text("live · watching changes")

    quiet_from = len(console.requests)
    page.wait_for_timeout(3_000)  # nothing changes: nothing is asked
    assert api_calls(console.requests[quiet_from:]) == []

    assert http.put(signal_path(ns, "BTCUSDT"), json=signal_value("BTCUSDT", 101)).is_success
    shown_after = shown_within(page, ns, "101")
    # A namespace the page has not listed appears with its first change.
    assert http.put(signal_path(f"{ns}-new", "ETHUSDT"), json=signal_value("ETHUSDT", 7)).is_success
    new_after = shown_within(page, f"{ns}-new", "7")
    expect(page.locator("#fleet-count")).to_contain_text("2 of ")

    quiet_from = len(console.requests)
    page.wait_for_timeout(3_000)
    assert api_calls(console.requests[quiet_from:]) == []
    streams = [u for u in console.requests if "/v1/_watch" in u]
    assert len(streams) == 1, streams  # one stream for the whole page, never reopened
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
    print(f"a put shown after {shown_after:.2f} s; a new namespace after {new_after:.2f} s")


def test_fleet_with_500_signal_namespaces_pages_filters_and_shows_a_change_within_1_s(
    console: Console, http: httpx.Client
) -> None:
    from playwright.sync_api import expect

    prefix = f"g{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i:03d}" for i in range(500)]
    for i, name in enumerate(names):
        assert http.put(signal_path(name, f"S{i}"), json=signal_value(f"S{i}", i)).is_success
    started = time.monotonic()
    page = console.open()
    page.fill("#filter", prefix)
    count = page.locator("#fleet-count")
    expect(count).to_contain_text("500 of ", timeout=5_000)
    expect(count).to_contain_text("page 1 of 10")
    expect(page.locator("#fleet tbody > tr")).to_have_count(50)
    shown_within(page, names[0], "0", timeout=5)
    first_rows = time.monotonic() - started

    page.fill("#filter", f"{prefix}-12")  # 120 to 129
    expect(count).to_contain_text("10 of ")
    expect(page.locator("#fleet tbody > tr")).to_have_count(10)
    shown_within(page, names[125], "125", timeout=5)
    page.fill("#filter", prefix)
    page.get_by_role("button", name="Next page").click()
    expect(count).to_contain_text("page 2 of 10")
    shown_within(page, names[50], "50", timeout=5)
    shown_within(page, names[51], "51", timeout=5)

    before = len(console.requests)
    assert http.put(signal_path(names[51], "S51"), json=signal_value("S51", 5100)).is_success
    change_after = shown_within(page, names[51], "5100")
    # A change to a bot on another page costs nothing.
    assert http.put(signal_path(names[400], "S400"), json=signal_value("S400", 1)).is_success
    page.wait_for_timeout(1_000)
    asked = api_calls(console.requests[before:])
    assert asked and all(f"/v1/{names[51]}" in u for u in asked), asked
    read = {u.split("/v1/")[1].split("/")[0] for u in api_calls(console.requests) if "/v1/" in u}
    read &= set(names)  # before the filter is typed, the first page shows other tests' bots
    # Rows on screen only (a 1000 px viewport shows about 20 of a page's 50), not all 500.
    assert 10 <= len(read) <= 70, sorted(read)
    assert len([u for u in console.requests if "/v1/_watch" in u]) == 1
    print(
        f"500 namespaces: first rows in {first_rows:.2f} s; a change shown after "
        f"{change_after:.2f} s ({len(asked)} requests); {len(read)} namespaces read; "
        f"{len(api_calls(console.requests))} requests in all"
    )


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[Service]:
    env = {"PERSISTD_AUTH": "on", "PERSISTD_AUTH_CACHE_TTL": "0.2"}
    with Service(database_url, env=env) as svc:
        yield svc


def test_sign_in_refuses_a_wrong_token_and_a_revoked_one_returns_to_sign_in(
    browser: Any, secured: Service, database_url: str
) -> None:
    from playwright.sync_api import expect

    prefix = f"s{uuid.uuid4().hex[:6]}"
    admin = new_token(database_url, "admin", "*")
    assert httpx.put(
        f"{secured.url}/v1/{prefix}-bot/misc/e/records/k",
        json={"x": 1},
        headers={"Authorization": f"Bearer {admin}"},
    ).is_success
    reader = new_token(database_url, "read", f"{prefix}-*")
    console = Console(browser, secured.url)
    page = console.open()
    form = page.locator("form.signin")
    expect(form).to_be_visible()
    page.fill("#token", reader + "x")
    page.keyboard.press("Enter")
    expect(page.locator("#signin-error")).to_contain_text("That token was refused")
    assert page.evaluate("sessionStorage.length") == 0

    page.fill("#token", reader)
    page.keyboard.press("Enter")
    expect(page.locator(f'#fleet tr[data-ns="{prefix}-bot"]')).to_be_visible()
    assert reader not in page.url
    assert page.evaluate("Object.values(sessionStorage)") == [reader]
    assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""

    # A read token has no restore control, and the API refuses it.
    page.goto(f"{secured.url}/console#/ns/{prefix}-bot")
    expect(page.locator("#restore-absent")).to_contain_text("Restore needs an admin token")
    # The watch stream carries the token in its header too.
    expect(page.locator("#status")).to_have_text("live · watching changes")
    assert not [u for u in console.requests if reader in u], "the token went into a URL"
    expect(page.locator("#restore-preview")).to_have_count(0)
    refused = httpx.post(
        f"{secured.url}/v1/{prefix}-bot/restore",
        json={"at": "2026-01-01T00:00:00Z", "dry_run": True},
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"

    token_id = reader.split("_")[1]
    assert persistd(database_url, "token", "revoke", token_id).returncode == 0
    page.goto(f"{secured.url}/console#/")
    expect(page.locator("#signin-error")).to_contain_text("expired or was revoked", timeout=5_000)
    assert page.evaluate("sessionStorage.length") == 0

    page.fill("#token", admin)
    page.keyboard.press("Enter")
    page.goto(f"{secured.url}/console#/ns/{prefix}-bot")
    expect(page.locator("#restore-preview")).to_be_visible()
    console.close()


def test_console_assets_ship_in_the_package_and_forbid_other_origins(
    http: httpx.Client,
) -> None:
    page = http.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "default-src 'none'" in policy
    assert "http" not in page.text.replace("http-equiv", "")
    for asset in ("/console/assets/console.js", "/console/assets/console.css"):
        answer = http.get(asset)
        assert answer.status_code == 200
        assert "https://" not in answer.text and "http://" not in answer.text
    import persistd

    shipped = Path(persistd.__file__).parent / "console"
    assert {p.name for p in shipped.iterdir()} >= {"index.html", "console.js", "console.css"}


def rest_time() -> str:
    """Now, as the RFC 3339 time the console and the API take."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def test_record_history_shows_every_version_and_a_diff_between_two(
    console: Console, http: httpx.Client, ns: str
) -> None:
    from playwright.sync_api import expect

    path = f"/v1/{ns}/strategy/BTCUSDT_s_x/records/strategy"
    versions: list[dict[str, Any]] = [
        {"pendingSignalId": None, "retryOpenCount": 0, "isPaused": False},
        {"pendingSignalId": "sig-1", "retryOpenCount": 0, "isPaused": False},
        {"pendingSignalId": "sig-1", "retryOpenCount": 2, "isPaused": True},
    ]
    assert http.put(path, json=versions[0]).status_code == 201
    between = rest_time()
    time.sleep(0.05)
    for value in versions[1:]:
        assert http.put(path, json=value).status_code == 200

    page = console.open(f"#/ns/{ns}/strategy/BTCUSDT_s_x/strategy")
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(3)
    diff = page.locator("#diff")
    expect(diff.locator("h3")).to_have_text("Version 2 → version 3")
    expect(diff.locator("del")).to_contain_text(['"isPaused": false', '"retryOpenCount": 0'])
    expect(diff.locator("ins")).to_contain_text(['"isPaused": true', '"retryOpenCount": 2'])
    page.get_by_label("from version 1").check()  # any two versions
    expect(diff.locator("h3")).to_have_text("Version 1 → version 3")
    expect(diff.locator("del")).to_contain_text(['"isPaused": false', '"pendingSignalId": null'])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-diff.png"), full_page=True)

    # Live: a fourth version appears without a reload (the watch stream).
    assert http.delete(path).status_code == 204
    expect(history).to_have_count(4, timeout=2_000)
    expect(page.locator("#history tbody tr").first).to_contain_text("delete")
    expect(page.locator("#record-value")).to_contain_text("This record is deleted")

    # Older versions a page at a time.
    for n in range(50):
        assert http.put(path, json={**versions[2], "retryOpenCount": n}).is_success
    expect(history).to_have_count(50, timeout=5_000)
    page.click("#older")
    expect(history).to_have_count(54)
    expect(page.locator("#older")).to_have_count(0)

    # The whole entity at a chosen past time.
    page.goto(f"{console.service_url}/console#/ns/{ns}/strategy/BTCUSDT_s_x")
    page.fill("#at", between)
    page.get_by_role("button", name="Show at this time").click()
    expect(page).to_have_url(re.compile(r"\?at="))
    expect(page.locator("#records tbody tr")).to_have_count(1)
    expect(page.locator('#records tr[data-key="strategy"]')).to_contain_text(
        '"pendingSignalId": null'
    )


def test_restore_previews_then_puts_a_bots_namespace_back_and_the_history_shows_it(
    console: Console, service_url: str, http: httpx.Client, ns: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    when = past_minute(60)
    env = {"PERSISTD_URL": service_url, "PERSISTD_NAMESPACE": ns, "BOT_SWITCH": str(when + 2 * MIN)}
    bot = Bot(tmp_path / "open", {**env, "BOT_PHASE": "open", "BOT_WHEN": str(when)})
    try:
        opened = bot.wait_for("tick")
        assert opened["action"] == "opened", opened
        bot.wait_for("holding")
    finally:
        bot.stop()
    signal = f"/v1/{ns}/signal/{SIGNAL_ENTITY}/records/BTCUSDT"
    risk = f"/v1/{ns}/risk/r1_offline/records/positions"
    open_state = {signal: http.get(signal).json(), risk: http.get(risk).json()}
    chosen = rest_time()
    time.sleep(0.05)
    closer = Bot(
        tmp_path / "close", {**env, "BOT_PHASE": "restore", "BOT_WHEN": str(when + 10 * MIN)}
    )
    try:
        assert closer.wait_for("tick")["action"] == "closed"
    finally:
        closer.stop()
    assert http.get(signal).json() is None and http.get(risk).json() == []
    versions_before = int(http.get(signal).headers["etag"].strip('"'))

    page = console.open(f"#/ns/{ns}")
    page.fill("#restore-at", chosen)
    page.click("#restore-preview")
    plan = page.locator("#restore-plan")
    expect(plan).to_contain_text("Dry run:")
    preview = page.locator("#restore-result table")
    expect(preview).to_contain_text(f"signal / {SIGNAL_ENTITY} / BTCUSDT")
    expect(preview).to_contain_text("risk / r1_offline / positions")
    assert http.get(signal).json() is None  # a dry run changes nothing
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-restore.png"), full_page=True)

    page.click("#restore-confirm")
    expect(page.locator("#restore-done")).to_contain_text(
        f"Restored the whole namespace to {chosen}"
    )
    for path, value in open_state.items():
        assert http.get(path).json() == value, path
    # The restore is itself in the history: a new version of the signal, live on the page.
    entries = http.get(f"{signal}/history").json()["items"]
    assert entries[0]["version"] == versions_before + 1 and entries[0]["op"] == "put"
    expect(page.locator("#changes")).to_contain_text(f"signal / {SIGNAL_ENTITY} / BTCUSDT")
    expect(page.locator("#bot tr.signal .entry")).to_have_text("100")
    page.goto(f"{console.service_url}/console#/ns/{ns}/signal/{SIGNAL_ENTITY}/BTCUSDT")
    expect(page.locator("#history tbody tr").first).to_have_attribute(
        "data-version", str(versions_before + 1)
    )
    expect(page.locator("#diff del")).to_contain_text(["null"])

    # An entity alone, from its page: already at that time, so nothing to change.
    page.goto(f"{console.service_url}/console#/ns/{ns}/risk/r1_offline")
    page.get_by_role("link", name="Restore this entity…").click()
    expect(page.locator("#restore-domain")).to_have_value("risk")
    expect(page.locator("#restore-entity")).to_have_value("r1_offline")
    expect(page.locator("#restore-at")).to_be_focused()
    page.fill("#restore-at", chosen)
    page.keyboard.press("Enter")
    expect(page.locator("#restore-plan")).to_have_text("Dry run: 0 to put back, 0 to delete.")
    expect(page.locator("#restore-result")).to_contain_text("Nothing to change.")


def test_pages_show_reconnecting_while_persistd_is_down_and_resume_with_no_missed_change(
    browser: Any, database_url: str, http: httpx.Client, ns: str
) -> None:
    """The bot page follows its namespace's watch stream and the fleet the service-wide one,
    both resumed by Last-Event-ID."""
    from playwright.sync_api import expect

    signal_path = f"/v1/{ns}/signal/ETHUSDT_s_x/records/ETHUSDT"
    row = {
        **{"id": "sig-1", "symbol": "ETHUSDT", "strategyName": "s", "exchangeName": "x"},
        **{"position": "short", "priceTakeProfit": 8, "priceStopLoss": 12},
    }

    def put(n: int) -> None:
        assert http.put(signal_path, json={**row, "priceOpen": 10 + n}).is_success

    put(0)
    with Service(database_url) as own:
        console = Console(browser, own.url)
        bot_page = console.open(f"#/ns/{ns}")
        fleet = console.context.new_page()
        fleet.goto(f"{own.url}/console")
        fleet.fill("#filter", ns)
        entry = fleet.locator(f'tr[data-ns="{ns}"] tr.signal .entry')
        expect(entry).to_have_text("10")
        bot_status = bot_page.locator("#status")
        expect(bot_status).to_have_text("live · watching changes")
        expect(fleet.locator("#status")).to_have_text("live · watching changes")
        changes = bot_page.locator("#changes li")
        expect(changes).to_have_count(0)

        # Killed before any change reached the page: it resumes from the stream's first id.
        own.stop(SIGKILL)  # a crash: open watch streams are cut, not ended
        expect(bot_status).to_have_text("reconnecting…", timeout=5_000)
        expect(fleet.locator("#status")).to_have_text("reconnecting…", timeout=5_000)
        for n in (1, 2, 3):  # through another persistd on the same database
            put(n)
        own.start()
        expect(bot_status).to_have_text("live · watching changes", timeout=5_000)
        expect(changes).to_have_count(3, timeout=2_000)
        expect(entry).to_have_text("13", timeout=2_000)
        expect(bot_page.locator("#bot tr.signal .entry")).to_have_text("13")
        put(4)
        expect(changes).to_have_count(4, timeout=2_000)
        shown = [int(s) for s in changes.evaluate_all("(els) => els.map((e) => e.dataset.seq)")]
        feed = http.get(f"/v1/{ns}/changes", params={"since": 0}).json()["items"]
        # Newest first on the page; every change after the page opened, once, in order.
        assert shown[::-1] == [c["seq"] for c in feed][1:]
        console.close()


# WCAG 2.2 contrast of every visible piece of text against what is behind it (computed styles,
# translucent backgrounds composited up to the first opaque one, white below the page).
CONTRAST = """() => {
  const rgba = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c);
    if (!m) return null;
    const p = m[1].split(",").map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, below) => top.slice(0, 3).map((v, i) => v * top[3] + below[i] * (1 - top[3]));
  const luminance = (rgb) => rgb.map((v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    return layers.reverse().reduce((below, top) => over(top, below), [255, 255, 255]);
  };
  const seen = new Set(), low = [];
  let least = Infinity;
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const el = walk.currentNode.parentElement;
    if (!walk.currentNode.textContent.trim() || seen.has(el)) continue;
    const style = getComputedStyle(el), box = el.getBoundingClientRect();
    if (style.visibility === "hidden" || box.width === 0 || box.height === 0) continue;
    if (box.right <= 0 || box.bottom <= 0) continue;  // moved off screen (the skip link)
    seen.add(el);
    const bg = behind(el), fg = over(rgba(style.color), bg);
    const [a, b] = [luminance(fg), luminance(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    least = Math.min(least, ratio);
    if (ratio < needed) {
      low.push(`${walk.currentNode.textContent.trim().slice(0, 30)}: ${ratio.toFixed(2)}`);
    }
  }
  return { checked: seen.size, least, low };
}"""


def test_every_text_on_the_consoles_pages_has_readable_contrast(
    console: Console, http: httpx.Client, ns: str
) -> None:
    """WCAG AA (4.5:1, 3:1 for large text), measured in the browser on the fleet, a bot's page,
    a record with its history and a diff, the JSON of an entity, and an error."""
    from playwright.sync_api import expect

    assert http.put(signal_path(ns, "BTCUSDT"), json=signal_value("BTCUSDT", 100)).is_success
    path = f"/v1/{ns}/strategy/BTCUSDT_s_x/records/strategy"
    for n in range(3):
        assert http.put(path, json={"retryOpenCount": n, "isPaused": n == 2}).is_success
    page = console.open()
    page.fill("#filter", ns)
    expect(page.locator(f'#fleet tr[data-ns="{ns}"] tr.signal .entry')).to_have_text("100")
    pages = {"fleet": page.evaluate(CONTRAST)}
    for name, fragment, ready in (
        ("bot", f"#/ns/{ns}", "main table.listing"),
        ("record", f"#/ns/{ns}/strategy/BTCUSDT_s_x/strategy", "#diff del"),
        ("entity", f"#/ns/{ns}/strategy/BTCUSDT_s_x", "#records tbody tr"),
        ("error", "#/ns/no-such-bot", "[role=alert]"),
    ):
        page.goto(f"{console.service_url}/console{fragment}")
        expect(page.locator(ready).first).to_be_visible()
        pages[name] = page.evaluate(CONTRAST)
    for name, found in pages.items():
        assert found["checked"] >= 3, (name, found)
        assert found["low"] == [], (name, found["low"])
    print({name: round(found["least"], 2) for name, found in pages.items()})
    # The measure itself: light grey on white and black on a dark translucent band are caught
    # (set through the CSSOM: the console's Content-Security-Policy refuses inline styles).
    page.evaluate(
        """() => {
        const grey = document.createElement("p"), band = document.createElement("div");
        const dark = document.createElement("p");
        grey.textContent = "grey"; grey.style.color = "#aaa";
        dark.textContent = "dark"; band.style.background = "rgba(0, 0, 0, 0.7)";
        band.append(dark); document.body.prepend(grey, band);
        }"""
    )
    caught = page.evaluate(CONTRAST)["low"]
    assert sorted(low.split(":")[0] for low in caught) == ["dark", "grey"], caught
