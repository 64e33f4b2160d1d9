"""The sync client against a real persistd on a real PostgreSQL: every endpoint and error code."""

import math
from collections.abc import Iterator

import httpx
import pytest

from persistd_client import (
    NO_RETRY,
    ConnectionFailed,
    InvalidJson,
    InvalidName,
    InvalidRequest,
    InvalidValue,
    NotFound,
    PayloadTooLarge,
    PersistClient,
    PersistError,
    VersionMismatch,
)
from persistd_client.errors import error_from_response
from tests.support import Service, free_port

SMALL_VALUE_BYTES = 64

SIGNAL = {
    "id": "sig-1",
    "position": "long",
    "priceOpen": 50000.5,
    "priceTakeProfit": 52000,
    "priceStopLoss": 49000,
    "note": "extra fields are kept",
}

# Names the service must store exactly as given: each is one path segment.
ODD_NAMES = [
    "a/b",
    "a//b/",
    "%2F",
    "100%",
    "%",
    "x?y=1#frag",
    " spaced  out ",
    "é-ñ-日本-🙂",
    "BTCUSDT_my-strategy:binance",
    "...",
    ".hidden",
    "a\\b",
    "+&=;@$,",
]


@pytest.fixture(scope="module")
def small_service(database_url: str) -> Iterator[Service]:
    """A second service process whose values may be at most SMALL_VALUE_BYTES."""
    with Service(database_url, env={"PERSISTD_MAX_VALUE_BYTES": str(SMALL_VALUE_BYTES)}) as svc:
        yield svc


# ---- records ----


def test_put_then_get_returns_the_value_and_version(client: PersistClient) -> None:
    written = client.put("misc", "e", "k", {"a": [1, 2.5, "x"], "b": None})
    record = client.get("misc", "e", "k")
    assert written.created is True
    assert record.value == {"a": [1, 2.5, "x"], "b": None}
    assert record.version == written.version == 1


def test_put_over_an_existing_record_replaces_it_and_bumps_the_version(
    client: PersistClient,
) -> None:
    client.put("misc", "e", "k", {"old": True, "gone": 1})
    written = client.put("misc", "e", "k", {"new": True})
    assert (written.version, written.created) == (2, False)
    assert client.get("misc", "e", "k").value == {"new": True}


def test_get_of_an_absent_record_raises_not_found(client: PersistClient) -> None:
    with pytest.raises(NotFound) as caught:
        client.get("misc", "e", "absent")
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert caught.value.detail


def test_has_is_true_for_a_present_record_and_false_for_an_absent_one(
    client: PersistClient,
) -> None:
    client.put("misc", "e", "here", 1)
    assert client.has("misc", "e", "here") is True
    assert client.has("misc", "e", "absent") is False


def test_a_stored_null_is_present_and_distinct_from_absent(client: PersistClient) -> None:
    client.put("misc", "e", "null", None)
    assert client.has("misc", "e", "null") is True
    assert client.get("misc", "e", "null").value is None
    with pytest.raises(NotFound):
        client.get("misc", "e", "never-written")


@pytest.mark.parametrize("value", [0, -1.5, "text", "", True, False, [], {}, [None], {"n": {}}])
def test_any_json_value_round_trips(client: PersistClient, value: object) -> None:
    client.put("misc", "e", "k", value)
    got = client.get("misc", "e", "k").value
    assert got == value
    assert type(got) is type(value)


def test_put_with_current_if_match_replaces(client: PersistClient) -> None:
    first = client.put("misc", "e", "k", 1)
    second = client.put("misc", "e", "k", 2, if_match=first.version)
    assert second.version == first.version + 1
    assert client.get("misc", "e", "k").value == 2


def test_put_with_stale_if_match_raises_version_mismatch(client: PersistClient) -> None:
    client.put("misc", "e", "k", 1)
    client.put("misc", "e", "k", 2)
    with pytest.raises(VersionMismatch) as caught:
        client.put("misc", "e", "k", 3, if_match=1)
    assert (caught.value.status, caught.value.code) == (412, "version_mismatch")
    assert client.get("misc", "e", "k").value == 2


def test_put_with_if_match_on_an_absent_record_raises_version_mismatch(
    client: PersistClient,
) -> None:
    with pytest.raises(VersionMismatch):
        client.put("misc", "e", "absent", 1, if_match=1)


def test_create_only_put_creates_an_absent_record(client: PersistClient) -> None:
    written = client.put("misc", "e", "k", {"first": True}, create_only=True)
    assert (written.version, written.created) == (1, True)


def test_create_only_put_on_an_existing_record_raises_version_mismatch(
    client: PersistClient,
) -> None:
    client.put("misc", "e", "k", "mine")
    with pytest.raises(VersionMismatch):
        client.put("misc", "e", "k", "theirs", create_only=True)
    assert client.get("misc", "e", "k").value == "mine"


def test_if_match_with_create_only_is_refused_before_sending(client: PersistClient) -> None:
    with pytest.raises(ValueError, match="cannot be combined"):
        client.put("misc", "e", "k", 1, if_match=1, create_only=True)


def test_delete_removes_the_record(client: PersistClient) -> None:
    client.put("misc", "e", "k", 1)
    client.delete("misc", "e", "k")
    assert client.has("misc", "e", "k") is False


def test_delete_of_an_absent_record_raises_not_found(client: PersistClient) -> None:
    with pytest.raises(NotFound):
        client.delete("misc", "e", "absent")


def test_delete_with_stale_if_match_raises_version_mismatch_and_keeps_the_record(
    client: PersistClient,
) -> None:
    client.put("misc", "e", "k", 1)
    client.put("misc", "e", "k", 2)
    with pytest.raises(VersionMismatch):
        client.delete("misc", "e", "k", if_match=1)
    client.delete("misc", "e", "k", if_match=2)
    assert client.has("misc", "e", "k") is False


# ---- names ----


@pytest.mark.parametrize("name", ODD_NAMES)
def test_entity_and_key_names_round_trip_exactly(client: PersistClient, name: str) -> None:
    client.put("misc", name, name, {"name": name})
    assert client.get("misc", name, name).value == {"name": name}
    assert client.has("misc", name, name) is True
    assert list(client.iter_keys("misc", name)) == [name]
    assert [c.name for c in client.entities("misc")] == [name]
    client.delete("misc", name, name)
    assert client.has("misc", name, name) is False


def test_names_that_differ_only_by_encoding_are_different_records(client: PersistClient) -> None:
    client.put("misc", "e", "a/b", "slash")
    client.put("misc", "e", "a%2Fb", "percent")
    assert client.get("misc", "e", "a/b").value == "slash"
    assert client.get("misc", "e", "a%2Fb").value == "percent"
    assert sorted(client.iter_keys("misc", "e")) == ["a%2Fb", "a/b"]


def test_int_entity_and_key_are_stored_as_their_decimal_strings(client: PersistClient) -> None:
    client.put("misc", 7, 42, "n")
    assert client.get("misc", "7", "42").value == "n"
    assert list(client.iter_keys("misc", 7)) == ["42"]


@pytest.mark.parametrize("key", [".", "..", "bell\x07", "x" * 513])
def test_a_key_outside_the_naming_rules_raises_invalid_name(
    client: PersistClient, key: str
) -> None:
    with pytest.raises(InvalidName) as caught:
        client.put("misc", "e", key, 1)
    assert (caught.value.status, caught.value.code) == (400, "invalid_name")
    assert isinstance(caught.value, InvalidRequest)


@pytest.mark.parametrize("domain", ["Signal", "-x", "a b", "a/b"])
def test_a_domain_outside_the_naming_rules_raises_invalid_name(
    client: PersistClient, domain: str
) -> None:
    with pytest.raises(InvalidName):
        client.get(domain, "e", "k")


# ---- bodies and shapes ----


def test_a_body_that_is_not_json_maps_to_invalid_json(service_url: str, ns: str) -> None:
    response = httpx.put(
        f"{service_url}/v1/{ns}/misc/e/records/k",
        content=b'{"unterminated": ',
        headers={"Content-Type": "application/json"},
    )
    error = error_from_response(response)
    assert type(error) is InvalidJson
    assert (error.status, error.code) == (400, "invalid_json")


def test_a_signal_without_its_fields_raises_invalid_value(client: PersistClient) -> None:
    with pytest.raises(InvalidValue) as caught:
        client.put("signal", "BTCUSDT_s", "BTCUSDT", {"id": "x"})
    assert (caught.value.status, caught.value.code) == (422, "invalid_value")
    assert "position" in caught.value.detail


def test_seed_domain_values_of_the_right_shape_are_accepted(client: PersistClient) -> None:
    client.put("signal", "BTCUSDT_s", "BTCUSDT", SIGNAL)
    client.put("schedule", "BTCUSDT_s", "BTCUSDT", None)
    client.put("risk", "r", "positions", [["BTCUSDT:s", {"signal": SIGNAL}]])
    client.put("partial", "BTCUSDT_s", "levels", {"sig-1": {"profitLevels": [], "lossLevels": []}})
    assert client.get("signal", "BTCUSDT_s", "BTCUSDT").value == SIGNAL


def test_a_value_over_the_size_limit_raises_payload_too_large(
    small_service: Service, ns: str
) -> None:
    with PersistClient(small_service.url, namespace=ns) as small:
        small.put("misc", "e", "fits", "x" * (SMALL_VALUE_BYTES - 2))
        with pytest.raises(PayloadTooLarge) as caught:
            small.put("misc", "e", "big", "x" * SMALL_VALUE_BYTES * 4)
        assert (caught.value.status, caught.value.code) == (413, "payload_too_large")
        assert small.has("misc", "e", "big") is False


@pytest.mark.parametrize("value", [math.nan, math.inf, {"x": -math.inf}])
def test_non_finite_numbers_are_refused_before_sending(
    client: PersistClient, value: object
) -> None:
    with pytest.raises(ValueError):
        client.put("misc", "e", "k", value)
    assert client.has("misc", "e", "k") is False


# ---- collections ----


def test_init_returns_the_entity_key_count(client: PersistClient) -> None:
    assert client.init("misc", "e") == 0
    client.batch_put("misc", "e", {"a": 1, "b": 2, "c": 3})
    assert client.init("misc", "e", initial=False) == 3


def test_list_keys_gives_a_cursor_while_more_keys_follow(client: PersistClient) -> None:
    client.batch_put("misc", "e", {f"k{i}": i for i in range(5)})
    first = client.list_keys("misc", "e", limit=2)
    second = client.list_keys("misc", "e", limit=2, cursor=first.next_cursor)
    last = client.list_keys("misc", "e", limit=2, cursor=second.next_cursor)
    assert first.keys == ["k0", "k1"] and first.next_cursor is not None
    assert second.keys == ["k2", "k3"] and second.next_cursor is not None
    assert last.keys == ["k4"] and last.next_cursor is None


def test_iter_keys_follows_cursors_without_loss_or_duplicates(client: PersistClient) -> None:
    keys = [f"key-{i:03d}" for i in range(23)] + ["a/b", "é", "z z", "%41"]
    client.batch_put("misc", "e", {k: k for k in keys})
    listed = list(client.iter_keys("misc", "e", page_size=5))
    assert listed == sorted(keys, key=lambda k: k.encode())


def test_iter_items_follows_cursors_and_returns_values(client: PersistClient) -> None:
    values = {f"k{i:02d}": {"i": i} for i in range(12)}
    client.batch_put("misc", "e", values)
    items = list(client.iter_items("misc", "e", page_size=5))
    assert {item.key: item.value for item in items} == values
    assert [item.key for item in items] == sorted(values)
    assert all(item.version == 1 and item.updated_at.tzinfo is not None for item in items)


def test_list_items_pages_carry_values(client: PersistClient) -> None:
    client.batch_put("misc", "e", {"a": None, "b": [1]})
    page = client.list_items("misc", "e", limit=10)
    assert [(i.key, i.value) for i in page.items] == [("a", None), ("b", [1])]
    assert page.next_cursor is None


def test_a_cursor_the_service_did_not_issue_raises_invalid_request(client: PersistClient) -> None:
    with pytest.raises(InvalidRequest) as caught:
        client.list_keys("misc", "e", cursor="!!not-base64!!")
    assert caught.value.code == "invalid_request"


def test_newest_returns_the_most_recent_records_oldest_first(client: PersistClient) -> None:
    for key in ["c", "a", "d", "b"]:
        client.put("misc", "e", key, key)
    assert [i.key for i in client.newest("misc", "e", 3)] == ["a", "d", "b"]


def test_batch_get_returns_found_records_in_request_order_and_the_missing(
    client: PersistClient,
) -> None:
    client.batch_put("misc", "e", [("b", 2), ("a", None), ("c/d", 3)])
    got = client.batch_get("misc", "e", ["c/d", "zz", "a", "b", "yy"])
    assert [i.key for i in got.items] == ["c/d", "a", "b"]
    assert got.values == {"c/d": 3, "a": None, "b": 2}
    assert got.missing == ["zz", "yy"]


def test_batch_put_upsert_writes_every_item(client: PersistClient) -> None:
    client.put("misc", "e", "a", "old")
    written = client.batch_put("misc", "e", {"a": "new", "b": "new"})
    assert [(w.key, w.version, w.written) for w in written] == [("a", 2, True), ("b", 1, True)]
    assert client.batch_get("misc", "e", ["a", "b"]).values == {"a": "new", "b": "new"}


def test_batch_put_insert_if_absent_leaves_present_records_alone(client: PersistClient) -> None:
    client.put("misc", "e", "a", "old")
    written = client.batch_put("misc", "e", {"a": "new", "b": "new"}, mode="insert_if_absent")
    assert [(w.key, w.version, w.written) for w in written] == [("a", None, False), ("b", 1, True)]
    assert client.get("misc", "e", "a").value == "old"


def test_batch_put_with_one_bad_item_writes_none(client: PersistClient) -> None:
    items = {"BTCUSDT": SIGNAL, "ETHUSDT": {"id": "no-prices", "position": "long"}}
    with pytest.raises(InvalidValue):
        client.batch_put("signal", "s", items)
    assert client.batch_get("signal", "s", list(items)).missing == list(items)


def test_batch_put_with_an_unknown_mode_is_refused_before_sending(client: PersistClient) -> None:
    with pytest.raises(ValueError, match="mode"):
        client.batch_put("misc", "e", {"a": 1}, mode="merge")  # type: ignore[arg-type]


# ---- inspection and health ----


def test_inspection_lists_namespaces_domains_and_entities_with_counts(
    client: PersistClient, ns: str
) -> None:
    client.batch_put("signal", "BTCUSDT_s", {"BTCUSDT": SIGNAL})
    client.batch_put("misc", "e1", {"a": 1, "b": 2})
    client.put("misc", "e/2", "c", 3)
    assert {(c.name, c.records) for c in client.namespaces() if c.name == ns} == {(ns, 4)}
    assert [(c.name, c.records) for c in client.domains()] == [("misc", 3), ("signal", 1)]
    assert [(c.name, c.records) for c in client.entities("misc")] == [("e/2", 1), ("e1", 2)]
    assert [c.name for c in client.entities("signal", namespace=ns)] == ["BTCUSDT_s"]


def test_healthz_and_readyz_report_ok(client: PersistClient) -> None:
    assert client.healthz()["status"] == "ok"
    assert client.readyz()["status"] == "ready"


# ---- transport ----


def test_a_service_that_is_not_listening_raises_connection_failed() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with PersistClient(url, retry=NO_RETRY) as dead, pytest.raises(ConnectionFailed) as caught:
        dead.put("misc", "e", "k", 1)
    assert caught.value.status is None
    assert caught.value.code == "connection_failed"
    assert isinstance(caught.value, PersistError)
