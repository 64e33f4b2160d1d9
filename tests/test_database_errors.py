"""Database failures beyond an outage still answer with a problem, never a bare 500."""

import httpx

from tests.support import Service, execute, scratch_database


def test_read_only_database_answers_503_and_reads_still_work(database_url: str) -> None:
    with scratch_database(database_url) as url:
        name = url.rsplit("/", 1)[1]
        with Service(url) as svc, httpx.Client(base_url=svc.url) as client:
            record = "/v1/default/misc/e/records/k"
            assert client.put(record, json=1).status_code == 201
            execute(url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        # New connections of a fresh process see the setting, as after a failover to a standby.
        with Service(url) as svc, httpx.Client(base_url=svc.url) as client:
            resp = client.put(record, json=2)
            assert resp.status_code == 503
            assert resp.headers["content-type"] == "application/problem+json"
            assert resp.json()["code"] == "unavailable"
            assert "retry-after" in resp.headers
            assert client.get(record).json() == 1


def test_unmigrated_database_answers_503_with_a_hint(database_url: str) -> None:
    with scratch_database(database_url) as url:
        execute(url, "DROP TABLE records; DROP TABLE alembic_version")
        with Service(url, ready_path="/healthz") as svc, httpx.Client(base_url=svc.url) as client:
            resp = client.get("/v1/default/misc/e/records/k")
            assert resp.status_code == 503
            assert "persistd migrate" in resp.json()["detail"]
            assert client.get("/readyz").status_code == 503
