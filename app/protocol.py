"""Transport layer: uvicorn's httptools protocol, answering unparsable requests as problem+json."""

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import PROBLEM_MEDIA_TYPE, problem_body

# `persistd serve`, the container image and the tests all run uvicorn with `--http` set to this.
IMPORT_STRING = "persistd.protocol:HttpProtocol"


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, but a request its HTTP parser rejects (an unknown method,
    broken framing, a path that is not ASCII) gets the service's problem+json 400 instead of a
    plain-text one. Such a request never reaches the application; the connection is closed.
    """

    def send_400_response(self, msg: str) -> None:
        body = problem_body(
            400,
            "invalid_http",
            "Invalid HTTP request",
            "the request is not valid HTTP/1.1 and was not processed",
        )
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()

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


def _is_watch(scope: Any) -> bool:
    path: str = scope.get("path", "")
    return scope.get("method") == "GET" and path.startswith("/v1/") and path.endswith("/watch")
