"""Change history: the change log under concurrency, versions, point-in-time reads, restore and
retention, over real HTTP and a real PostgreSQL."""

import asyncio
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx

from persistd.db import asyncpg_dsn
from persistd.history import prune
from persistd.store import HistoryPolicy, Store
from tests.support import Service, database_server, scratch_database
from tests.test_auth import new_token, persistd


def rec(ns: str, key: str, domain: str = "misc", entity: str = "e") -> str:
    return f"/v1/{ns}/{domain}/{quote(entity, safe='')}/records/{quote(key, safe='')}"


def feed(http: httpx.Client, ns: str, **params: Any) -> list[dict[str, Any]]:
    """Every change of `ns` through the paged catch-up feed."""
    out: list[dict[str, Any]] = []
    since = 0
    while True:
        page = http.get(f"/v1/{ns}/changes", params={"since": since, "limit": 500, **params})
        assert page.status_code == 200, page.text
        body = page.json()
        out += body["items"]
        if not body["items"]:
            return out
        since = body["next_since"]


def state(http: httpx.Client, ns: str, entity: str = "e", at: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"values": "true", "limit": 7}
        if cursor:
            params["cursor"] = cursor
        if at:
            params["at"] = at
        page = http.get(f"/v1/{ns}/misc/{entity}/records", params=params)
        assert page.status_code == 200, page.text
        out.update({i["key"]: i["value"] for i in page.json()["items"]})
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return out


def test_every_acknowledged_write_is_logged_once_in_version_order(
    service_url: str, ns: str
) -> None:
    keys = [f"k{i}" for i in range(6)]
    acked: Counter[tuple[str, int]] = Counter()
    deletes: Counter[str] = Counter()
    rejected = 0

    async def writer(index: int, http: httpx.AsyncClient) -> None:
        nonlocal rejected
        rnd = random.Random(index)
        for step in range(12):
            key = rnd.choice(keys)
            kind = rnd.random()
            if kind < 0.45:
                resp = await http.put(rec(ns, key), json={"w": index, "s": step})
                assert resp.status_code in (200, 201), resp.text
                acked[(key, resp.json()["version"])] += 1
            elif kind < 0.65:
                batch = rnd.sample(keys, 3)
                items = [{"key": k, "value": [index, step]} for k in batch]
                resp = await http.post(f"/v1/{ns}/misc/e/batch-put", json={"items": items})
                assert resp.status_code == 200, resp.text
                for item in resp.json()["items"]:
                    acked[(item["key"], item["version"])] += 1
            elif kind < 0.8:
                resp = await http.delete(rec(ns, key))
                assert resp.status_code in (204, 404), resp.text
                if resp.status_code == 204:
                    deletes[key] += 1
            else:  # a stale condition: rejected, so it must leave no trace
                resp = await http.put(rec(ns, key), json="stale", headers={"If-Match": '"999"'})
                assert resp.status_code == 412, resp.text
                rejected += 1

    async def run() -> None:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=service_url, timeout=30, limits=limits) as http:
            await asyncio.gather(*(writer(i, http) for i in range(32)))

    asyncio.run(run())
    assert rejected > 0
    with httpx.Client(base_url=service_url, timeout=10) as http:
        log = feed(http, ns)
    seqs = [c["seq"] for c in log]
    assert seqs == sorted(set(seqs))
    assert Counter((c["key"], c["version"]) for c in log if c["op"] == "put") == acked
    assert Counter(c["key"] for c in log if c["op"] == "delete") == deletes
    assert all(c["value"] != "stale" for c in log)
    # Per key, the log in seq order is the version order: +1 each time, 1 again after a delete.
    for key in keys:
        previous = 0
        for change in (c for c in log if c["key"] == key):
            assert change["version"] == previous + 1, (key, change)
            previous = 0 if change["op"] == "delete" else change["version"]


def test_history_and_versions_of_a_record(http: httpx.Client, ns: str) -> None:
    for n in range(1, 6):
        assert http.put(rec(ns, "k"), json={"n": n}).status_code in (200, 201)
    page = http.get(rec(ns, "k") + "/history", params={"limit": 2, "values": "true"}).json()
    assert [i["version"] for i in page["items"]] == [5, 4]
    assert page["items"][0]["value"] == {"n": 5} and page["items"][0]["op"] == "put"
    assert page["items"][0]["token_id"] is None and page["items"][0]["at"]
    rest = http.get(rec(ns, "k") + "/history", params={"cursor": page["next_cursor"]}).json()
    assert [i["version"] for i in rest["items"]] == [3, 2, 1]
    assert "value" not in rest["items"][0] and rest["next_cursor"] is None
    old = http.get(rec(ns, "k"), params={"version": 2})
    assert old.status_code == 200 and old.json() == {"n": 2}
    assert old.headers["etag"] == '"2"'
    assert http.get(rec(ns, "k"), params={"version": 5}).json() == {"n": 5}
    assert http.get(rec(ns, "k"), params={"version": 6}).json()["code"] == "not_found"
    assert http.get(rec(ns, "nope"), params={"version": 1}).status_code == 404
    assert http.delete(rec(ns, "k")).status_code == 204
    # The deletion is version 6 in the history, and reads as absent.
    assert http.get(rec(ns, "k"), params={"version": 6}).status_code == 404
    assert http.get(rec(ns, "k"), params={"version": 3}).json() == {"n": 3}
    first = http.get(rec(ns, "k") + "/history").json()["items"][0]
    assert (first["op"], first["version"]) == ("delete", 6)


def test_a_key_named_history_is_still_a_record(http: httpx.Client, ns: str) -> None:
    assert http.put(rec(ns, "history"), json=1).status_code == 201
    assert http.put(rec(ns, "a/history"), json=2).status_code == 201
    assert http.get(rec(ns, "history")).json() == 1
    assert http.get(rec(ns, "a/history")).json() == 2
    items = http.get(rec(ns, "a/history") + "/history").json()["items"]
    assert [i["version"] for i in items] == [1]


def test_point_in_time_reads_match_a_model_at_20_random_times(http: httpx.Client, ns: str) -> None:
    rnd = random.Random(7)
    model: dict[str, Any] = {}
    snapshots: list[tuple[str, dict[str, Any]]] = []
    for step in range(60):
        key = f"k{rnd.randrange(8)}"
        if rnd.random() < 0.25 and key in model:
            assert http.delete(rec(ns, key)).status_code == 204
            del model[key]
        else:
            model[key] = {"step": step}
            assert http.put(rec(ns, key), json=model[key]).status_code in (200, 201)
        snapshots.append((datetime.now(UTC).isoformat(), dict(model)))
    for when, expected in rnd.sample(snapshots, 20):
        assert state(http, ns, at=when) == expected
    before = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert state(http, ns, at=before) == {}


def test_restore_brings_a_namespace_back_and_can_be_undone(http: httpx.Client, ns: str) -> None:
    for i in range(5):
        http.put(rec(ns, f"k{i}"), json={"i": i})
        http.put(rec(ns, f"o{i}", entity="other"), json=i)
    t1 = datetime.now(UTC).isoformat()
    first = state(http, ns)
    http.put(rec(ns, "k0"), json="changed")
    http.delete(rec(ns, "k1"))
    http.put(rec(ns, "new"), json="created later")
    http.delete(rec(ns, "o0", entity="other"))
    t2 = datetime.now(UTC).isoformat()
    second = state(http, ns)

    dry = http.post(f"/v1/{ns}/restore", json={"at": t1, "entity": "e", "dry_run": True})
    assert dry.status_code == 200, dry.text
    plan = dry.json()
    assert (plan["puts"], plan["deletes"], plan["dry_run"]) == (2, 1, True)
    assert {(c["key"], c["op"]) for c in plan["changes"]} == {
        ("k0", "put"), ("k1", "put"), ("new", "delete")
    }  # fmt: skip
    assert state(http, ns) == second  # a dry run changes nothing

    done = http.post(f"/v1/{ns}/restore", json={"at": t1})
    assert done.status_code == 200, done.text
    assert (done.json()["puts"], done.json()["deletes"]) == (3, 1)
    assert state(http, ns) == first
    assert http.get(rec(ns, "o0", entity="other")).json() == 0
    # The restore is in the history as new versions.
    items = http.get(rec(ns, "k0") + "/history", params={"values": "true"}).json()["items"]
    assert [(i["version"], i["value"]) for i in items] == [
        (3, {"i": 0}),
        (2, "changed"),
        (1, {"i": 0}),
    ]

    assert http.post(f"/v1/{ns}/restore", json={"at": t2}).status_code == 200
    assert state(http, ns) == second
    again = http.post(f"/v1/{ns}/restore", json={"at": t2, "dry_run": True}).json()
    assert (again["puts"], again["deletes"]) == (0, 0)


def test_history_is_off_for_skipped_domains(http: httpx.Client, ns: str) -> None:
    path = rec(ns, "1700000000000", domain="candle")
    assert http.put(path, json={"c": 1}).status_code == 201
    assert http.put(path, json={"c": 2}).status_code == 200
    assert http.get(path, params={"version": 2}).json() == {"c": 2}
    assert http.get(path, params={"version": 1}).json()["code"] == "version_pruned"
    assert http.get(path + "/history").json()["code"] == "history_not_kept"
    assert feed(http, ns) == []


def test_retention_prunes_old_history_and_never_current_records(ns: str) -> None:
    # A database of its own: pruning walks the log in seq order up to the first young change.
    with (
        database_server() as server,
        scratch_database(server) as database_url,
        Service(database_url) as service,
        httpx.Client(base_url=service.url, timeout=10) as http,
    ):
        for n in range(3):
            http.put(rec(ns, "old"), json=n)
            http.put(rec(ns, "gone"), json=n)
        http.delete(rec(ns, "gone"))
        http.put(rec(ns, "young"), json="x")

        async def age_and_prune() -> int:
            conn = await asyncpg.connect(asyncpg_dsn(database_url))
            try:
                await conn.execute(
                    "UPDATE changes SET at = at - interval '40 days' "
                    "WHERE namespace = $1 AND key <> 'young'",
                    ns,
                )
            finally:
                await conn.close()
            store = await Store.open(
                asyncpg_dsn(database_url),
                min_size=1,
                max_size=2,
                acquire_timeout=5,
                statement_timeout=10,
                retry_after=1,
                history=HistoryPolicy(),
            )
            try:
                return await prune(store, 30, pause=0)
            finally:
                await store.close()

        assert asyncio.run(age_and_prune()) >= 6
        log = feed(http, ns)
        # Only each record's last state before the horizon stays, and the young history.
        assert [(c["key"], c["version"]) for c in log] == [("old", 3), ("young", 1)]
        assert http.get(rec(ns, "old")).json() == 2
        assert http.get(rec(ns, "young")).json() == "x"
        assert http.get(rec(ns, "old"), params={"version": 1}).json()["code"] == "version_pruned"
        assert http.get(rec(ns, "old"), params={"version": 3}).json() == 2
        long_ago = (datetime.now(UTC) - timedelta(days=35)).isoformat()
        assert http.get(f"/v1/{ns}/misc/e/records", params={"at": long_ago}).status_code == 410
        restore = http.post(f"/v1/{ns}/restore", json={"at": long_ago})
        assert restore.json()["code"] == "history_pruned"
        recent = (datetime.now(UTC) - timedelta(days=20)).isoformat()
        assert state(http, ns, at=recent) == {"old": 2}


def test_cli_shows_history_restores_and_prunes(
    database_url: str, http: httpx.Client, ns: str
) -> None:
    http.put(rec(ns, "a/b"), json={"n": 1})
    t1 = datetime.now(UTC).isoformat()
    http.put(rec(ns, "a/b"), json={"n": 2})
    shown = persistd(database_url, "history", "show", ns, "misc", "e", "a/b")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("seq\tversion") and len(lines) == 3
    assert lines[1].split("\t")[1:3] == ["2", "put"] and lines[1].endswith('{"n": 2}')
    dry = persistd(database_url, "restore", ns, "--at", t1, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == "would write 1 puts and 0 deletes"
    assert http.get(rec(ns, "a/b")).json() == {"n": 2}
    done = persistd(database_url, "restore", ns, "--at", t1)
    assert done.stdout.splitlines()[-1] == "wrote 1 puts and 0 deletes"
    assert http.get(rec(ns, "a/b")).json() == {"n": 1}
    bad = persistd(database_url, "restore", ns, "--at", "yesterday")
    assert bad.returncode == 1 and "RFC 3339" in bad.stderr
    pruned = persistd(database_url, "history", "prune")
    assert pruned.returncode == 0 and pruned.stdout.startswith("pruned ")


def test_restore_needs_admin_and_the_log_names_the_writer(database_url: str, ns: str) -> None:
    writer = new_token(database_url, "read,write", ns)
    admin = new_token(database_url, "admin", ns)
    with Service(database_url, env={"PERSISTD_AUTH": "on"}) as svc:
        as_writer = httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {writer}"})
        as_admin = httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {admin}"})
        with as_writer, as_admin:
            assert as_writer.put(rec(ns, "k"), json=1).status_code == 201
            t1 = datetime.now(UTC).isoformat()
            assert as_writer.put(rec(ns, "k"), json=2).status_code == 200
            denied = as_writer.post(f"/v1/{ns}/restore", json={"at": t1})
            assert denied.status_code == 403
            assert as_admin.post(f"/v1/{ns}/restore", json={"at": t1}).status_code == 200
            items = as_writer.get(rec(ns, "k") + "/history").json()["items"]
            writer_id, admin_id = (int(t.split("_")[1]) for t in (writer, admin))
            assert [i["token_id"] for i in items] == [admin_id, writer_id, writer_id]
            assert httpx.get(f"{svc.url}/v1/{ns}/changes").status_code == 401


def test_an_import_is_in_the_history_once(
    database_url: str, http: httpx.Client, ns: str, tmp_path: Path
) -> None:
    folder = tmp_path / "dump" / "data" / "misc" / "e"
    folder.mkdir(parents=True)
    for n in range(3):
        (folder / f"k{n}.json").write_text(json.dumps({"n": n}))
    for _ in range(2):  # the second import finds every file unchanged
        done = persistd(database_url, "import-dump", str(tmp_path / "dump"), "--namespace", ns)
        assert done.returncode == 0, done.stderr
    log = feed(http, ns)
    assert sorted((c["key"], c["version"], c["op"]) for c in log) == [
        ("k0", 1, "put"), ("k1", 1, "put"), ("k2", 1, "put")
    ]  # fmt: skip
