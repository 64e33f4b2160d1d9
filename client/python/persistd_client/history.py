"""Client history: versions, history pages, the change feed, restore and watch (one core)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx

from persistd_client._core import answers
from persistd_client._core.call import Call, Name
from persistd_client._core.endpoints import dumps, segment
from persistd_client.models import ItemsPage, Record

Op = Literal["put", "delete"]


@dataclass(frozen=True, slots=True)
class Version:
    """One version in a record's history; `value` only when asked for (None for a delete)."""

    seq: int
    op: Op
    version: int
    at: datetime
    token_id: int | None
    value: Any = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Versions newest first; `next_cursor` is None on the last page."""

    items: list[Version]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Change:
    """One applied write from the change log; `seq` orders them and resumes a feed."""

    seq: int
    namespace: str
    domain: str
    entity: str
    key: str
    version: int
    op: Op
    value: Any
    at: datetime
    token_id: int | None


@dataclass(frozen=True, slots=True)
class ChangesPage:
    """Changes in sequence order; pass `next_since` as `since` for the next page."""

    items: list[Change]
    next_since: int


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore wrote (or, for a dry run, would write)."""

    puts: int
    deletes: int
    dry_run: bool
    changes: list[dict[str, Any]] | None


def change(raw: dict[str, Any]) -> Change:
    return Change(
        seq=raw["seq"],
        namespace=raw["namespace"],
        domain=raw["domain"],
        entity=raw["entity"],
        key=raw["key"],
        version=raw["version"],
        op=raw["op"],
        value=raw["value"],
        at=datetime.fromisoformat(raw["at"]),
        token_id=raw["token_id"],
    )


def _history_page(response: httpx.Response) -> HistoryPage:
    raw = response.json()
    items = [
        Version(
            seq=i["seq"],
            op=i["op"],
            version=i["version"],
            at=datetime.fromisoformat(i["at"]),
            token_id=i["token_id"],
            value=i.get("value"),
        )
        for i in raw["items"]
    ]
    return HistoryPage(items, raw["next_cursor"])


def _changes_page(response: httpx.Response) -> ChangesPage:
    raw = response.json()
    return ChangesPage([change(c) for c in raw["items"]], raw["next_since"])


def _restored(response: httpx.Response) -> Restored:
    raw = response.json()
    return Restored(raw["puts"], raw["deletes"], raw["dry_run"], raw.get("changes"))


def _record_path(ns: str, domain: str, entity: Name, key: Name) -> str:
    parts = (segment(ns, "namespace"), segment(domain, "domain"), segment(entity, "entity"))
    return f"/v1/{'/'.join(parts)}/records/{segment(key, 'key')}"


def scope(domain: str | None, entity: Name | None) -> dict[str, str]:
    params = {}
    if domain is not None:
        params["domain"] = domain
    if entity is not None:
        params["entity"] = str(entity)
    return params


def get_version(ns: str, domain: str, entity: Name, key: Name, version: int) -> Call[Record]:
    """GET one version of a record (404 never existed, 410 pruned)."""
    path = _record_path(ns, domain, entity, key)
    return Call("GET", path, answers.record, params={"version": str(int(version))})


def history(
    ns: str, domain: str, entity: Name, key: Name, limit: int, cursor: str | None, values: bool
) -> Call[HistoryPage]:
    """GET a record's versions, newest first."""
    params = {"limit": str(limit)}
    if cursor is not None:
        params["cursor"] = cursor
    if values:
        params["values"] = "true"
    path = _record_path(ns, domain, entity, key) + "/history"
    return Call("GET", path, _history_page, params=params)


def records_at(
    ns: str, domain: str, entity: Name, at: datetime, limit: int, cursor: str | None
) -> Call[ItemsPage]:
    """GET one page of an entity's records as they stood at `at`."""
    params = {"at": at.isoformat(), "limit": str(limit), "values": "true"}
    if cursor is not None:
        params["cursor"] = cursor
    path = "/".join(("/v1", segment(ns), segment(domain), segment(entity), "records"))
    return Call("GET", path, answers.items_page, params=params)


def changes(
    ns: str, since: int, domain: str | None, entity: Name | None, limit: int
) -> Call[ChangesPage]:
    """GET a page of the namespace's changes after `since`, in sequence order."""
    params = {"since": str(since), "limit": str(limit), **scope(domain, entity)}
    return Call("GET", f"/v1/{segment(ns, 'namespace')}/changes", _changes_page, params=params)


def restore(
    ns: str, at: datetime, domain: str | None, entity: Name | None, dry_run: bool
) -> Call[Restored]:
    """POST restore: the state at `at` written back as new versions (admin scope)."""
    payload: dict[str, Any] = {"at": at.isoformat(), "dry_run": dry_run}
    payload.update(scope(domain, entity))
    path = f"/v1/{segment(ns, 'namespace')}/restore"
    # A restore repeated after a lost answer writes nothing more: the state already matches.
    return Call(
        "POST",
        path,
        _restored,
        headers={"Content-Type": "application/json"},
        body=dumps(payload),
    )


def watch_path(ns: str) -> str:
    return f"/v1/{segment(ns, 'namespace')}/watch"


class SSEParser:
    """Server-Sent Events lines in, (event, data) out; comments (heartbeats) are skipped.

    `last_id` follows the spec: every `id:` field sets it, even on a block without data.
    """

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self.last_id: int | None = None

    def feed(self, line: str) -> Iterator[tuple[str, str]]:
        if line == "":
            fields, self._fields = self._fields, {}
            if "data" in fields:
                yield fields.get("event", "message"), fields["data"]
            if fields.get("id", "").isdigit():
                self.last_id = int(fields["id"])
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data" and "data" in self._fields:
            value = self._fields["data"] + "\n" + value
        self._fields[name] = value


def event_change(data: str) -> Change:
    return change(json.loads(data))
