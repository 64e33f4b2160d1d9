"""Validation layer: the naming rules for namespace, domain, entity and key (one place), and the
one reader of the decimal numbers clients write in headers and tokens."""

import re
from datetime import datetime
from urllib.parse import unquote_to_bytes

from .errors import InvalidName, InvalidRequest

MAX_NAME_BYTES = 512
# A whole name must match (fullmatch; JavaScript: ^(?:...)$).
SLUG_PATTERN = r"[a-z0-9][a-z0-9_.-]{0,62}"
_SLUG = re.compile(SLUG_PATTERN)
# Unicode's control characters (category Cc), as a character class JavaScript reads the same way.
CONTROL_CHARACTERS = r"[\u0000-\u001f\u007f-\u009f]"
_CONTROL = re.compile(CONTROL_CHARACTERS)
RESERVED_NAMES = (".", "..")
# A '%' not followed by two hex digits: unquote would keep it literally, so "%ZZ" and "%25ZZ"
# would be two spellings of one name.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
SLUG_RULE = "1 to 63 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
NAME_RULE = f"1 to {MAX_NAME_BYTES} UTF-8 bytes without control characters, and not '.' or '..'"


def ascii_int(text: str) -> int | None:
    """A non-negative decimal of ASCII digits, or None (isdigit() alone accepts "²", which int()
    rejects)."""
    return int(text) if text.isascii() and text.isdigit() else None


def check_slug(kind: str, value: str) -> str:
    """A namespace or domain: lowercase slug."""
    if not _SLUG.fullmatch(value):
        raise InvalidName(f"{kind} {value!r} is invalid: it must be {SLUG_RULE}")
    return value


def check_name(kind: str, value: str) -> str:
    """An entity or key: any Unicode string within the byte limit, no control characters."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidName(f"{kind} is not valid Unicode: it must be {NAME_RULE}") from None
    if size == 0 or size > MAX_NAME_BYTES:
        raise InvalidName(f"{kind} is {size} bytes long: it must be {NAME_RULE}")
    if value in RESERVED_NAMES:
        raise InvalidName(f"{kind} {value!r} is reserved: it must be {NAME_RULE}")
    control = _CONTROL.search(value)
    if control:
        raise InvalidName(
            f"{kind} contains the control character U+{ord(control[0]):04X}: it must be {NAME_RULE}"
        )
    return value


def decode_segment(kind: str, raw: str) -> str:
    """Decode one percent-encoded path segment exactly as the client encoded it."""
    if "%" in raw and _BAD_ESCAPE.search(raw):
        raise InvalidName(f"{kind} has a malformed percent-escape: '%' needs two hex digits")
    try:
        value = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidName(f"{kind} is not valid UTF-8 once percent-decoded") from None
    return check_name(kind, value)


def parse_time(name: str, text: str) -> datetime:
    """An RFC 3339 time with an offset; 400 otherwise."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InvalidRequest(f"{name} must be an RFC 3339 time with an offset; got {text!r}")
    return when
