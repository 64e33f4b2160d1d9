"""Validation layer: request bodies (content type, size limit before buffering, JSON parsing)."""

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request

from .errors import InvalidJson, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from .names import ascii_int

# Past this many bytes an oversized body is no longer drained; the connection is dropped instead.
_DRAIN_LIMIT = 64 * 1024 * 1024


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


async def _drain(chunks: AsyncIterator[bytes], seen: int) -> None:
    # Reading (not keeping) the rest lets the client receive the 413 instead of a reset.
    async for chunk in chunks:
        seen += len(chunk)
        if seen > _DRAIN_LIMIT:
            return


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or PayloadTooLarge as soon as it passes `limit` bytes."""
    _check_content_type(request)
    declared = request.headers.get("content-length")
    if declared is not None:
        size = ascii_int(declared)
        if size is None:
            raise InvalidRequest(f"Content-Length {declared!r} is not a number")
        if size > limit:
            # A body too big to drain is answered at once, without waiting for it to arrive.
            if size <= _DRAIN_LIMIT:
                await _drain(request.stream(), 0)
            raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit} bytes")
    body = bytearray()
    chunks = request.stream()  # one iterator: Starlette refuses to open the stream twice
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            await _drain(chunks, len(body))
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """Parse strict UTF-8 JSON: no NaN or Infinity, nesting up to 1024 levels."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None
