"""Client shells: what the sync and async clients share (settings, retry policy, timeout)."""

from __future__ import annotations

import httpx

from persistd_client._core.call import DEFAULT_TIMEOUT, Settings
from persistd_client.retry import RetryPolicy

Timeout = float | httpx.Timeout | None
PAGE_SIZE = 1000


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
