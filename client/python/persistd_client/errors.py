"""Client error layer: one exception class per problem `code`, built from problem+json answers."""

from __future__ import annotations

import json
from typing import Any

import httpx


class PersistError(Exception):
    """Base of every persistd client error: carries status, code, detail and the attempts made."""

    code: str = "error"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        # An instance keeps the server's own code, even when only the status chose the class.
        self.code = code or type(self).code
        self.title = title
        self.attempts = attempts

    def __str__(self) -> str:
        status = "" if self.status is None else f"{self.status} "
        return f"{status}{self.code}: {self.detail}"


class InvalidRequest(PersistError):
    """400: the request is malformed (bad header, cursor, batch or query)."""

    code = "invalid_request"


class InvalidName(InvalidRequest):
    """400: a namespace, domain, entity or key breaks the naming rules."""

    code = "invalid_name"


class InvalidJson(InvalidRequest):
    """400: the body is not valid JSON."""

    code = "invalid_json"


class Unauthorized(PersistError):
    """401: no or a wrong bearer token."""

    code = "unauthorized"


class Forbidden(PersistError):
    """403: the token may not touch this namespace."""

    code = "forbidden"


class NotFound(PersistError):
    """404: no record at this address."""

    code = "not_found"


class VersionMismatch(PersistError):
    """412: the If-Match version is stale, or a create-only write found the record present."""

    code = "version_mismatch"


class Conflict(PersistError):
    """409 without a code this client knows: a lease conflict (see LeaseHeld and Fenced)."""

    code = "conflict"


class LeaseHeld(Conflict):
    """409: another holder has the lease (`detail` names it and the expiry)."""

    code = "lease_held"


class Fenced(Conflict):
    """409: the lease is lost: a write under it was refused (`fenced`), or its renewal was
    (`lease_lost`). This process is no longer the owner; every later fenced write raises it."""

    code = "fenced"


class LeaseLost(Fenced):
    """409: renew or release with a token that is no longer current (a Fenced)."""

    code = "lease_lost"


class PayloadTooLarge(PersistError):
    """413: the value or batch is over the service's size limit."""

    code = "payload_too_large"


class InvalidValue(PersistError):
    """422: valid JSON that does not fit the domain's shape."""

    code = "invalid_value"


class Unavailable(PersistError):
    """503 (or 502/504): the service or its database is unavailable; retries ran out."""

    code = "unavailable"


class ConnectionFailed(PersistError):
    """No HTTP answer at all (connect error, timeout, dropped connection); retries ran out.

    For a write this means the outcome is unknown: it may or may not have been stored.
    """

    code = "connection_failed"


_BY_CODE: dict[str, type[PersistError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidName,
        InvalidJson,
        Unauthorized,
        Forbidden,
        NotFound,
        VersionMismatch,
        LeaseHeld,
        Fenced,
        LeaseLost,
        PayloadTooLarge,
        InvalidValue,
        Unavailable,
    )
}
_BY_STATUS: dict[int, type[PersistError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: VersionMismatch,
    413: PayloadTooLarge,
    422: InvalidValue,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def _problem(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_from_response(response: httpx.Response, attempts: int = 1) -> PersistError:
    """The typed exception for a non-2xx answer: chosen by problem `code`, else by status."""
    problem = _problem(response)
    code = problem.get("code")
    code = code if isinstance(code, str) else None
    detail = problem.get("detail")
    title = problem.get("title")
    if not isinstance(detail, str):
        detail = response.reason_phrase or f"HTTP {response.status_code}"
    title = title if isinstance(title, str) else None
    return error_for(response.status_code, code, detail, title=title, attempts=attempts)


def error_for(
    status: int | None, code: str | None, detail: str, *, title: str | None = None,
    attempts: int = 1,
) -> PersistError:  # fmt: skip
    """The typed exception for a problem `code` (else its status) and detail."""
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status or 0, PersistError)
    return cls(detail, status=status, code=code, title=title, attempts=attempts)


def connection_failed(exc: httpx.TransportError, attempts: int = 1) -> ConnectionFailed:
    """The typed exception for a transport failure (no HTTP answer)."""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return ConnectionFailed(detail, attempts=attempts)
