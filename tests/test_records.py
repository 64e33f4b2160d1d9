"""Single-record API: statuses, versions, conditions, names, values and errors."""

import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.support import Service

JSON = {"content-type": "application/json"}


def rec(ns: str, key: str, domain: str = "misc", entity: str = "e") -> str:
    return f"/v1/{ns}/{domain}/{quote(entity, safe='')}/records/{quote(key, safe='')}"


def problem(resp: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = resp.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"] and body["detail"] and str(body["type"]).endswith(code)
    assert "Traceback" not in resp.text
    return body


SIGNAL = {
    "id": "sig-1",
    "position": "long",
    "priceOpen": 100.5,
    "priceTakeProfit": 110,
    "priceStopLoss": 95,
    "minuteEstimatedTime": None,
    "extra": {"nested": [1, 2, 3]},
}


def test_put_creates_with_201_and_version_1(http: httpx.Client, ns: str) -> None:
    resp = http.put(rec(ns, "k"), json={"a": 1})
    assert resp.status_code == 201
    assert resp.json() == {"version": 1}
    assert resp.headers["etag"] == '"1"'


def test_put_replaces_with_200_and_next_version(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "k"), json={"a": 1})
    resp = http.put(rec(ns, "k"), json={"a": 2})
    assert resp.status_code == 200
    assert resp.json() == {"version": 2}
    assert http.get(rec(ns, "k")).json() == {"a": 2}


def test_get_returns_value_with_etag_and_last_modified(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "k", "signal"), json=SIGNAL)
    resp = http.get(rec(ns, "k", "signal"))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == SIGNAL
    assert resp.headers["etag"] == '"1"'
    assert resp.headers["last-modified"].endswith("GMT")


def test_get_absent_returns_404_not_found(http: httpx.Client, ns: str) -> None:
    problem(http.get(rec(ns, "nope")), 404, "not_found")


def test_head_answers_existence_with_the_same_headers(http: httpx.Client, ns: str) -> None:
    assert http.head(rec(ns, "k")).status_code == 404
    http.put(rec(ns, "k"), json=[1])
    http.put(rec(ns, "k"), json=[2])
    resp = http.head(rec(ns, "k"))
    assert resp.status_code == 200
    assert resp.headers["etag"] == '"2"'
    assert resp.headers["last-modified"] == http.get(rec(ns, "k")).headers["last-modified"]
    assert resp.content == b""


def test_stored_null_is_not_absent(http: httpx.Client, ns: str) -> None:
    resp = http.put(rec(ns, "k"), content=b"null", headers={"content-type": "application/json"})
    assert resp.status_code == 201
    got = http.get(rec(ns, "k"))
    assert got.status_code == 200
    assert got.content == b"null"
    assert http.head(rec(ns, "k")).status_code == 200
    assert http.get(f"/v1/{ns}/misc/e/records").json()["keys"] == ["k"]


@pytest.mark.parametrize(
    "value",
    [0, -1.5, "text", True, [], {}, [None, {"a": [1, {"b": None}]}], "ünïcødé ✓ 🚀"],
)
def test_any_json_value_round_trips(http: httpx.Client, ns: str, value: object) -> None:
    assert http.put(rec(ns, "k"), json=value).status_code == 201
    assert http.get(rec(ns, "k")).json() == value


def test_numbers_are_stored_exactly(http: httpx.Client, ns: str) -> None:
    raw = b'{"big": 123456789012345678901234567890, "dec": 0.1000000000000000055511151231257827}'
    http.put(rec(ns, "k"), content=raw, headers={"content-type": "application/json"})
    text = http.get(rec(ns, "k")).text
    assert "123456789012345678901234567890" in text
    assert "0.1000000000000000055511151231257827" in text


NAMES = [
    "a/b",
    "a%2Fb",
    "100%",
    "with space",
    "q?x=1&y",
    "frag#ment",
    "colon:and;semi",
    "ünïcødé-名前-🚀",
    "..x",
    ".hidden",
    "+plus+",
    "tab-free\\back\\slash",
    "x" * 512,
    "é" * 256,
]


@pytest.mark.parametrize("name", NAMES)
def test_entity_and_key_names_round_trip_exactly(http: httpx.Client, ns: str, name: str) -> None:
    assert http.put(rec(ns, name, entity=name), json={"name": name}).status_code == 201
    assert http.get(rec(ns, name, entity=name)).json() == {"name": name}
    listed = http.get(f"/v1/{ns}/misc/{quote(name, safe='')}/records").json()["keys"]
    assert listed == [name]
    entities = http.get(f"/v1/{ns}/misc").json()["items"]
    assert entities == [{"name": name, "records": 1}]


def test_encoded_slash_stays_inside_its_segment(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "a/b"), json=1)
    http.put(rec(ns, "a"), json=2)
    assert http.get(rec(ns, "a/b")).json() == 1
    assert http.get(f"/v1/{ns}/misc/e/records/a/b").status_code == 404


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/v1/{ns}/misc/e/records/%2E", "reserved"),
        ("/v1/{ns}/misc/e/records/%2E%2E", "reserved"),
        ("/v1/{ns}/misc/e/records/a%00b", "control character"),
        ("/v1/{ns}/misc/e/records/a%0Ab", "control character"),
        ("/v1/{ns}/misc/e/records/a%7Fb", "control character"),
        ("/v1/{ns}/misc/e/records/%FF%FE", "UTF-8"),
        ("/v1/{ns}/misc/e/records/" + "x" * 513, "513 bytes"),
        ("/v1/{ns}/misc/" + "é" * 257 + "/records/k", "514 bytes"),
        ("/v1/UPPER/misc/e/records/k", "namespace"),
        ("/v1/{ns}/-bad/e/records/k", "domain"),
        ("/v1/{ns}/" + "d" * 64 + "/e/records/k", "domain"),
        ("/v1/{ns}/sp%20ace/e/records/k", "domain"),
    ],
)
def test_invalid_names_get_400_invalid_name_and_store_nothing(
    http: httpx.Client, ns: str, path: str, fragment: str
) -> None:
    url = path.format(ns=ns)
    body = problem(http.put(url, json={"a": 1}), 400, "invalid_name")
    assert fragment in str(body["detail"])
    problem(http.get(url), 400, "invalid_name")
    assert http.get("/v1/" + ns).json()["items"] == []


@pytest.mark.parametrize(
    "path",
    ["/v1/{ns}/misc/e/records/", "/v1/{ns}/misc//records/k", "/v1/{ns}//e/records/k", "/v1//"],
)
def test_empty_name_segments_get_400_invalid_name(http: httpx.Client, ns: str, path: str) -> None:
    url = path.format(ns=ns)
    problem(http.put(url, json=1), 400, "invalid_name")
    problem(http.get(url), 400, "invalid_name")


def test_invalid_json_gets_400_invalid_json(http: httpx.Client, ns: str) -> None:
    for raw in [b"{", b"", b"NaN", b"[Infinity]", b"{'a': 1}", b"\xff\xfe", b"[1,]"]:
        resp = http.put(rec(ns, "k"), content=raw, headers={"content-type": "application/json"})
        problem(resp, 400, "invalid_json")
    assert http.get(rec(ns, "k")).status_code == 404


def test_wrong_content_type_gets_415(http: httpx.Client, ns: str) -> None:
    resp = http.put(rec(ns, "k"), content=b"{}", headers={"content-type": "text/plain"})
    problem(resp, 415, "unsupported_media_type")
    ok = http.put(rec(ns, "k"), content=b"{}", headers={"content-type": "application/merge+json"})
    assert ok.status_code == 201


@pytest.mark.parametrize(
    ("domain", "value", "fragment"),
    [
        ("signal", {"position": "long"}, "'id'"),
        ("signal", {**SIGNAL, "position": "up"}, "'position'"),
        ("signal", {**SIGNAL, "priceOpen": "100"}, "'priceOpen'"),
        ("signal", [SIGNAL], "null or an object"),
        ("schedule", {**SIGNAL, "priceStopLoss": None}, "'priceStopLoss'"),
        ("risk", {"a": 1}, "array"),
        ("risk", [["k", {}], ["k2"]], "item 1"),
        ("partial", {"sig": {"profitLevels": []}}, "'lossLevels'"),
        ("partial", [], "object"),
    ],
)
def test_seed_domain_shape_violation_gets_422(
    http: httpx.Client, ns: str, domain: str, value: object, fragment: str
) -> None:
    body = problem(http.put(rec(ns, "k", domain), json=value), 422, "invalid_value")
    assert fragment in str(body["detail"])
    assert http.get(rec(ns, "k", domain)).status_code == 404


@pytest.mark.parametrize(
    ("domain", "value"),
    [
        ("signal", None),
        ("signal", SIGNAL),
        ("schedule", {**SIGNAL, "position": "short", "newField": True}),
        ("risk", [["s_e_BTCUSDT", {"position": "long"}]]),
        ("risk", []),
        ("partial", {"sig": {"profitLevels": [10, 20], "lossLevels": []}}),
        ("partial", {}),
        ("candle", "anything goes"),
    ],
)
def test_seed_domain_valid_shapes_are_accepted(
    http: httpx.Client, ns: str, domain: str, value: object
) -> None:
    resp = http.put(rec(ns, "k", domain), content=json.dumps(value), headers=JSON)
    assert resp.status_code == 201
    assert http.get(rec(ns, "k", domain)).json() == value


def test_put_with_current_if_match_succeeds(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "k"), json=1)
    resp = http.put(rec(ns, "k"), json=2, headers={"if-match": '"1"'})
    assert resp.status_code == 200
    assert resp.json() == {"version": 2}


def test_put_with_stale_if_match_returns_412_and_keeps_value(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "k"), json=1)
    http.put(rec(ns, "k"), json=2)
    problem(http.put(rec(ns, "k"), json=3, headers={"if-match": '"1"'}), 412, "version_mismatch")
    assert http.get(rec(ns, "k")).json() == 2


def test_put_with_if_match_on_absent_record_returns_412(http: httpx.Client, ns: str) -> None:
    problem(http.put(rec(ns, "k"), json=1, headers={"if-match": '"1"'}), 412, "version_mismatch")
    problem(http.put(rec(ns, "k"), json=1, headers={"if-match": "*"}), 412, "version_mismatch")
    assert http.get(rec(ns, "k")).status_code == 404


def test_put_with_if_match_star_replaces_any_existing_version(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "k"), json=1)
    assert http.put(rec(ns, "k"), json=2, headers={"if-match": "*"}).json() == {"version": 2}


def test_put_with_if_none_match_star_only_creates(http: httpx.Client, ns: str) -> None:
    first = http.put(rec(ns, "k"), json=1, headers={"if-none-match": "*"})
    assert first.status_code == 201
    second = http.put(rec(ns, "k"), json=2, headers={"if-none-match": "*"})
    problem(second, 412, "version_mismatch")
    assert http.get(rec(ns, "k")).json() == 1


@pytest.mark.parametrize("header", ["1", '"abc"', '"1", "2"', 'W/"1"', '""', '"-1"'])
def test_malformed_if_match_gets_400(http: httpx.Client, ns: str, header: str) -> None:
    http.put(rec(ns, "k"), json=1)
    problem(http.put(rec(ns, "k"), json=2, headers={"if-match": header}), 400, "invalid_request")
    problem(http.delete(rec(ns, "k"), headers={"if-match": header}), 400, "invalid_request")
    assert http.get(rec(ns, "k")).json() == 1


def test_delete_returns_204_then_404(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "k"), json=1)
    assert http.delete(rec(ns, "k")).status_code == 204
    assert http.get(rec(ns, "k")).status_code == 404
    problem(http.delete(rec(ns, "k")), 404, "not_found")


def test_delete_with_stale_if_match_returns_412_and_keeps_record(
    http: httpx.Client, ns: str
) -> None:
    http.put(rec(ns, "k"), json=1)
    http.put(rec(ns, "k"), json=2)
    problem(http.delete(rec(ns, "k"), headers={"if-match": '"1"'}), 412, "version_mismatch")
    assert http.get(rec(ns, "k")).json() == 2
    assert http.delete(rec(ns, "k"), headers={"if-match": '"2"'}).status_code == 204


def test_recreate_after_delete_starts_at_version_1(http: httpx.Client, ns: str) -> None:
    http.put(rec(ns, "k"), json=1)
    http.put(rec(ns, "k"), json=2)
    http.delete(rec(ns, "k"))
    resp = http.put(rec(ns, "k"), json=3)
    assert (resp.status_code, resp.json()) == (201, {"version": 1})


def test_unknown_route_and_method_get_problem_json(http: httpx.Client, ns: str) -> None:
    problem(http.get("/nowhere"), 404, "not_found")
    problem(http.patch(rec(ns, "k"), json=1), 405, "method_not_allowed")


@pytest.fixture(scope="module")
def small_limit_service(database_url: str) -> Iterator[Service]:
    with Service(database_url, env={"PERSISTD_MAX_VALUE_BYTES": "1024"}) as svc:
        yield svc


def test_value_over_the_limit_gets_413_and_stores_nothing(
    small_limit_service: Service, ns: str
) -> None:
    with httpx.Client(base_url=small_limit_service.url) as client:
        big = b'"' + b"x" * 2000 + b'"'
        resp = client.put(rec(ns, "k"), content=big, headers={"content-type": "application/json"})
        problem(resp, 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:
            yield b'"'
            for _ in range(100):
                yield b"x" * 100
            yield b'"'

        for _ in range(5):  # the body arrives in several reads, then the rest is drained
            chunked = client.put(rec(ns, "k"), content=chunks())
            problem(chunked, 413, "payload_too_large")
        big_chunks = (b"[" + b"1," * 5000 + b"1]" for _ in range(1))
        problem(client.put(rec(ns, "k"), content=big_chunks), 413, "payload_too_large")
        assert client.get(rec(ns, "k")).status_code == 404
        exact = b'"' + b"x" * 1022 + b'"'
        resp = client.put(rec(ns, "k"), content=exact, headers={"content-type": "application/json"})
        assert resp.status_code == 201
