"""Watch: Server-Sent Events of the change log, resumable, across restarts and instances."""

import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import Service


def rec(ns: str, key: str) -> str:
    return f"/v1/{ns}/misc/e/records/{key}"


class Watcher:
    """A subscriber in a thread: follows /watch, reconnecting with Last-Event-ID, like a browser."""

    def __init__(
        self,
        urls: list[str],
        ns: str,
        since: int | None = 0,
        *,
        path: str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.urls = urls
        self.path = path or f"/v1/{ns}/watch"  # or the service-wide /v1/_watch
        self.params = params or {}
        self.headers = headers or {}
        self.last: int | None = since
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Watcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            headers = dict(self.headers)
            if self.last is not None:
                headers["Last-Event-ID"] = str(self.last)
            try:
                params = {**self.params, "max_seconds": "2"}
                with httpx.stream(
                    "GET", url + self.path, headers=headers, params=params, timeout=5
                ) as resp:
                    if resp.status_code != 200:
                        time.sleep(0.1)
                        continue
                    self._read(resp.iter_lines())
            except httpx.TransportError:
                time.sleep(0.1)
            self.reconnects += 1

    def _read(self, lines: Iterator[str]) -> None:
        event: dict[str, str] = {}
        for line in lines:
            if self._stop.is_set():
                return
            if line.startswith(":"):
                self.comments += 1
            elif line == "":
                if event.get("event") == "change":
                    self.events.append(json.loads(event["data"]))
                    self.last = int(event["id"])
                event = {}
            else:
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")

    def wait_for(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events


def _feed(url: str, ns: str) -> list[dict[str, Any]]:
    page = httpx.get(f"{url}/v1/{ns}/changes", params={"limit": 1000}, timeout=10).json()
    return list(page["items"])


def test_a_watcher_sees_every_change_exactly_once_and_resumes_anywhere(
    service_url: str, ns: str
) -> None:
    with Watcher([service_url], ns) as watcher, httpx.Client(base_url=service_url) as http:
        for n in range(20):
            http.put(rec(ns, f"k{n % 4}"), json=n)
        http.delete(rec(ns, "k0"))
        http.post(
            f"/v1/{ns}/misc/e/batch-put",
            json={"items": [{"key": "b1", "value": 1}, {"key": "b2", "value": 2}]},
        )
        seen = watcher.wait_for(23)
    log = _feed(service_url, ns)
    assert len(log) == 23
    assert [e["seq"] for e in seen] == [c["seq"] for c in log]
    assert seen == log
    # Resuming after any event gives exactly the rest.
    for cut in (0, 1, 11, 22):
        with Watcher([service_url], ns, since=log[cut]["seq"]) as resumed:
            assert [e["seq"] for e in resumed.wait_for(22 - cut)] == [
                c["seq"] for c in log[cut + 1 :]
            ]
    # Without a position, a watcher starts from now.
    with Watcher([service_url], ns, since=None) as fresh:
        time.sleep(0.5)
        httpx.put(service_url + rec(ns, "late"), json=1)
        assert [e["key"] for e in fresh.wait_for(1)] == ["late"]


@pytest.fixture(scope="module")
def pair(database_url: str) -> Iterator[tuple[Service, Service]]:
    env = {"PERSISTD_WATCH_POLL": "0.5"}
    with Service(database_url, env=env) as a, Service(database_url, env=env) as b:
        yield a, b


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_watch_across_a_restart_while_two_instances_take_writes(
    pair: tuple[Service, Service], ns: str, sig: signal.Signals
) -> None:
    a, b = pair
    with Watcher([a.url, b.url], ns) as watcher:
        for n in range(30):
            target = (a, b)[n % 2]
            if n == 12:
                a.stop(sig)
            if n == 20:
                a.start()
            if target.process is None:
                target = b
            assert httpx.put(target.url + rec(ns, f"k{n % 5}"), json=n).status_code in (200, 201)
        seen = watcher.wait_for(30, timeout=30)
        assert watcher.reconnects >= 1
    log = _feed(b.url, ns)
    assert len(log) == 30
    assert [e["seq"] for e in seen] == [c["seq"] for c in log]


def test_watchers_are_capped_and_get_heartbeats(database_url: str, ns: str) -> None:
    env = {"PERSISTD_WATCH_MAX": "1", "PERSISTD_WATCH_HEARTBEAT": "0.2"}
    with Service(database_url, env=env) as svc, Watcher([svc.url], ns) as watcher:
        time.sleep(1.0)
        assert watcher.comments >= 2
        refused = httpx.get(f"{svc.url}/v1/{ns}/watch", timeout=5)
        assert refused.status_code == 503
        assert refused.json()["code"] == "unavailable"


def test_a_slow_watcher_is_cut_off_with_a_resumable_position(database_url: str, ns: str) -> None:
    env = {"PERSISTD_WATCH_BUFFER": "4"}
    big = "x" * 200_000
    with Service(database_url, env=env) as svc:
        with httpx.stream(
            "GET", f"{svc.url}/v1/{ns}/watch", params={"since": 0}, timeout=30
        ) as resp:
            time.sleep(0.3)  # subscribed; now writes pile up while nothing is read
            for n in range(80):
                httpx.put(svc.url + rec(ns, f"k{n}"), json=big, timeout=10)
            time.sleep(1.5)
            text = ""
            for chunk in resp.iter_text():
                text += chunk
        assert "event: overflow" in text
        resume = json.loads(text.rsplit("event: overflow\ndata: ", 1)[1].split("\n")[0])["resume"]
        # The first id is the starting position, sent before any change.
        ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")][1:]
        assert ids and resume == ids[-1] and len(ids) < 80
        with Watcher([svc.url], ns, since=resume) as rest:
            got = rest.wait_for(80 - len(ids))
        assert [e["seq"] for e in got] == [c["seq"] for c in _feed(svc.url, ns)][len(ids) :]


def _merged_feed(url: str, *namespaces: str) -> list[dict[str, Any]]:
    return sorted((c for ns in namespaces for c in _feed(url, ns)), key=lambda c: c["seq"])


def test_the_service_wide_stream_carries_two_namespaces_in_seq_order_and_resumes(
    service_url: str, ns: str
) -> None:
    a, b = f"{ns}-a", f"{ns}-b"
    both = {"namespaces": f"{a},{b}"}
    with (
        Watcher([service_url], ns, path="/v1/_watch", params=both) as listed,
        Watcher([service_url], ns, since=None, path="/v1/_watch") as everything,
        httpx.Client(base_url=service_url) as http,
    ):
        time.sleep(0.5)  # the unfiltered one starts from now
        for n in range(24):
            http.put(rec((a, b)[n % 3 == 0], f"k{n % 5}"), json=n)
        http.delete(rec(a, "k1"))
        seen = listed.wait_for(25)
        everything.wait_for(25)
        # Reconnected every 2 s (max_seconds) with Last-Event-ID: nothing lost or repeated.
        time.sleep(2.5)
    log = _merged_feed(service_url, a, b)
    assert len(log) == 25 and {c["namespace"] for c in log} == {a, b}
    assert seen == log
    assert [e for e in everything.events if e["namespace"] in (a, b)] == log
    assert listed.reconnects >= 1
    # Resuming after any event gives exactly the rest, across both namespaces.
    for cut in (0, 7, 23):
        since = log[cut]["seq"]
        with Watcher([service_url], ns, since=since, path="/v1/_watch", params=both) as resumed:
            rest = resumed.wait_for(24 - cut)
            time.sleep(0.3)
        assert [e["seq"] for e in rest] == [c["seq"] for c in log[cut + 1 :]]


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[Service]:
    with Service(database_url, env={"PERSISTD_AUTH": "on"}) as svc:
        yield svc


def test_the_service_wide_stream_shows_a_token_only_the_namespaces_it_may_read(
    secured: Service, database_url: str, ns: str
) -> None:
    from tests.test_auth import new_token

    admin = {"Authorization": f"Bearer {new_token(database_url, 'admin', '*')}"}
    reader = {"Authorization": f"Bearer {new_token(database_url, 'read', f'{ns}-bot-*')}"}
    writer = {"Authorization": f"Bearer {new_token(database_url, 'write', '*')}"}
    mine, other = f"{ns}-bot-1", f"{ns}-other"
    url = secured.url

    def put(namespace: str, key: str) -> None:
        assert httpx.put(url + rec(namespace, key), json=1, headers=admin).is_success

    put(mine, "first")
    first = httpx.get(f"{url}/v1/{mine}/changes", headers=admin).json()["items"][0]["seq"]
    for n in range(3):  # before the stream opens: served by the catch-up from the change log
        put(other, f"before{n}")
        put(f"{ns}-bot-2", f"before{n}")
    with Watcher([url], ns, since=first - 1, path="/v1/_watch", headers=reader) as watcher:
        assert len(watcher.wait_for(4)) == 4
        for n in range(3):  # while it follows: served by the hub
            put(other, f"live{n}")
            put(mine, f"live{n}")
        seen = watcher.wait_for(7)
        time.sleep(0.5)
    assert {e["namespace"] for e in seen} == {mine, f"{ns}-bot-2"}
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen) and len(seen) == 7

    # Naming a namespace outside the pattern is refused, as /v1/{ns}/watch refuses it.
    refused = httpx.get(
        f"{url}/v1/_watch", params={"namespaces": f"{mine},{other}"}, headers=reader
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert httpx.get(f"{url}/v1/_watch", headers=writer).status_code == 403  # needs read
    assert httpx.get(f"{url}/v1/_watch").status_code == 401
