"""Leases and fenced writes over real HTTP on real PostgreSQL: one holder at a time, fencing
tokens that only grow, and writes under a lost lease refused with nothing changed."""

import asyncio
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Service, embedded_server, scratch_database
from tests.test_auth import new_token

TTL = 300  # ms: short, so expiry tests stay fast


def lease(ns: str, name: str = "bot") -> str:
    return f"/v1/{ns}/leases/{name}"


def acquire(http: httpx.Client, ns: str, holder: str, ttl: int = TTL, name: str = "bot") -> int:
    got = http.post(lease(ns, name), json={"holder": holder, "ttl_ms": ttl})
    assert got.status_code == 200, got.text
    assert got.json()["holder"] == holder
    token: int = got.json()["token"]
    return token


def fence(token: int, name: str = "bot") -> dict[str, str]:
    return {"Persistd-Fence": f"{name}={token}"}


def problem_code(resp: httpx.Response) -> str:
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.text
    code: str = resp.json()["code"]
    return code


def wait_expired(ttl: int = TTL) -> None:
    time.sleep(ttl / 1000 + 0.1)


def test_acquire_answers_a_token_and_a_second_holder_gets_lease_held(
    http: httpx.Client, ns: str
) -> None:
    got = http.post(lease(ns), json={"holder": "a", "ttl_ms": 5000})
    assert got.status_code == 200
    body = got.json()
    assert body["token"] == 1 and body["holder"] == "a" and body["held"] is True
    assert body["ttl_ms"] == 5000 and body["name"] == "bot"
    refused = http.post(lease(ns), json={"holder": "b", "ttl_ms": 5000})
    assert refused.status_code == 409
    assert problem_code(refused) == "lease_held"
    assert "'a'" in refused.json()["detail"] and "until" in refused.json()["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 5
    read = http.get(lease(ns)).json()
    assert (read["holder"], read["token"], read["held"]) == ("a", 1, True)


def test_renew_extends_and_release_frees_at_once(http: httpx.Client, ns: str) -> None:
    token = acquire(http, ns, "a")
    for _ in range(3):
        time.sleep(TTL / 2000)
        renewed = http.put(lease(ns), json={"token": token})
        assert renewed.status_code == 200 and renewed.json()["token"] == token
    assert http.get(lease(ns)).json()["held"] is True  # alive past the first TTL: renewed
    released = http.delete(lease(ns), params={"token": token})
    assert released.status_code == 200 and released.json()["held"] is False
    read = http.get(lease(ns)).json()
    assert (read["holder"], read["held"], read["token"]) == (None, False, token)
    assert acquire(http, ns, "b") == token + 1  # free at once, and the token moved on


def test_renew_or_release_with_a_stale_token_is_lease_lost(http: httpx.Client, ns: str) -> None:
    old = acquire(http, ns, "a")
    wait_expired()
    expired = http.put(lease(ns), json={"token": old})
    assert expired.status_code == 409 and problem_code(expired) == "lease_lost"
    assert "expired" in expired.json()["detail"]
    new = acquire(http, ns, "b")
    assert new == old + 1
    for resp in (
        http.put(lease(ns), json={"token": old}),
        http.delete(lease(ns), params={"token": old}),
    ):
        assert resp.status_code == 409 and problem_code(resp) == "lease_lost"
        assert "'b'" in resp.json()["detail"]
    assert http.get(lease(ns)).json()["holder"] == "b"


def test_the_same_holder_acquiring_again_gets_a_new_token(http: httpx.Client, ns: str) -> None:
    # A retried acquisition (its answer lost) is not refused; the earlier token stops fencing.
    first = acquire(http, ns, "a")
    second = acquire(http, ns, "a")
    assert second == first + 1
    assert http.put(lease(ns), json={"token": first}).status_code == 409


def test_unknown_lease_is_404(http: httpx.Client, ns: str) -> None:
    for resp in (
        http.get(lease(ns)),
        http.put(lease(ns), json={"token": 1}),
        http.delete(lease(ns), params={"token": 1}),
    ):
        assert resp.status_code == 404 and problem_code(resp) == "not_found"


@pytest.mark.parametrize(
    ("method", "body", "params"),
    [
        ("POST", {"holder": "a", "ttl_ms": 99}, None),
        ("POST", {"holder": "a", "ttl_ms": 3_600_001}, None),
        ("POST", {"holder": "a", "ttl_ms": "1000"}, None),
        ("POST", {"holder": "a", "ttl_ms": 1000.5}, None),
        ("POST", {"holder": "", "ttl_ms": 1000}, None),
        ("POST", {"holder": "a\nb", "ttl_ms": 1000}, None),
        ("POST", {"holder": "a" * 257, "ttl_ms": 1000}, None),
        ("POST", {"holder": "a"}, None),
        ("POST", {"holder": "a", "ttl_ms": 1000, "x": 1}, None),
        ("PUT", {"token": 0}, None),
        ("PUT", {"token": 2**63}, None),
        ("PUT", {"token": 1, "ttl_ms": 50}, None),
        ("PUT", {}, None),
        ("DELETE", None, {"token": "x"}),
        ("DELETE", None, {"token": "-1"}),
        ("DELETE", None, None),
    ],
)
def test_bad_lease_requests_are_400_and_change_nothing(
    http: httpx.Client, ns: str, method: str, body: object, params: dict[str, str] | None
) -> None:
    token = acquire(http, ns, "a", ttl=5000)
    resp = http.request(method, lease(ns), json=body, params=params)
    assert resp.status_code in (400, 422), resp.text
    assert problem_code(resp) in {"invalid_request", "invalid_name", "invalid_json"}
    read = http.get(lease(ns)).json()
    assert (read["holder"], read["token"], read["held"]) == ("a", token, True)


def test_invalid_lease_name_is_invalid_name(http: httpx.Client, ns: str) -> None:
    resp = http.post(f"/v1/{ns}/leases/Bad%20Name", json={"holder": "a", "ttl_ms": 1000})
    assert resp.status_code == 400 and problem_code(resp) == "invalid_name"


def test_fenced_writes_apply_only_under_the_current_token(http: httpx.Client, ns: str) -> None:
    rec = f"/v1/{ns}/misc/e/records/k"
    old = acquire(http, ns, "a")
    assert http.put(rec, json={"by": "a"}, headers=fence(old)).status_code == 201
    wait_expired()
    # Expired, not yet taken over: already refused.
    refused = http.put(rec, json={"by": "a-late"}, headers=fence(old))
    assert refused.status_code == 409 and problem_code(refused) == "fenced"
    new = acquire(http, ns, "b", ttl=5000)
    assert http.put(rec, json={"by": "b"}, headers=fence(new)).json() == {"version": 2}
    for resp in (
        http.put(rec, json={"by": "a"}, headers=fence(old)),
        http.put(rec, json={"by": "a"}, headers={**fence(old), "If-Match": '"2"'}),
        http.put(rec, json={"by": "a"}, headers={**fence(old), "If-None-Match": "*"}),
        http.delete(rec, headers=fence(old)),
        http.delete(rec, headers={**fence(old), "If-Match": '"2"'}),
        http.put(rec, json={"by": "a"}, headers=fence(new, "other")),
    ):
        assert resp.status_code == 409 and problem_code(resp) == "fenced", resp.text
    got = http.get(rec)
    assert got.json() == {"by": "b"} and got.headers["etag"] == '"2"'
    # Conditions still apply under a held fence, and fenced deletes work.
    stale = http.put(rec, json={"by": "b"}, headers={**fence(new), "If-Match": '"1"'})
    assert stale.status_code == 412
    exists = http.put(rec, json={"by": "b"}, headers={**fence(new), "If-None-Match": "*"})
    assert exists.status_code == 412
    assert http.delete(f"{rec}-absent", headers=fence(new)).status_code == 404
    assert http.delete(rec, headers={**fence(new), "If-Match": '"2"'}).status_code == 204
    released = http.delete(lease(ns), params={"token": new})
    assert released.status_code == 200
    after = http.put(rec, json={"by": "b"}, headers=fence(new))
    assert after.status_code == 409 and problem_code(after) == "fenced"
    assert http.get(rec).status_code == 404


def test_fenced_batch_put_is_all_or_nothing(http: httpx.Client, ns: str) -> None:
    batch = f"/v1/{ns}/misc/e/batch-put"
    items = [{"key": f"k{i}", "value": i} for i in range(50)]
    old = acquire(http, ns, "a")
    wait_expired()
    new = acquire(http, ns, "b", ttl=5000)
    for mode in ("upsert", "insert_if_absent"):
        resp = http.post(batch, json={"items": items, "mode": mode}, headers=fence(old))
        assert resp.status_code == 409 and problem_code(resp) == "fenced"
    assert http.get(f"/v1/{ns}/misc/e/records").json()["keys"] == []
    done = http.post(batch, json={"items": items}, headers=fence(new)).json()["items"]
    assert [i["version"] for i in done] == [1] * 50
    kept = http.post(
        batch, json={"items": items[:2], "mode": "insert_if_absent"}, headers=fence(new)
    ).json()["items"]
    assert kept == [{"key": "k0", "version": None, "written": False},
                    {"key": "k1", "version": None, "written": False}]  # fmt: skip
    changed = [{"key": i["key"], "value": -1} for i in items]
    assert http.post(batch, json={"items": changed}, headers=fence(old)).status_code == 409
    values = http.get(f"/v1/{ns}/misc/e/records", params={"values": "true"}).json()["items"]
    assert sorted(v["value"] for v in values) == list(range(50))


@pytest.mark.parametrize(
    "header",
    ["bot", "bot=", "=1", "bot=x", "bot=0", "bot=-1", "bot=1.5", "bot=9223372036854775808",
     "Bot=1", "bot=\u00b2", "b t=1", ""],
)  # fmt: skip
def test_malformed_fence_header_is_400_invalid_fence(
    http: httpx.Client, ns: str, header: str
) -> None:
    rec = f"/v1/{ns}/misc/e/records/k"
    h = {b"Persistd-Fence": header.encode("latin-1")}
    for resp in (
        http.put(rec, json=1, headers=h),
        http.delete(rec, headers=h),
        http.post(f"/v1/{ns}/misc/e/batch-put", json={"items": []}, headers=h),
    ):
        assert resp.status_code == 400 and problem_code(resp) == "invalid_fence", resp.text
    assert http.get(rec).status_code == 404


def test_twenty_concurrent_acquirers_yield_exactly_one_holder(service_url: str, ns: str) -> None:
    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=service_url, timeout=10) as client:
            return await asyncio.gather(
                *(client.post(lease(ns), json={"holder": f"h{i}", "ttl_ms": 5000})
                  for i in range(20))
            )  # fmt: skip

    answers = asyncio.run(race())
    won = [r for r in answers if r.status_code == 200]
    assert len(won) == 1, [r.text for r in answers]
    assert all(problem_code(r) == "lease_held" for r in answers if r is not won[0])
    holder = won[0].json()["holder"]
    assert httpx.get(service_url + lease(ns)).json()["holder"] == holder


def test_tokens_strictly_increase_over_200_acquire_release_expire_cycles(
    http: httpx.Client, ns: str
) -> None:
    tokens = []
    for cycle in range(200):
        expire = cycle % 20 == 19  # every 20th lease is left to expire instead of released
        token = acquire(http, ns, f"h{cycle}", ttl=100 if expire else 5000)
        tokens.append(token)
        if expire:
            time.sleep(0.15)
        else:
            assert http.delete(lease(ns), params={"token": token}).status_code == 200
    assert tokens == list(range(1, 201))


def test_tokens_keep_increasing_across_a_restart_and_across_two_instances(
    database_url: str, ns: str
) -> None:
    tokens = []
    with Service(database_url) as one:
        tokens.append(acquire(httpx.Client(base_url=one.url), ns, "a", ttl=TTL))
    wait_expired()  # the holder went away with the restart; its lease runs out
    with Service(database_url) as one, Service(database_url) as two:
        clients = [httpx.Client(base_url=s.url, timeout=10) for s in (one, two)]
        for i in range(10):
            tokens.append(acquire(clients[i % 2], ns, f"h{i}", ttl=5000))
            if i < 9:
                released = clients[(i + 1) % 2].delete(lease(ns), params={"token": tokens[-1]})
                assert released.status_code == 200
        # Both instances agree who holds it.
        assert {c.get(lease(ns)).json()["holder"] for c in clients} == {"h9"}
        refused = clients[0].post(lease(ns), json={"holder": "x", "ttl_ms": 1000})
        assert problem_code(refused) == "lease_held"
    assert tokens == sorted(set(tokens)) and len(tokens) == 11


def test_tokens_keep_increasing_across_a_database_crash_restart(ns: str) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="persistd-leases-"))
    try:
        with (
            embedded_server(data_dir) as server,
            scratch_database(server.url) as url,
            Service(url) as svc,
            httpx.Client(base_url=svc.url, timeout=10) as client,
        ):
            before = []
            for i in range(3):  # acquired, then left to expire
                before.append(acquire(client, ns, f"h{i}", ttl=100))
                time.sleep(0.15)
            server.stop("immediate")  # a crash: only what was committed survives
            server.start()
            deadline = time.monotonic() + 30
            while True:  # the service reconnects on its own; 503 until then
                got = client.post(lease(ns), json={"holder": "after", "ttl_ms": 1000})
                if got.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert got.status_code == 200, got.text
            assert before == [1, 2, 3] and got.json()["token"] == 4
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_no_write_under_an_old_token_lands_after_the_takeover(
    http: httpx.Client, service_url: str, ns: str
) -> None:
    # A's writes race B's takeover; once B acquired and read, nothing of A's may land after.
    rec = f"/v1/{ns}/misc/e/records/k"
    old = acquire(http, ns, "a", ttl=2000)
    stop = threading.Event()
    statuses: list[int] = []

    def zombie() -> None:
        with httpx.Client(base_url=service_url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                i += 1
                statuses.append(client.put(rec, json={"a": i}, headers=fence(old)).status_code)

    deadline = time.monotonic() + 10
    threads = [threading.Thread(target=zombie) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        while 201 not in statuses and time.monotonic() < deadline:
            time.sleep(0.01)
        while True:
            got = http.post(lease(ns), json={"holder": "b", "ttl_ms": 5000})
            if got.status_code == 200:
                break
            time.sleep(0.01)
        seen = http.get(rec)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert 201 in statuses and 409 in statuses
    after = http.get(rec)
    assert (after.headers["etag"], after.json()) == (seen.headers["etag"], seen.json())


def test_metrics_count_lease_events_and_refused_writes(http: httpx.Client, ns: str) -> None:
    token = acquire(http, ns, "a", ttl=5000)
    http.put(f"/v1/{ns}/misc/e/records/k", json=1, headers=fence(token + 1))
    http.put(lease(ns), json={"token": token + 1})
    text = http.get("/metrics").text
    assert 'persistd_lease_events_total{event="acquired"}' in text
    assert 'persistd_lease_events_total{event="lost"}' in text
    assert "persistd_fenced_writes_refused_total" in text
    held = [line for line in text.splitlines() if line.startswith("persistd_leases_held ")]
    assert held and float(held[0].split()[1]) >= 1


@pytest.fixture(scope="module")
def secured(database_url: str) -> Iterator[Service]:
    with Service(database_url, env={"PERSISTD_AUTH": "on"}) as svc:
        yield svc


def test_leases_need_write_scope_and_reads_need_read_scope(
    secured: Service, database_url: str, ns: str
) -> None:
    reader = new_token(database_url, "read", ns)
    writer = new_token(database_url, "write", ns)
    with httpx.Client(base_url=secured.url, timeout=10) as client:
        body = {"holder": "a", "ttl_ms": 5000}
        assert client.post(lease(ns), json=body).status_code == 401
        as_reader = {"Authorization": f"Bearer {reader}"}
        assert client.post(lease(ns), json=body, headers=as_reader).status_code == 403
        as_writer = {"Authorization": f"Bearer {writer}"}
        got = client.post(lease(ns), json=body, headers=as_writer)
        assert got.status_code == 200
        token = got.json()["token"]
        assert client.get(lease(ns), headers=as_writer).status_code == 403
        assert client.get(lease(ns), headers=as_reader).json()["holder"] == "a"
        other = client.post(lease(f"{ns}x"), json=body, headers=as_writer)
        assert other.status_code == 403
        rec = f"/v1/{ns}/misc/e/records/k"
        assert client.put(rec, json=1, headers={**as_reader, **fence(token)}).status_code == 403
        assert client.put(rec, json=1, headers={**as_writer, **fence(token)}).status_code == 201


def test_lease_changes_are_logged(database_url: str, ns: str, tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    with (
        Service(database_url, env={"PERSISTD_LOG_LEVEL": "info"}, log=log) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as client,
    ):
        token = acquire(client, ns, "a", ttl=5000)
        assert client.put(lease(ns), json={"token": token + 1}).status_code == 409
        assert client.delete(lease(ns), params={"token": token}).status_code == 200
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    changes = [(e["msg"], e.get("holder")) for e in lines if e.get("logger") == "persistd.leases"]
    assert changes == [("lease acquired", "a"), ("lease lost", None), ("lease released", None)]
    assert all(e["namespace"] == ns for e in lines if e.get("logger") == "persistd.leases")


def test_lease_metrics_with_several_workers(database_url: str, ns: str, tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with (
        Service(database_url, env=env, workers=2) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as client,
    ):
        for name in ("a", "b"):
            token = acquire(client, ns, "h", ttl=5000, name=name)
            client.put(f"/v1/{ns}/misc/e/records/k", json=1, headers=fence(token + 1, name))
        text = client.get("/metrics").text
    assert "persistd_fenced_writes_refused_total 2.0" in text, text
    assert 'persistd_lease_events_total{event="acquired"} 2.0' in text, text
    held = [line for line in text.splitlines() if line.startswith("persistd_leases_held ")]
    assert held and float(held[0].split()[1]) >= 2, text


def test_fenced_writes_append_their_change_rows_and_refused_ones_none(
    http: httpx.Client, ns: str
) -> None:
    rec = f"/v1/{ns}/misc/e/records/k"
    token = acquire(http, ns, "a", ttl=5000)
    assert http.put(rec, json=1, headers=fence(token)).status_code == 201
    assert http.put(rec, json=2, headers={**fence(token), "If-Match": '"1"'}).status_code == 200
    batch = {"items": [{"key": "j", "value": 3}]}
    assert http.post(f"/v1/{ns}/misc/e/batch-put", json=batch, headers=fence(token)).is_success
    assert http.delete(rec, headers=fence(token)).status_code == 204
    for refused in (
        http.put(rec, json=9, headers=fence(token + 1)),
        http.delete(f"/v1/{ns}/misc/e/records/j", headers=fence(token + 1)),
        http.post(f"/v1/{ns}/misc/e/batch-put", json=batch, headers=fence(token + 1)),
    ):
        assert refused.status_code == 409
    changes = http.get(f"/v1/{ns}/changes", params={"since": 0, "limit": 100}).json()["items"]
    assert [(c["key"], c["version"], c["op"]) for c in changes] == [
        ("k", 1, "put"), ("k", 2, "put"), ("j", 1, "put"), ("k", 3, "delete")
    ]  # fmt: skip


RENEW_MANY = "/v1/_leases/renew"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def db_now(http: httpx.Client, ns: str) -> datetime:
    """PostgreSQL's clock now: a fresh acquisition's expiry less its TTL."""
    got = http.post(lease(ns, "clock"), json={"holder": "clock", "ttl_ms": 100}).json()
    return at(got["expires_at"]) - timedelta(milliseconds=100)


def test_batch_renewal_answers_each_item_in_order(http: httpx.Client, ns: str) -> None:
    spaces = [f"{ns}-{i % 3}" for i in range(20)]
    live = [(s, f"live{i}", acquire(http, s, "a", ttl=5000, name=f"live{i}"))
            for i, s in enumerate(spaces)]  # fmt: skip
    expired = acquire(http, ns, "a", name="expired")
    taken = acquire(http, ns, "a", name="taken")
    released = acquire(http, ns, "a", name="released")
    assert http.delete(lease(ns, "released"), params={"token": released}).status_code == 200
    before = [http.get(lease(s, n)).json() for s, n, _ in live]
    wait_expired()
    thief = acquire(http, ns, "b", ttl=5000, name="taken")
    wrong: list[dict[str, Any]] = [
        {"namespace": ns, "name": "expired", "token": expired},
        {"namespace": ns, "name": "taken", "token": taken},
        {"namespace": ns, "name": "released", "token": released},
        {"namespace": ns, "name": "never", "token": 1},
    ]
    untouched = [http.get(lease(ns, w["name"])).json() for w in wrong[:3]]
    items: list[dict[str, Any]] = [{"namespace": s, "name": n, "token": t} for s, n, t in live]
    items[3]["ttl_ms"] = 60_000
    items[5:5] = wrong
    started = db_now(http, ns)
    got = http.post(RENEW_MANY, json={"leases": items})
    finished = db_now(http, ns)
    assert got.status_code == 200, got.text
    results = got.json()["leases"]
    assert [(r["namespace"], r["name"]) for r in results] == [
        (i["namespace"], i["name"]) for i in items
    ]
    # The refusals carry the code and detail the single renewal's problem carries.
    refusals = results[5:9]
    for item, result in zip(wrong, refusals, strict=True):
        assert set(result) == {"namespace", "name", "error"}
        single = http.put(lease(ns, str(item["name"])), json={"token": item["token"]})
        assert result["error"] == {"code": problem_code(single), "detail": single.json()["detail"]}
    assert [r["error"]["code"] for r in refusals] == ["lease_lost"] * 3 + ["not_found"]
    assert "expired" in refusals[0]["error"]["detail"]
    assert f"token {thief} is, held by 'b'" in refusals[1]["error"]["detail"]
    assert "released" in refusals[2]["error"]["detail"]
    assert [http.get(lease(ns, w["name"])).json() for w in wrong[:3]] == untouched
    renewed = results[:5] + results[9:]
    for i, (result, (space, name, token), old) in enumerate(
        zip(renewed, live, before, strict=True)
    ):
        ttl = 60_000 if i == 3 else 5000
        assert result == {**old, "namespace": space, "ttl_ms": ttl,
                          "expires_at": result["expires_at"]}  # fmt: skip
        assert result["token"] == token and result["held"] is True
        # Extended by PostgreSQL's clock: to the renewal's own time plus the TTL.
        expires = at(result["expires_at"])
        assert started <= expires - timedelta(milliseconds=ttl) <= finished
        assert expires > at(old["expires_at"])
        stored = {**old, "ttl_ms": ttl, "expires_at": result["expires_at"]}
        assert http.get(lease(space, name)).json() == stored


def test_batch_renewal_of_one_lease_answers_what_the_single_renewal_does(
    http: httpx.Client, ns: str
) -> None:
    token = acquire(http, ns, "a", ttl=5000)
    single = http.put(lease(ns), json={"token": token}).json()
    item = {"namespace": ns, "name": "bot", "token": token}
    [result] = http.post(RENEW_MANY, json={"leases": [item]}).json()["leases"]
    assert result.pop("namespace") == ns
    assert result == {**single, "expires_at": result["expires_at"]}
    assert at(result["expires_at"]) > at(single["expires_at"])


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"namespace": "a", "name": "b", "token": 1}] * 2,
        [{"namespace": f"n{i}", "name": "b", "token": 1} for i in range(1000)],
        [{"namespace": "a", "name": "b", "token": 0}],
        [{"namespace": "a", "name": "b", "token": 2**63}],
        [{"namespace": "a", "name": "b", "token": 1, "ttl_ms": 99}],
        [{"namespace": "a", "name": "b", "token": 1, "ttl_ms": 3_600_001}],
        [{"namespace": "A", "name": "b", "token": 1}],
        [{"namespace": "a", "name": "_b", "token": 1}],
        [{"namespace": "a", "name": "b", "token": "1"}],
        [{"namespace": "a", "name": "b"}],
        [{"namespace": "a", "name": "b", "token": 1, "holder": "x"}],
        {"namespace": "a"},
    ],
    ids=["empty", "duplicate", "too-many", "token-0", "token-2**63", "ttl-short", "ttl-long",
         "bad-namespace", "bad-name", "token-string", "no-token", "extra-field", "not-a-list"],
)  # fmt: skip
def test_bad_batch_renewals_are_400_and_renew_nothing(
    http: httpx.Client, ns: str, items: object
) -> None:
    token = acquire(http, ns, "a", ttl=5000)
    before = http.get(lease(ns)).json()
    own = {"namespace": ns, "name": "bot", "token": token}
    body = {"leases": [own, *items] if isinstance(items, list) and items else items}
    refused = http.post(RENEW_MANY, json=body)
    assert refused.status_code == 400, refused.text
    assert problem_code(refused) in ("invalid_request", "invalid_name")
    assert http.get(lease(ns)).json() == before


def test_batch_renewal_needs_write_scope_on_every_namespace(
    secured: Service, database_url: str, ns: str
) -> None:
    as_writer = {"Authorization": f"Bearer {new_token(database_url, 'write', f'{ns}-*')}"}
    as_reader = {"Authorization": f"Bearer {new_token(database_url, 'read', f'{ns}-*')}"}
    with httpx.Client(base_url=secured.url, timeout=10) as client:
        body = {"holder": "a", "ttl_ms": 5000}
        paths = [lease(f"{ns}-{i}") for i in range(2)]
        tokens = [client.post(p, json=body, headers=as_writer).json()["token"] for p in paths]
        items = [
            {"namespace": f"{ns}-{i}", "name": "bot", "token": t} for i, t in enumerate(tokens)
        ]
        before = [client.get(p, headers=as_reader).json() for p in paths]
        assert client.post(RENEW_MANY, json={"leases": items}).status_code == 401
        refused = client.post(RENEW_MANY, json={"leases": items}, headers=as_reader)
        assert refused.status_code == 403 and problem_code(refused) == "forbidden"
        other = [*items, {"namespace": f"{ns}x", "name": "bot", "token": 1}]
        refused = client.post(RENEW_MANY, json={"leases": other}, headers=as_writer)
        assert refused.status_code == 403 and problem_code(refused) == "forbidden"
        assert f"'{ns}x'" in refused.json()["detail"]
        assert [client.get(p, headers=as_reader).json() for p in paths] == before
        renewed = client.post(RENEW_MANY, json={"leases": items}, headers=as_writer)
        assert renewed.status_code == 200
        after = [at(r["expires_at"]) for r in renewed.json()["leases"]]
        assert all(a > at(b["expires_at"]) for a, b in zip(after, before, strict=True))


def test_batch_renewal_counts_and_logs_lost_leases(
    database_url: str, ns: str, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    with (
        Service(database_url, env={"PERSISTD_LOG_LEVEL": "debug"}, log=log) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as client,
    ):
        token = acquire(client, ns, "a", ttl=5000)
        acquire(client, ns, "a", ttl=5000, name="bot2")
        acquire(client, ns, "a", ttl=5000, name="bot2")  # token 2: token 1 is lost
        items = [{"namespace": ns, "name": "bot", "token": token},
                 {"namespace": ns, "name": "bot2", "token": 1}]  # fmt: skip
        assert client.post(RENEW_MANY, json={"leases": items}).status_code == 200
        text = client.get("/metrics").text
    assert 'persistd_lease_events_total{event="lost"} 1.0' in text, text
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    events = [(e["level"], e["msg"], e.get("lease")) for e in lines
              if e.get("logger") == "persistd.leases" and e["msg"] != "lease acquired"]  # fmt: skip
    assert events == [("debug", "lease renewed", "bot"), ("info", "lease lost", "bot2")], events
