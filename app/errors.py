"""Error layer: AppError subclasses rendered as RFC 9457 problem+json by one handler."""

import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("persistd.errors")


class AppError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class InvalidRequest(AppError):
    status, code, title = 400, "invalid_request", "Invalid request"


class InvalidName(AppError):
    status, code, title = 400, "invalid_name", "Invalid name"


class InvalidJson(AppError):
    status, code, title = 400, "invalid_json", "Invalid JSON"


class InvalidFence(AppError):
    status, code, title = 400, "invalid_fence", "Invalid fence"


class InvalidHttp(AppError):
    # Sent by the transport (protocol.py) for a request its HTTP parser rejects.
    status, code, title = 400, "invalid_http", "Invalid HTTP request"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class MethodNotAllowed(AppError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class RequestTimeout(AppError):
    status, code, title = 408, "request_timeout", "Request timeout"


class LeaseHeld(AppError):
    status, code, title = 409, "lease_held", "Lease held by another holder"


class LeaseLost(AppError):
    status, code, title = 409, "lease_lost", "Lease lost"


class Fenced(AppError):
    status, code, title = 409, "fenced", "Fenced write refused"


class VersionMismatch(AppError):
    status, code, title = 412, "version_mismatch", "Version mismatch"


class HistoryNotKept(AppError):
    status, code, title = 409, "history_not_kept", "History not kept"


class VersionPruned(AppError):
    status, code, title = 410, "version_pruned", "Version pruned"


class HistoryPruned(AppError):
    status, code, title = 410, "history_pruned", "History pruned"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class InvalidValue(AppError):
    status, code, title = 422, "invalid_value", "Invalid value"


class HeadersTooLarge(AppError):
    status, code, title = 431, "headers_too_large", "Request headers too large"


class Unavailable(AppError):
    status, code, title = 503, "unavailable", "Service unavailable"


class Overloaded(AppError):
    status, code, title = 503, "overloaded", "Service overloaded"


# The client is still sending a body nobody will read: the connection cannot serve another request.
CLOSE = {"Connection": "close"}


def describe(errors: Iterable[Mapping[str, Any]], whole: str) -> str:
    """pydantic's errors as `loc.path: msg; ...`; `whole` stands for an empty path."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ())) or whole}: {err.get('msg', 'invalid')}"
        for err in errors
    )


def problem_body(status: int, code: str, title: str, detail: str) -> bytes:
    """The one place that shapes a problem+json body."""
    body = {
        "type": f"https://persistd.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return orjson.dumps(body)


def problem_response(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        problem_body(status, code, title, detail),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def render(error: AppError) -> Response:
    return problem_response(error.status, error.code, error.title, error.detail, error.headers)


_HTTP_CODES: dict[int, type[AppError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def unexpected(exc: Exception) -> Response:
    """A failure no handler expected: logged with its traceback; the client gets the problem
    shape, with no trace."""
    log.error("unexpected error", exc_info=exc)
    return render(AppError("an unexpected error occurred; it was logged"))


def install_handlers(app: FastAPI) -> None:
    """Route every known failure through the problem+json shape."""

    async def on_app_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return render(exc)

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        cls = _HTTP_CODES.get(exc.status_code, InvalidRequest)
        headers = dict(exc.headers or {})
        return problem_response(exc.status_code, cls.code, cls.title, str(exc.detail), headers)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return render(InvalidRequest(describe(exc.errors(), whole="") or "invalid request"))

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        return unexpected(exc)

    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
