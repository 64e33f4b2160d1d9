"""Client shells: what the sync and async clients share (settings, retry policy, timeout)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import httpx

from persistd_client._core.call import DEFAULT_TIMEOUT, Call, Settings
from persistd_client.errors import Fenced
from persistd_client.retry import RetryPolicy

Timeout = float | httpx.Timeout | None
PAGE_SIZE = 1000


class FenceSource(Protocol):
    """A lease a client is bound to (persistd_client.lease): its fence goes with every write."""

    def header(self) -> str:
        """The Persistd-Fence value; raises Fenced once the lease is lost."""
        ...

    def refused(self, error: Fenced) -> Fenced:
        """A write was answered `fenced`: the lease is lost; the error to raise."""
        ...


class Shell:
    """What both clients share: settings, retry policy, timeout; no I/O."""

    def __init__(
        self,
        url: str | None,
        token: str | None,
        namespace: str | None,
        timeout: Timeout,
        retry: RetryPolicy | None,
        http_client: httpx.Client | httpx.AsyncClient | None,
    ) -> None:
        injected_url = str(http_client.base_url) if http_client is not None else ""
        self.settings = Settings.resolve(url, token, namespace, injected_url or None)
        self.retry = retry if retry is not None else RetryPolicy()
        # None: the httpx client's own timeout (ours is DEFAULT_TIMEOUT when we create it).
        self._timeout = None if timeout is None else httpx.Timeout(timeout)
        self._owns_http = http_client is None
        self.fence: FenceSource | None = None  # set while a Lease binds this client

    def _fenced(self, call: Call[Any]) -> Call[Any]:
        """The call with the bound lease's fence when it is a write."""
        if self.fence is None or not call.write:
            return call
        return replace(call, headers={**call.headers, "Persistd-Fence": self.fence.header()})

    def _refused(self, call: Call[Any], error: Fenced) -> Fenced:
        """A write answered `fenced` loses the bound lease; the error to raise."""
        return error if self.fence is None or not call.write else self.fence.refused(error)

    @property
    def namespace(self) -> str:
        """The namespace every record call addresses."""
        return self.settings.namespace

    @property
    def url(self) -> str:
        """The service's base URL."""
        return self.settings.url

    def _new_client_timeout(self) -> httpx.Timeout:
        return self._timeout or DEFAULT_TIMEOUT
