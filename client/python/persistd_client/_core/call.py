"""Client core: a Call (one request and its parser), settings, and the per-call attempt logic.

The sync and async clients only build an `httpx.Request` from a `Call` and run the send loop;
everything they decide (retry or finish, which error) is decided here, once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx

from persistd_client._version import __version__
from persistd_client.errors import connection_failed, error_from_response
from persistd_client.retry import RetryPolicy, retry_after

T = TypeVar("T")
Name = str | int
BatchMode = Literal["upsert", "insert_if_absent"]
# Mapping is invariant in its key type, so each accepted key type is spelled out.
BatchItems = Mapping[str, Any] | Mapping[int, Any] | Mapping[Name, Any] | Iterable[tuple[Name, Any]]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_NAMESPACE = "default"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = f"persistd-client/{__version__}"

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
    # A record write: a client bound to a lease sends its fence with it.
    write: bool = False


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
        # A refused connection never carried the request: repeating it is safe for every call.
        repeatable = self.call.retry or isinstance(exc, httpx.ConnectError)
        if repeatable and not isinstance(exc, _PERMANENT):
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
