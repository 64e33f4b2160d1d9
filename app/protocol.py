"""Transport layer: uvicorn's httptools protocol with the service's limits on slow, idle and
too many clients, and problem+json for what never reaches the application."""

import asyncio
from http import HTTPStatus
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from .config import get_settings
from .errors import (
    CLOSE,
    PROBLEM_MEDIA_TYPE,
    AppError,
    HeadersTooLarge,
    InvalidHttp,
    Overloaded,
    RequestTimeout,
    problem_body,
    render,
)

# `persistd serve`, the container image and the tests all run uvicorn with `--http` set to this.
IMPORT_STRING = "persistd.protocol:HttpProtocol"

# After an answer that closes the connection while the client may still be sending, what it
# sends is read and dropped for this long: closing a socket with unread input resets the
# connection, and the reset can destroy the answer before the client has read it.
LINGER_SECONDS = 2.0

# The request line and headers of one request, at most: the parser buffers them until complete.
MAX_HEADER_BYTES = 64 * 1024


class _Transport:
    """The connection's transport as uvicorn sees it: close() lingers (HttpProtocol.close)."""

    def __init__(self, transport: asyncio.Transport, protocol: "HttpProtocol") -> None:
        self._transport = transport
        self._protocol = protocol
        self.write = transport.write  # every response: spared the __getattr__ lookup

    def close(self) -> None:
        self._protocol.close(always=False)

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with these additions (settings read from PERSISTD_*, so
    the image and `persistd serve` need no flags of their own):

    - a request's headers must arrive within `header_timeout` of the connection opening, or of
      its first byte after the previous answer; else 408 and the connection is closed (uvicorn
      alone waits forever for a client trickling headers); and they must fit MAX_HEADER_BYTES,
      else 431;
    - past `max_connections` open connections a new one is answered 503 `overloaded` at once;
      past `max_requests` requests in progress, a request is;
    - idle keep-alive connections are closed after `keepalive_timeout`;
    - an answer given before the request body has arrived (413, 408, any early error) closes
      the connection instead of reading a body nobody wants;
    - a request its HTTP parser rejects (an unknown method, broken framing, a path that is not
      ASCII) gets a problem+json 400, not a plain-text one.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.timeout_keep_alive = settings.keepalive_timeout
        self.header_timeout = settings.header_timeout
        self.max_connections = settings.max_connections
        self.max_requests = settings.max_requests
        self.retry_after = str(settings.retry_after)
        self.limit_concurrency = None  # uvicorn's plain-text 503; the limits above replace it
        self.raw_transport: asyncio.Transport | None = None
        self.header_timer: asyncio.TimerHandle | None = None  # set while headers arrive
        self.header_bytes = 0
        self.lingering = False

    # ---- connection ----

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        full = len(self.connections) >= self.max_connections
        super().connection_made(transport)
        self.raw_transport = transport
        self.transport = _Transport(transport, self)  # type: ignore[assignment]
        if full:
            self.answer(Overloaded(f"more than {self.max_connections} open connections"))
        else:
            self.arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # answered and closing: what the client still sends is dropped
        if self.header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self.arm_header_timer()  # the first bytes of the next request on this connection
        super().data_received(data)
        if self.header_timer is not None and not self.lingering:  # the headers are incomplete
            self.header_bytes += len(data)
            if self.header_bytes > MAX_HEADER_BYTES:
                self.answer(HeadersTooLarge(f"the headers are over {MAX_HEADER_BYTES} bytes"))

    def close(self, *, always: bool) -> None:
        """Close the connection; while the client may still be sending (`always`, or a request
        body has not all arrived), stop writing, drop what it sends, and close after
        LINGER_SECONDS or when the client closes its side, whichever comes first."""
        transport = self.raw_transport
        if transport is None or self.lingering or transport.is_closing():
            return
        sending = always or (self.cycle is not None and self.cycle.more_body)
        if not sending or not transport.can_write_eof():
            transport.close()
            return
        self.lingering = True
        self.connections.discard(self)  # on its way out, within LINGER_SECONDS: not counted
        self.disarm_header_timer()
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    # ---- requests ----

    def on_headers_complete(self) -> None:
        self.disarm_header_timer()
        if len(self.tasks) < self.max_requests:
            super().on_headers_complete()
            return
        app, self.app = self.app, _overloaded(self.max_requests, self.retry_after)
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_response_complete(self) -> None:
        # With nothing pipelined, self.cycle is the request just answered: if its body is still
        # arriving, the connection would be held by a body nobody reads.
        if not self.pipeline and self.cycle.more_body and not self.transport.is_closing():
            self.transport.close()
        super().on_response_complete()

    # ---- header deadline ----

    def arm_header_timer(self) -> None:
        self.header_bytes = 0
        self.header_timer = self.loop.call_later(self.header_timeout, self.on_header_timeout)

    def disarm_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def on_header_timeout(self) -> None:
        self.header_timer = None
        seconds = f"{self.header_timeout:g}"
        self.answer(RequestTimeout(f"the request headers did not arrive within {seconds} seconds"))

    # ---- answers outside the application ----

    def answer(self, error: AppError) -> None:
        """Write a problem+json answer straight to the connection, then close it."""
        body = problem_body(error.status, error.code, error.title, error.detail)
        head = [b"HTTP/1.1 %d %s\r\n" % (error.status, HTTPStatus(error.status).phrase.encode())]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        if error.status == 503:
            head.append(b"retry-after: " + self.retry_after.encode() + b"\r\n")
        head.append(b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.close(always=True)

    def send_400_response(self, msg: str) -> None:
        self.answer(InvalidHttp("the request is not valid HTTP/1.1 and was not processed"))

    def shutdown(self) -> None:
        # An event stream never completes by itself, so a graceful shutdown would wait for it
        # until it is killed. It ends as a dropped connection instead: watch clients resume
        # from their Last-Event-ID (on another instance, or on this one once restarted).
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and _is_watch(cycle.scope):
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.close()
            return
        super().shutdown()


def _overloaded(limit: int, retry_after: str) -> ASGIApp:
    """The application that answers a request past `max_requests`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        error = Overloaded(
            f"more than {limit} requests in progress", {"Retry-After": retry_after, **CLOSE}
        )
        await render(error)(scope, receive, send)

    return app


def _is_watch(scope: Any) -> bool:
    path: str = scope.get("path", "")
    return scope.get("method") == "GET" and path.startswith("/v1/") and path.endswith("/watch")
