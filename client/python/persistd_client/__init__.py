"""persistd client: sync and async HTTP clients, typed errors, and backtest-kit's seed adapters."""

from persistd_client._version import __version__ as __version__
from persistd_client.client import AsyncPersistClient, PersistClient
from persistd_client.errors import (
    Conflict,
    ConnectionFailed,
    Fenced,
    Forbidden,
    InvalidJson,
    InvalidName,
    InvalidRequest,
    InvalidValue,
    LeaseHeld,
    LeaseLost,
    NotFound,
    PayloadTooLarge,
    PersistError,
    Unauthorized,
    Unavailable,
    VersionMismatch,
)
from persistd_client.lease import AsyncLease, Lease, LeaseInfo
from persistd_client.models import (
    BatchGetResult,
    BatchWritten,
    Count,
    Item,
    ItemsPage,
    KeysPage,
    Record,
    Written,
)
from persistd_client.retry import NO_RETRY, RetryPolicy

__all__ = [
    "NO_RETRY",
    "AsyncLease",
    "AsyncPersistClient",
    "BatchGetResult",
    "BatchWritten",
    "Conflict",
    "ConnectionFailed",
    "Count",
    "Fenced",
    "Forbidden",
    "InvalidJson",
    "InvalidName",
    "InvalidRequest",
    "InvalidValue",
    "Item",
    "ItemsPage",
    "KeysPage",
    "Lease",
    "LeaseHeld",
    "LeaseInfo",
    "LeaseLost",
    "NotFound",
    "PayloadTooLarge",
    "PersistClient",
    "PersistError",
    "Record",
    "RetryPolicy",
    "Unauthorized",
    "Unavailable",
    "VersionMismatch",
    "Written",
]
