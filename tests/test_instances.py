"""Several persistd processes behind one load balancer share one database."""

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.support import Service


@pytest.fixture(scope="module")
def pair(database_url: str) -> Iterator[tuple[Service, Service]]:
    with Service(database_url) as a, Service(database_url) as b:
        yield a, b


def test_a_write_on_one_instance_is_read_on_the_other(
    pair: tuple[Service, Service], ns: str
) -> None:
    a, b = pair
    path = f"/v1/{ns}/signal/BTCUSDT_s_binance/records/BTCUSDT"
    signal = {
        "id": "s1",
        "position": "long",
        "priceOpen": 100.5,
        "priceTakeProfit": 110,
        "priceStopLoss": 95,
    }
    assert httpx.put(a.url + path, json=signal).status_code == 201
    got = httpx.get(b.url + path)
    assert got.status_code == 200
    assert got.json() == signal
    assert httpx.put(b.url + path, json={**signal, "priceOpen": 101}).json() == {"version": 2}
    assert httpx.get(a.url + path).headers["etag"] == '"2"'
    assert httpx.delete(a.url + path).status_code == 204
    assert httpx.head(b.url + path).status_code == 404


def test_concurrent_if_match_increments_across_instances_lose_nothing(
    pair: tuple[Service, Service], ns: str
) -> None:
    """Read-modify-write with If-Match and retry on 412, from both instances at once."""
    path = f"/v1/{ns}/risk-counter/shared/records/n"
    a, b = pair
    assert httpx.put(a.url + path, json=0).status_code == 201
    workers, rounds = 6, 15
    conflicts = [0] * workers
    failures: list[str] = []

    def increment(index: int) -> None:
        base = (a, b)[index % 2].url
        with httpx.Client(base_url=base, timeout=10) as http:
            for _ in range(rounds):
                for _attempt in range(200):
                    got = http.get(path)
                    put = http.put(
                        path, json=got.json() + 1, headers={"If-Match": got.headers["etag"]}
                    )
                    if put.status_code == 200:
                        break
                    if put.status_code != 412:
                        failures.append(f"{put.status_code} {put.text}")
                        return
                    conflicts[index] += 1
                else:
                    failures.append("gave up after 200 conflicts")
                    return

    threads = [threading.Thread(target=increment, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures
    final = httpx.get(b.url + path)
    assert final.json() == workers * rounds
    assert final.headers["etag"] == f'"{workers * rounds + 1}"'
    assert sum(conflicts) > 0  # the instances really raced
