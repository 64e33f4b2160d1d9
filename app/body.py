"""Validation layer: request bodies (content type, size limit before buffering, JSON parsing)."""

import asyncio
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from .errors import (
    CLOSE,
    InvalidJson,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from .names import ascii_int


def _check_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise UnsupportedMediaType(f"Content-Type must be application/json, not {media!r}")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or PayloadTooLarge as soon as it passes `limit` bytes, or
    RequestTimeout when it has not all arrived within the body timeout.

    Both errors close the connection (the rest of the body is never read): the server's
    protocol discards what the client still sends for a moment, so the client reads the answer
    rather than a reset (persistd.protocol).
    """
    _check_content_type(request)
    declared = request.headers.get("content-length")
    if declared is not None:
        size = ascii_int(declared)
        if size is None:
            raise InvalidRequest(f"Content-Length {declared!r} is not a number")
        if size > limit:
            raise PayloadTooLarge(
                f"the body is {declared} bytes; the limit is {limit} bytes", CLOSE
            )
    seconds: float = request.app.state.settings.body_timeout
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise PayloadTooLarge(f"the body is over the limit of {limit} bytes", CLOSE)
    except ClientDisconnect:
        # Nobody reads this answer; it only keeps a client gone mid-body out of the error log.
        raise InvalidRequest("the client closed the connection before its body arrived") from None
    except TimeoutError:
        raise RequestTimeout(
            f"the body did not arrive within {seconds:g} seconds (PERSISTD_BODY_TIMEOUT)", CLOSE
        ) from None
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """Parse strict UTF-8 JSON: no NaN or Infinity, nesting up to 1024 levels."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None
