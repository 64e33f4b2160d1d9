"""The service answers over real HTTP on a real PostgreSQL."""

import httpx


def test_put_then_get_round_trips_a_document(http: httpx.Client, ns: str) -> None:
    url = f"/v1/{ns}/misc/e/records/k"
    assert http.put(url, json={"a": 1}).status_code == 201
    got = http.get(url)
    assert got.status_code == 200
    assert got.json() == {"a": 1}
    assert got.headers["etag"] == '"1"'
