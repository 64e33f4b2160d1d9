"""Client data layer: the typed results the clients return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    """A stored value and its version (the ETag); `value` may be None for a stored JSON null."""

    value: Any
    version: int


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a PUT: the new version, and whether the record was created."""

    version: int
    created: bool


@dataclass(frozen=True, slots=True)
class Item:
    """One record of a listing or a batch read."""

    key: str
    value: Any
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class KeysPage:
    """One page of keys; `next_cursor` is None on the last page."""

    keys: list[str]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ItemsPage:
    """One page of records; `next_cursor` is None on the last page."""

    items: list[Item]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class BatchGetResult:
    """A batch read: found records in request order, and the keys that were absent."""

    items: list[Item]
    missing: list[str]

    @property
    def values(self) -> dict[str, Any]:
        """The found values by key."""
        return {item.key: item.value for item in self.items}


@dataclass(frozen=True, slots=True)
class BatchWritten:
    """One item of a batch write; `written` is False when insert_if_absent found it present."""

    key: str
    version: int | None
    written: bool


@dataclass(frozen=True, slots=True)
class Count:
    """A namespace, domain or entity name with its record count."""

    name: str
    records: int
