"""Validation layer: top-level value shapes of the seed domains (extra fields always allowed)."""

from collections.abc import Callable
from typing import Any

from .errors import InvalidValue, PayloadTooLarge

_NUMBER = (int, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _signal(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return "must be null or an object"
    if not isinstance(value.get("id"), str):
        return "field 'id' must be a string"
    if value.get("position") not in ("long", "short"):
        return "field 'position' must be 'long' or 'short'"
    for field in ("priceOpen", "priceTakeProfit", "priceStopLoss"):
        if not _is_number(value.get(field)):
            return f"field '{field}' must be a number"
    return None


def _risk(value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be an array of [string, object] pairs"
    for i, pair in enumerate(value):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], dict)
        ):
            return f"item {i} must be a [string, object] pair"
    return None


def _partial(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object keyed by signal id"
    for signal_id, levels in value.items():
        if not isinstance(levels, dict):
            return f"entry {signal_id!r} must be an object"
        for field in ("profitLevels", "lossLevels"):
            if not isinstance(levels.get(field), list):
                return f"entry {signal_id!r} field '{field}' must be an array"
    return None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "signal": _signal,
    "schedule": _signal,
    "risk": _risk,
    "partial": _partial,
}


def check_value(domain: str, value: Any, key: str | None = None) -> None:
    """Raise InvalidValue when a seed domain's value has the wrong top-level shape."""
    check = _CHECKS.get(domain)
    if check is None:
        return
    problem = check(value)
    if problem is not None:
        where = f" for key {key!r}" if key is not None else ""
        raise InvalidValue(f"{domain} value{where} {problem}")


def check_write(domain: str, value: Any, size: int, limit: int, key: str | None = None) -> None:
    """The one check of a value about to be written, by a PUT, a batch-put or import-dump:
    `value` (parsed by body.parse_json from `size` bytes) is within `limit` bytes and fits its
    domain's shape. PayloadTooLarge or InvalidValue otherwise."""
    if size > limit:
        where = f" for key {key!r}" if key is not None else ""
        raise PayloadTooLarge(f"the value{where} is {size} bytes; the limit is {limit} bytes")
    check_value(domain, value, key)
