"""Contract layer: what a client must know about this service, published in one document.

`GET /v1/_contract` serves it with the running settings; `persistd contract` writes it with the
defaults to `client/contract.json`, which both clients' tests read. Every value comes from the
rule it describes (names.py, config.py, errors.py), never from a copy.
"""

from typing import Any

from . import errors
from .config import Settings
from .names import (
    CONTROL_CHARACTERS,
    MAX_NAME_BYTES,
    NAME_RULE,
    RESERVED_NAMES,
    SLUG_PATTERN,
    SLUG_RULE,
)

# The listing's bounds are fixed (not settings): the route takes them from here.
MAX_PAGE = 1000  # keys or records in one page of GET …/records
MAX_NEWEST = 10_000  # records in one GET …/records?newest=
# Leases renewed by one POST /v1/_leases/renew: a process running 1000 bots renews them all.
MAX_RENEW_LEASES = 1000

# Answers a client may repeat a request after: 503 is the service's own (database unavailable,
# with Retry-After), 502 and 504 come from proxies in front of it.
RETRYABLE_STATUSES = (502, 503, 504)


def error_codes() -> dict[str, int]:
    """Every problem `code` this service sends, with its status."""
    classes = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.AppError)
    ]
    return {cls.code: cls.status for cls in sorted(classes, key=lambda c: (c.status, c.code))}


def contract(settings: Settings) -> dict[str, Any]:
    """The client contract under these settings (limits are settings operators may change)."""
    return {
        "contract": 1,
        "names": {
            "slug": {
                "applies_to": ["namespace", "domain"],
                "pattern": SLUG_PATTERN,
                "rule": SLUG_RULE,
            },
            "name": {
                "applies_to": ["entity", "key"],
                "min_bytes": 1,
                "max_bytes": MAX_NAME_BYTES,
                "forbidden_characters": CONTROL_CHARACTERS,
                "reserved": list(RESERVED_NAMES),
                "rule": NAME_RULE,
            },
        },
        "limits": {
            "max_value_bytes": settings.max_value_bytes,
            "max_batch_items": settings.max_batch_items,
            "max_batch_bytes": settings.max_batch_bytes,
        },
        "listing": {"max_page": MAX_PAGE, "max_newest": MAX_NEWEST},
        "leases": {"max_renew_items": MAX_RENEW_LEASES},
        "errors": error_codes(),
        "retry": {
            "statuses": list(RETRYABLE_STATUSES),
            "retry_after_header": True,
            # A conditional write (If-Match, If-None-Match) whose answer was lost may have been
            # applied: repeating it would report a conflict with its own write. Only a refused
            # connection proves the request never arrived.
            "conditional_writes": "refused_connection_only",
        },
    }


def default_settings() -> Settings:
    """The built-in defaults, whatever the environment says (the checked-in contract file)."""
    return Settings.model_construct()
