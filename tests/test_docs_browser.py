"""/docs in a real browser: it renders offline and "Try it out" reads a stored record.

Needs Debian's chromium (`apt-get install -y chromium`); the Python `playwright` package drives
it and never downloads a browser of its own.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.support import ROOT

ARTIFACTS = ROOT / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
]


def chromium() -> str:
    """The system chromium, installed with apt-get when missing (as root); fails loudly."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=False,
            timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("chromium")
    assert found, "chromium is required for this test: apt-get install -y chromium"
    return found


def local(url: str, service_url: str) -> bool:
    """Served by persistd itself (a same-origin blob: is a worker the page made)."""
    return url.startswith((service_url, "blob:" + service_url, "data:"))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_docs_try_it_out_reads_a_stored_record(
    browser: object, service_url: str, http: httpx.Client, ns: str
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    stored = {"id": "sig-1", "position": "long", "priceOpen": 64123.5}
    assert http.put(f"/v1/{ns}/misc/BTCUSDT_docs/records/latest", json=stored).status_code == 201

    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda req: None if local(req.url, service_url) else elsewhere.append(req.url),
    )
    page.goto(service_url + "/docs", wait_until="networkidle")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("persistd")

    # The exact path: /records/{key}/history is a GET operation too.
    path = "/v1/{namespace}/{domain}/{entity}/records/{key}"
    operation = page.locator(f'.opblock-get:has(.opblock-summary-path[data-path="{path}"])')
    expect(operation.first).to_be_visible()
    expect(page.locator(".opblock-put", has_text="/records/{key}").first).to_be_visible()
    get_record = operation.first
    get_record.locator(".opblock-summary").click()
    get_record.locator("button.try-out__btn").click()
    for name, value in (
        ("namespace", ns),
        ("domain", "misc"),
        ("entity", "BTCUSDT_docs"),
        ("key", "latest"),
    ):
        get_record.locator(f'tr[data-param-name="{name}"] input').fill(value)
    get_record.locator("button.execute").click()

    response = get_record.locator(".live-responses-table tbody .response-col_description").first
    expect(response).to_contain_text("64123.5", timeout=15000)
    expect(response).to_contain_text("sig-1")
    expect(
        get_record.locator(".live-responses-table tbody .response-col_status").first
    ).to_contain_text("200")

    ARTIFACTS.mkdir(exist_ok=True)
    get_record.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=False)
    assert not elsewhere, f"/docs fetched from outside persistd: {elsewhere}"
    page.close()


def test_redoc_renders_offline(browser: object, service_url: str) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page()
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda req: None if local(req.url, service_url) else elsewhere.append(req.url),
    )
    page.goto(service_url + "/redoc", wait_until="networkidle")
    expect(page.locator("h2", has_text="Read a record").first).to_be_visible(timeout=15000)
    assert not elsewhere, f"/redoc fetched from outside persistd: {elsewhere}"
    page.close()


def test_docs_assets_are_served_by_persistd(http: httpx.Client) -> None:
    html = http.get("/docs").text
    assert "cdn." not in html and "googleapis" not in html
    for asset in (
        "/docs/assets/swagger/swagger-ui-bundle.js",
        "/docs/assets/redoc/redoc.standalone.js",
    ):
        assert http.get(asset).status_code == 200
