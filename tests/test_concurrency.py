"""Concurrent writers: conditional writes let exactly one writer win per version."""

import threading
from collections import Counter

import httpx

from tests.test_records import rec


def test_concurrent_if_match_writers_have_exactly_one_winner_per_version(
    service_url: str, ns: str
) -> None:
    url = rec(ns, "shared")
    with httpx.Client(base_url=service_url) as client:
        client.put(url, json=0)
    rounds, writers = 10, 8
    wins: Counter[int] = Counter()
    lock = threading.Lock()

    def writer(version: int, barrier: threading.Barrier) -> None:
        with httpx.Client(base_url=service_url) as client:
            barrier.wait()
            resp = client.put(url, json=version, headers={"if-match": f'"{version}"'})
            assert resp.status_code in (200, 412), resp.text
            if resp.status_code == 200:
                with lock:
                    wins[version] += 1

    for version in range(1, rounds + 1):
        barrier = threading.Barrier(writers)
        threads = [threading.Thread(target=writer, args=(version, barrier)) for _ in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert wins == {v: 1 for v in range(1, rounds + 1)}
    with httpx.Client(base_url=service_url) as client:
        got = client.get(url)
    assert got.headers["etag"] == f'"{rounds + 1}"'


def test_concurrent_unconditional_writes_each_get_their_own_version(
    service_url: str, ns: str
) -> None:
    url = rec(ns, "counter")
    versions: list[int] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        with httpx.Client(base_url=service_url) as client:
            for j in range(10):
                resp = client.put(url, json={"writer": i, "n": j})
                assert resp.status_code in (200, 201)
                with lock:
                    versions.append(resp.json()["version"])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(1, 81))


def test_racing_unconditional_deletes_answer_204_or_404_never_412(
    service_url: str, ns: str
) -> None:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    url = rec(ns, "doomed")

    def deleter(barrier: threading.Barrier) -> None:
        with httpx.Client(base_url=service_url) as client:
            barrier.wait()
            status = client.delete(url).status_code
            with lock:
                statuses[status] += 1

    with httpx.Client(base_url=service_url) as client:
        for _ in range(30):
            client.put(url, json=1)
            barrier = threading.Barrier(4)
            threads = [threading.Thread(target=deleter, args=(barrier,)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    assert set(statuses) <= {204, 404}
    assert statuses[204] == 30
