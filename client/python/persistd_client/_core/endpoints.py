"""Client core: every endpoint defined once (method, path, headers, body, parser)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from persistd_client._core import answers
from persistd_client._core.call import BatchItems, BatchMode, Call, Name
from persistd_client.errors import InvalidName
from persistd_client.models import (
    BatchGetResult,
    BatchWritten,
    Count,
    Item,
    ItemsPage,
    KeysPage,
    Record,
    Written,
)

# ---- paths and bodies ----


def segment(name: Name, kind: str = "name") -> str:
    """One path segment, percent-encoded so that any name round-trips exactly."""
    text = str(name)
    if not text:
        # An empty segment cannot reach the route at all (the service would answer 404 or
        # redirect), so this one case is refused here; every other rule is the service's.
        raise InvalidName(f"{kind} is empty: it must be at least 1 character")
    encoded = quote(text, safe="")
    # quote leaves '.' alone, and URL normalisation would drop a '.' or '..' segment.
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def _namespace_path(ns: str) -> str:
    return f"/v1/{segment(ns, 'namespace')}"


def _domain_path(ns: str, domain: str) -> str:
    return f"{_namespace_path(ns)}/{segment(domain, 'domain')}"


def _entity_path(ns: str, domain: str, entity: Name) -> str:
    return f"{_domain_path(ns, domain)}/{segment(entity, 'entity')}"


def _records_path(ns: str, domain: str, entity: Name) -> str:
    return f"{_entity_path(ns, domain, entity)}/records"


def _record_path(ns: str, domain: str, entity: Name, key: Name) -> str:
    return f"{_records_path(ns, domain, entity)}/{segment(key, 'key')}"


def dumps(value: Any) -> bytes:
    """Strict JSON (no NaN or Infinity), UTF-8, as the service stores it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _json_body(value: Any) -> tuple[bytes, dict[str, str]]:
    return dumps(value), {"Content-Type": "application/json"}


def _if_match(version: int | None) -> dict[str, str]:
    return {} if version is None else {"If-Match": f'"{int(version)}"'}


# ---- the endpoints ----


def get(ns: str, domain: str, entity: Name, key: Name) -> Call[Record]:
    """GET a record: its value and version."""
    return Call("GET", _record_path(ns, domain, entity, key), answers.record)


def has(ns: str, domain: str, entity: Name, key: Name) -> Call[bool]:
    """HEAD a record: whether it exists."""
    return Call(
        "HEAD", _record_path(ns, domain, entity, key), answers.exists, accept=frozenset({404})
    )


def put(
    ns: str,
    domain: str,
    entity: Name,
    key: Name,
    value: Any,
    if_match: int | None,
    create_only: bool,
) -> Call[Written]:
    """PUT a whole record, optionally only at a version (If-Match) or only if absent."""
    if if_match is not None and create_only:
        raise ValueError("if_match and create_only cannot be combined")
    body, headers = _json_body(value)
    headers.update(_if_match(if_match))
    if create_only:
        headers["If-None-Match"] = "*"
    path = _record_path(ns, domain, entity, key)
    # A conditional write repeated after a lost answer could report a conflict for a write that
    # happened, and a caller re-applying its change would apply it twice: it is not repeated.
    conditional = if_match is not None or create_only
    return Call(
        "PUT", path, answers.written, headers=headers, body=body, retry=not conditional, write=True
    )


def delete(ns: str, domain: str, entity: Name, key: Name, if_match: int | None) -> Call[None]:
    """DELETE a record, optionally only at a version."""
    path = _record_path(ns, domain, entity, key)
    headers = _if_match(if_match)
    return Call(
        "DELETE", path, answers.nothing, headers=headers, retry=if_match is None, write=True
    )


def init(ns: str, domain: str, entity: Name, initial: bool) -> Call[int]:
    """POST init (the seed's waitForInit): checks access, answers the entity's key count."""
    body, headers = _json_body({"initial": initial})
    path = f"{_entity_path(ns, domain, entity)}/init"
    return Call("POST", path, answers.key_count, headers=headers, body=body)


def _list_params(limit: int, cursor: str | None, values: bool) -> dict[str, str]:
    params = {"limit": str(limit)}
    if values:
        params["values"] = "true"
    if cursor is not None:
        params["cursor"] = cursor
    return params


def list_keys(ns: str, domain: str, entity: Name, limit: int, cursor: str | None) -> Call[KeysPage]:
    """GET one page of keys, in byte order of the key."""
    path = _records_path(ns, domain, entity)
    return Call("GET", path, answers.keys_page, params=_list_params(limit, cursor, values=False))


def list_items(
    ns: str, domain: str, entity: Name, limit: int, cursor: str | None
) -> Call[ItemsPage]:
    """GET one page of records (key, value, version, updated_at), in byte order of the key."""
    path = _records_path(ns, domain, entity)
    return Call("GET", path, answers.items_page, params=_list_params(limit, cursor, values=True))


def newest(ns: str, domain: str, entity: Name, n: int) -> Call[list[Item]]:
    """GET the n most recently written records, oldest first."""
    path = _records_path(ns, domain, entity)
    return Call("GET", path, answers.items, params={"newest": str(n)})


def batch_get(ns: str, domain: str, entity: Name, keys: Iterable[Name]) -> Call[BatchGetResult]:
    """POST batch-get: many records in one round trip."""
    body, headers = _json_body({"keys": [str(k) for k in keys]})
    path = f"{_entity_path(ns, domain, entity)}/batch-get"
    return Call("POST", path, answers.batch_got, headers=headers, body=body)


def batch_put(
    ns: str,
    domain: str,
    entity: Name,
    items: BatchItems,
    mode: BatchMode,
) -> Call[list[BatchWritten]]:
    """POST batch-put: many records atomically (all or none)."""
    if mode not in ("upsert", "insert_if_absent"):
        raise ValueError(f"mode must be 'upsert' or 'insert_if_absent', not {mode!r}")
    pairs = items.items() if isinstance(items, Mapping) else items
    payload = {"items": [{"key": str(k), "value": v} for k, v in pairs], "mode": mode}
    body, headers = _json_body(payload)
    path = f"{_entity_path(ns, domain, entity)}/batch-put"
    return Call("POST", path, answers.batch_written, headers=headers, body=body, write=True)


def namespaces() -> Call[list[Count]]:
    """GET the namespaces with record counts."""
    return Call("GET", "/v1", answers.counts)


def domains(ns: str) -> Call[list[Count]]:
    """GET the domains of a namespace with record counts."""
    return Call("GET", _namespace_path(ns), answers.counts)


def entities(ns: str, domain: str) -> Call[list[Count]]:
    """GET the entities of a domain with record counts."""
    return Call("GET", _domain_path(ns, domain), answers.counts)


# A probe reports the state now; retrying would hide exactly what it is asked about.
def healthz() -> Call[dict[str, Any]]:
    """GET /healthz: the process is up."""
    return Call("GET", "/healthz", answers.status, retry=False)


def readyz() -> Call[dict[str, Any]]:
    """GET /readyz: the database is reachable and migrated."""
    return Call("GET", "/readyz", answers.status, retry=False)
