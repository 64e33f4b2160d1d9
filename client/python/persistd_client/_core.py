"""Client core: every endpoint defined once (method, path, body, parser) plus the attempt logic.

The sync and async clients only build an `httpx.Request` from a `Call` and run the send loop;
everything else about an endpoint lives here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

from persistd_client.errors import PersistError, connection_failed, error_from_response
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
from persistd_client.retry import RetryPolicy, retry_after

T = TypeVar("T")
Name = str | int
BatchMode = Literal["upsert", "insert_if_absent"]
# Mapping is invariant in its key type, so each accepted key type is spelled out.
BatchItems = Mapping[str, Any] | Mapping[int, Any] | Mapping[Name, Any] | Iterable[tuple[Name, Any]]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_NAMESPACE = "default"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "persistd-client/0.1.0"

# Transport failures that no retry can fix: a bad URL or a request httpx refuses to send.
_PERMANENT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request to the service and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    # Safe to repeat after an ambiguous failure: see "Retries" in the README for each endpoint.
    retry: bool = True
    # Non-2xx statuses that are an answer rather than an error (HEAD 404 means "absent").
    accept: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Settings:
    """Where and as whom the client talks: resolved once from arguments, then the environment."""

    url: str
    token: str | None
    namespace: str

    @classmethod
    def resolve(
        cls, url: str | None, token: str | None, namespace: str | None, fallback_url: str | None
    ) -> Settings:
        """Arguments win, then the injected client's base URL, then PERSISTD_* variables."""
        url = url or fallback_url or os.environ.get("PERSISTD_URL") or DEFAULT_URL
        token = token if token is not None else os.environ.get("PERSISTD_TOKEN") or None
        namespace = namespace or os.environ.get("PERSISTD_NAMESPACE") or DEFAULT_NAMESPACE
        return cls(url.rstrip("/"), token, namespace)

    def headers(self) -> dict[str, str]:
        """Headers sent with every request."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


class Attempts(Generic[T]):
    """The tries of one call: counts them and decides, after each, to retry or to finish."""

    def __init__(self, policy: RetryPolicy, call: Call[T]) -> None:
        self.policy = policy
        self.call = call
        self.count = 0
        self.started = policy.clock()

    def after_response(self, response: httpx.Response) -> float | None:
        """The wait before retrying this answer, or None when it is final."""
        self.count += 1
        if not self.call.retry or response.status_code not in self.policy.retry_statuses:
            return None
        return self.policy.next_delay(self.count, self.started, retry_after(response))

    def after_error(self, exc: httpx.TransportError) -> float:
        """The wait before retrying a transport failure; raises ConnectionFailed when spent."""
        self.count += 1
        delay = None
        if self.call.retry and not isinstance(exc, _PERMANENT):
            delay = self.policy.next_delay(self.count, self.started, None)
        if delay is None:
            raise connection_failed(exc, self.count) from exc
        return delay

    def finish(self, response: httpx.Response) -> T:
        """The parsed answer, or the typed error for a non-2xx status."""
        if response.is_success or response.status_code in self.call.accept:
            return self.call.parse(response)
        raise error_from_response(response, self.count)


def build_request(http: httpx.Client | httpx.AsyncClient, settings: Settings, call: Call[Any],
                  timeout: httpx.Timeout | None) -> httpx.Request:  # fmt: skip
    """The httpx request for a call (the injected client's own headers and timeout apply)."""
    headers = settings.headers()
    headers.update(call.headers)
    return http.build_request(
        call.method,
        settings.url + call.path,
        params=call.params,
        headers=headers,
        content=call.body,
        timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
    )


# ---- paths and bodies ----


def segment(name: Name) -> str:
    """One path segment, percent-encoded so that any name round-trips exactly."""
    encoded = quote(str(name), safe="")
    # quote leaves '.' alone, and URL normalisation would drop a '.' or '..' segment.
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def _entity_path(ns: str, domain: str, entity: Name) -> str:
    return f"/v1/{segment(ns)}/{segment(domain)}/{segment(entity)}"


def _record_path(ns: str, domain: str, entity: Name, key: Name) -> str:
    return f"{_entity_path(ns, domain, entity)}/records/{segment(key)}"


def dumps(value: Any) -> bytes:
    """Strict JSON (no NaN or Infinity), UTF-8, as the service stores it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _json_body(value: Any) -> tuple[bytes, dict[str, str]]:
    return dumps(value), {"Content-Type": "application/json"}


def _if_match(version: int | None) -> dict[str, str]:
    return {} if version is None else {"If-Match": f'"{int(version)}"'}


# ---- answers ----


def _loads(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        raise PersistError(
            f"the service answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
            code="invalid_response",
        ) from None


def _version(response: httpx.Response) -> int:
    etag = response.headers.get("etag", "").removeprefix("W/").strip('"')
    if not etag.isdigit():
        raise PersistError(
            f"the service sent no usable ETag (got {etag!r})",
            status=response.status_code,
            code="invalid_response",
        )
    return int(etag)


def _item(raw: dict[str, Any]) -> Item:
    return Item(
        key=raw["key"],
        value=raw["value"],
        version=raw["version"],
        updated_at=datetime.fromisoformat(raw["updated_at"]),
    )


def _record(response: httpx.Response) -> Record:
    return Record(value=_loads(response), version=_version(response))


def _exists(response: httpx.Response) -> bool:
    return response.status_code != 404


def _written(response: httpx.Response) -> Written:
    return Written(version=_loads(response)["version"], created=response.status_code == 201)


def _nothing(response: httpx.Response) -> None:
    return None


def _key_count(response: httpx.Response) -> int:
    count: int = _loads(response)["keys"]
    return count


def _keys_page(response: httpx.Response) -> KeysPage:
    page = _loads(response)
    return KeysPage(keys=page["keys"], next_cursor=page.get("next_cursor"))


def _items_page(response: httpx.Response) -> ItemsPage:
    page = _loads(response)
    return ItemsPage(items=[_item(i) for i in page["items"]], next_cursor=page.get("next_cursor"))


def _items(response: httpx.Response) -> list[Item]:
    return [_item(i) for i in _loads(response)["items"]]


def _batch_got(response: httpx.Response) -> BatchGetResult:
    body = _loads(response)
    return BatchGetResult(items=[_item(i) for i in body["items"]], missing=body["missing"])


def _batch_written(response: httpx.Response) -> list[BatchWritten]:
    return [
        BatchWritten(key=i["key"], version=i["version"], written=i["written"])
        for i in _loads(response)["items"]
    ]


def _counts(response: httpx.Response) -> list[Count]:
    return [Count(name=i["name"], records=i["records"]) for i in _loads(response)["items"]]


def _status(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = _loads(response)
    return body


# ---- the endpoints ----


def get(ns: str, domain: str, entity: Name, key: Name) -> Call[Record]:
    """GET a record: its value and version."""
    return Call("GET", _record_path(ns, domain, entity, key), _record)


def has(ns: str, domain: str, entity: Name, key: Name) -> Call[bool]:
    """HEAD a record: whether it exists."""
    return Call("HEAD", _record_path(ns, domain, entity, key), _exists, accept=frozenset({404}))


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
    return Call("PUT", path, _written, headers=headers, body=body)


def delete(ns: str, domain: str, entity: Name, key: Name, if_match: int | None) -> Call[None]:
    """DELETE a record, optionally only at a version."""
    path = _record_path(ns, domain, entity, key)
    return Call("DELETE", path, _nothing, headers=_if_match(if_match))


def init(ns: str, domain: str, entity: Name, initial: bool) -> Call[int]:
    """POST init (the seed's waitForInit): checks access, answers the entity's key count."""
    body, headers = _json_body({"initial": initial})
    path = f"{_entity_path(ns, domain, entity)}/init"
    return Call("POST", path, _key_count, headers=headers, body=body)


def _list_params(limit: int, cursor: str | None, values: bool) -> dict[str, str]:
    params = {"limit": str(limit)}
    if values:
        params["values"] = "true"
    if cursor is not None:
        params["cursor"] = cursor
    return params


def list_keys(ns: str, domain: str, entity: Name, limit: int, cursor: str | None) -> Call[KeysPage]:
    """GET one page of keys, in byte order of the key."""
    path = f"{_entity_path(ns, domain, entity)}/records"
    return Call("GET", path, _keys_page, params=_list_params(limit, cursor, values=False))


def list_items(
    ns: str, domain: str, entity: Name, limit: int, cursor: str | None
) -> Call[ItemsPage]:
    """GET one page of records (key, value, version, updated_at), in byte order of the key."""
    path = f"{_entity_path(ns, domain, entity)}/records"
    return Call("GET", path, _items_page, params=_list_params(limit, cursor, values=True))


def newest(ns: str, domain: str, entity: Name, n: int) -> Call[list[Item]]:
    """GET the n most recently written records, oldest first."""
    path = f"{_entity_path(ns, domain, entity)}/records"
    return Call("GET", path, _items, params={"newest": str(n)})


def batch_get(ns: str, domain: str, entity: Name, keys: Iterable[Name]) -> Call[BatchGetResult]:
    """POST batch-get: many records in one round trip."""
    body, headers = _json_body({"keys": [str(k) for k in keys]})
    path = f"{_entity_path(ns, domain, entity)}/batch-get"
    return Call("POST", path, _batch_got, headers=headers, body=body)


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
    return Call("POST", path, _batch_written, headers=headers, body=body)


def namespaces() -> Call[list[Count]]:
    """GET the namespaces with record counts."""
    return Call("GET", "/v1", _counts)


def domains(ns: str) -> Call[list[Count]]:
    """GET the domains of a namespace with record counts."""
    return Call("GET", f"/v1/{segment(ns)}", _counts)


def entities(ns: str, domain: str) -> Call[list[Count]]:
    """GET the entities of a domain with record counts."""
    return Call("GET", f"/v1/{segment(ns)}/{segment(domain)}", _counts)


# A probe reports the state now; retrying would hide exactly what it is asked about.
def healthz() -> Call[dict[str, Any]]:
    """GET /healthz: the process is up."""
    return Call("GET", "/healthz", _status, retry=False)


def readyz() -> Call[dict[str, Any]]:
    """GET /readyz: the database is reachable and migrated."""
    return Call("GET", "/readyz", _status, retry=False)
