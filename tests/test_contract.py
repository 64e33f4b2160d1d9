"""The client contract: served by the service, checked in as client/contract.json, never stale."""

import asyncio
import json
import re
import subprocess
import sys
import unicodedata

import httpx
import pytest

from persistd.config import Settings
from persistd.errors import InvalidName
from persistd.main import create_app
from persistd.names import check_name, check_slug
from tests.support import ROOT

CONTRACT_FILE = ROOT / "client" / "contract.json"


def test_the_checked_in_contract_is_what_the_service_generates() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "persistd.cli", "contract"],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PERSISTD_MAX_BATCH_ITEMS": "3"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    # The environment does not leak into the file: it holds the defaults.
    assert done.stdout == CONTRACT_FILE.read_text(encoding="utf-8"), (
        "client/contract.json is stale: run `persistd contract --output client/contract.json`"
    )


def test_the_service_publishes_its_own_limits_at_v1_contract() -> None:
    app = create_app(Settings(max_batch_items=7, max_value_bytes=99, max_batch_bytes=1234))

    async def get() -> httpx.Response:
        # No lifespan: the contract needs no database.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/v1/_contract")

    resp = asyncio.run(get())
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["limits"] == {"max_value_bytes": 99, "max_batch_items": 7, "max_batch_bytes": 1234}
    file = json.loads(CONTRACT_FILE.read_text(encoding="utf-8"))
    assert {k: v for k, v in body.items() if k != "limits"} == {
        k: v for k, v in file.items() if k != "limits"
    }


def test_the_published_name_patterns_are_the_rules_the_service_applies() -> None:
    names = json.loads(CONTRACT_FILE.read_text(encoding="utf-8"))["names"]
    slug = re.compile(names["slug"]["pattern"])
    for value in ["a", "bot-1", "a.b_c", "0" * 63, "", "A", "-a", "a" * 64, "a/b", "a\n", "é"]:
        try:
            check_slug("namespace", value)
            accepted = True
        except InvalidName:
            accepted = False
        assert bool(slug.fullmatch(value)) == accepted, value
    forbidden = re.compile(names["name"]["forbidden_characters"])
    for code in range(0x300):
        ch = chr(code)
        assert bool(forbidden.search(ch)) == (unicodedata.category(ch) == "Cc"), hex(code)
    for reserved in names["name"]["reserved"]:
        with pytest.raises(InvalidName):
            check_name("key", reserved)
    check_name("key", "é" * (names["name"]["max_bytes"] // 2))
    with pytest.raises(InvalidName):
        check_name("key", "x" * (names["name"]["max_bytes"] + 1))
