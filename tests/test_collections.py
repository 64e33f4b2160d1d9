"""Collection API: init, listing with pagination, newest-N, batch-get, batch-put, inspection."""

import json
from urllib.parse import quote

import httpx
import pytest

from tests.test_records import JSON, SIGNAL, problem, rec


def coll(ns: str, domain: str = "misc", entity: str = "e") -> str:
    return f"/v1/{ns}/{domain}/{quote(entity, safe='')}"


def fill(http: httpx.Client, ns: str, keys: list[str], entity: str = "e") -> None:
    items = [{"key": k, "value": {"k": k}} for k in keys]
    for start in range(0, len(items), 500):
        resp = http.post(
            coll(ns, entity=entity) + "/batch-put", json={"items": items[start : start + 500]}
        )
        assert resp.status_code == 200, resp.text


def test_init_reports_key_count(http: httpx.Client, ns: str) -> None:
    assert http.post(coll(ns) + "/init", json={"initial": True}).json() == {"keys": 0}
    fill(http, ns, ["a", "b", "c"])
    assert http.post(coll(ns) + "/init", json={"initial": True}).json() == {"keys": 3}
    assert http.post(coll(ns) + "/init").json() == {"keys": 3}


def test_init_rejects_invalid_names(http: httpx.Client) -> None:
    problem(http.post("/v1/Bad/misc/e/init", json={"initial": True}), 400, "invalid_name")


def test_list_pages_cover_every_key_once_in_byte_order(http: httpx.Client, ns: str) -> None:
    keys = [f"k{i:04d}" for i in range(250)] + ["Z", "a/b", "é", "日本", "🚀", "~", " "]
    fill(http, ns, keys)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = http.get(coll(ns) + "/records", params=params).json()
        assert len(page["keys"]) <= 7
        seen += page["keys"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["keys"]) == 7, "a page with a cursor must be full"
    assert seen == sorted(keys, key=lambda k: k.encode())
    assert len(set(seen)) == len(keys)
    assert pages == -(-len(keys) // 7)


def test_list_survives_writes_between_pages(http: httpx.Client, ns: str) -> None:
    fill(http, ns, [f"k{i:02d}" for i in range(20)])
    first = http.get(coll(ns) + "/records", params={"limit": 10}).json()
    fill(http, ns, ["k00a", "k99"])  # one before the cursor, one after
    rest = http.get(coll(ns) + "/records", params={"limit": 100, "cursor": first["next_cursor"]})
    keys = first["keys"] + rest.json()["keys"]
    assert len(keys) == len(set(keys))
    assert set(f"k{i:02d}" for i in range(20)) | {"k99"} <= set(keys)


def test_full_last_page_has_no_cursor_only_when_nothing_follows(
    http: httpx.Client, ns: str
) -> None:
    fill(http, ns, ["a", "b"])
    page = http.get(coll(ns) + "/records", params={"limit": 2}).json()
    assert page == {"keys": ["a", "b"], "next_cursor": None}
    fill(http, ns, ["c"])
    page = http.get(coll(ns) + "/records", params={"limit": 2}).json()
    assert page["keys"] == ["a", "b"] and page["next_cursor"]


def test_list_with_values_returns_items(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "a"), json={"x": 1})
    http.put(rec(ns, "a"), json={"x": 2})
    http.put(rec(ns, "b"), content=b"null", headers=JSON)
    items = http.get(coll(ns) + "/records", params={"values": "true"}).json()["items"]
    assert [(i["key"], i["value"], i["version"]) for i in items] == [
        ("a", {"x": 2}, 2),
        ("b", None, 1),
    ]
    assert all(i["updated_at"] for i in items)


def test_list_rejects_bad_parameters(http: httpx.Client, ns: str) -> None:
    bad: list[dict[str, str | int]] = [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "x"},
        {"cursor": "!!!"},
        {"newest": 0},
    ]
    for params in bad:
        problem(http.get(coll(ns) + "/records", params=params), 400, "invalid_request")
    both: dict[str, str | int] = {"newest": 5, "cursor": "YQ"}
    problem(http.get(coll(ns) + "/records", params=both), 400, "invalid_request")


def test_newest_returns_most_recently_written_oldest_first(http: httpx.Client, ns: str) -> None:
    for k in ["c", "a", "d", "b"]:
        http.put(rec(ns, k), json=k)
    http.put(rec(ns, "c"), json="c2")
    items = http.get(coll(ns) + "/records", params={"newest": 3}).json()["items"]
    assert [i["key"] for i in items] == ["d", "b", "c"]
    assert items[-1]["value"] == "c2"


def test_batch_get_returns_found_in_request_order_and_lists_missing(
    http: httpx.Client, ns: str
) -> None:
    fill(http, ns, ["a", "b", "c/d"])
    resp = http.post(coll(ns) + "/batch-get", json={"keys": ["c/d", "zz", "a", "yy"]})
    body = resp.json()
    assert [i["key"] for i in body["items"]] == ["c/d", "a"]
    assert body["items"][0]["value"] == {"k": "c/d"}
    assert body["items"][0]["version"] == 1
    assert body["missing"] == ["zz", "yy"]


def test_batch_get_rejects_invalid_key(http: httpx.Client, ns: str) -> None:
    problem(http.post(coll(ns) + "/batch-get", json={"keys": ["ok", ".."]}), 400, "invalid_name")
    problem(http.post(coll(ns) + "/batch-get", json={"key": ["a"]}), 400, "invalid_request")
    problem(http.post(coll(ns) + "/batch-get", json={"keys": [1]}), 400, "invalid_request")


def test_batch_put_upserts_all_items_atomically(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "a"), json="old")
    items = [{"key": "a", "value": "new"}, {"key": "b", "value": None}, {"key": "c", "value": [1]}]
    resp = http.post(coll(ns) + "/batch-put", json={"items": items})
    assert resp.status_code == 200
    assert resp.json()["items"] == [
        {"key": "a", "version": 2, "written": True},
        {"key": "b", "version": 1, "written": True},
        {"key": "c", "version": 1, "written": True},
    ]
    assert http.get(rec(ns, "a")).json() == "new"
    assert http.get(rec(ns, "b")).content == b"null"


def test_batch_put_insert_if_absent_keeps_existing(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "a"), json="first")
    items = [{"key": "a", "value": "second"}, {"key": "b", "value": "fresh"}]
    resp = http.post(coll(ns) + "/batch-put", json={"items": items, "mode": "insert_if_absent"})
    assert resp.json()["items"] == [
        {"key": "a", "version": None, "written": False},
        {"key": "b", "version": 1, "written": True},
    ]
    assert http.get(rec(ns, "a")).json() == "first"


@pytest.mark.parametrize(
    ("bad_item", "status", "code"),
    [
        ({"key": "..", "value": 1}, 400, "invalid_name"),
        ({"key": "bad", "value": {"position": "long"}}, 422, "invalid_value"),
        ({"key": "a", "value": 1}, 400, "invalid_request"),  # duplicate of the first item
        ({"value": 1}, 400, "invalid_request"),
    ],
)
def test_batch_put_with_one_bad_item_stores_nothing(
    http: httpx.Client, ns: str, bad_item: dict[str, object], status: int, code: str
) -> None:
    items = [{"key": "a", "value": SIGNAL}, {"key": "b", "value": SIGNAL}, bad_item]
    problem(http.post(coll(ns, "signal") + "/batch-put", json={"items": items}), status, code)
    assert http.get(coll(ns, "signal") + "/records").json()["keys"] == []


def test_batch_put_is_atomic_when_the_database_rejects_an_item(http: httpx.Client, ns: str) -> None:
    # PostgreSQL cannot store U+0000 in jsonb: the whole batch must roll back.
    raw = '{"items": [{"key": "a", "value": 1}, {"key": "b", "value": "nul\\u0000"}]}'
    resp = http.post(coll(ns) + "/batch-put", content=raw, headers=JSON)
    problem(resp, 422, "invalid_value")
    assert http.get(coll(ns) + "/records").json()["keys"] == []


def test_batch_put_rejects_unknown_mode_and_invalid_json(http: httpx.Client, ns: str) -> None:
    body = {"items": [{"key": "a", "value": 1}], "mode": "merge"}
    problem(http.post(coll(ns) + "/batch-put", json=body), 400, "invalid_request")
    problem(http.post(coll(ns) + "/batch-put", content=b"{", headers=JSON), 400, "invalid_json")


def test_batch_keeps_numbers_exact(http: httpx.Client, ns: str) -> None:
    raw = '{"items": [{"key": "n", "value": 123456789012345678901234567890}]}'
    assert http.post(coll(ns) + "/batch-put", content=raw, headers=JSON).status_code == 200
    assert http.get(rec(ns, "n")).text == "123456789012345678901234567890"


def test_inspection_lists_namespaces_domains_entities_with_counts(
    http: httpx.Client, ns: str
) -> None:
    fill(http, ns, ["a", "b"], entity="e1")
    fill(http, ns, ["c"], entity="e/2")
    http.put(rec(ns, "BTCUSDT", "signal", "BTCUSDT_s"), content=json.dumps(None), headers=JSON)
    namespaces = http.get("/v1").json()["items"]
    assert {"name": ns, "records": 4} in namespaces
    assert http.get(f"/v1/{ns}").json()["items"] == [
        {"name": "misc", "records": 3},
        {"name": "signal", "records": 1},
    ]
    assert http.get(f"/v1/{ns}/misc").json()["items"] == [
        {"name": "e/2", "records": 1},
        {"name": "e1", "records": 2},
    ]
    problem(http.get("/v1/NO"), 400, "invalid_name")


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_init_body_is_limited_and_checked(http: httpx.Client, ns: str) -> None:
    big = b'{"initial": true, "pad": "' + b"x" * 5000 + b'"}'
    problem(http.post(coll(ns) + "/init", content=big, headers=JSON), 413, "payload_too_large")
    problem(http.post(coll(ns) + "/init", content=b"{", headers=JSON), 400, "invalid_json")
    bad_type = {"content-type": "text/plain"}
    problem(
        http.post(coll(ns) + "/init", content=b"x", headers=bad_type), 415, "unsupported_media_type"
    )
    problem(http.post(coll(ns) + "/init", json={"initial": "yes"}), 400, "invalid_request")
