"""Client core: parsers that turn the service's answers into the typed results."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from persistd_client.errors import PersistError
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
from persistd_client.retry import ascii_int


def _loads(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        raise PersistError(
            f"the service answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
            code="invalid_response",
        ) from None


def _version(response: httpx.Response) -> int:
    etag = response.headers.get("etag", "").removeprefix("W/").strip('"')
    version = ascii_int(etag)
    if version is None:
        raise PersistError(
            f"the service sent no usable ETag (got {etag!r})",
            status=response.status_code,
            code="invalid_response",
        )
    return version


def _item(raw: dict[str, Any]) -> Item:
    return Item(
        key=raw["key"],
        value=raw["value"],
        version=raw["version"],
        updated_at=datetime.fromisoformat(raw["updated_at"]),
    )


def record(response: httpx.Response) -> Record:
    """The body as the value, the ETag as the version."""
    return Record(value=_loads(response), version=_version(response))


def exists(response: httpx.Response) -> bool:
    """HEAD: 404 means absent, anything accepted as 2xx means present."""
    return response.status_code != 404


def written(response: httpx.Response) -> Written:
    """PUT: the new version; 201 means the record was created."""
    return Written(version=_loads(response)["version"], created=response.status_code == 201)


def nothing(response: httpx.Response) -> None:
    """An answer without a body (DELETE 204)."""
    return None


def key_count(response: httpx.Response) -> int:
    """init: the entity's key count."""
    count: int = _loads(response)["keys"]
    return count


def keys_page(response: httpx.Response) -> KeysPage:
    """A page of keys and the cursor to the next."""
    page = _loads(response)
    return KeysPage(keys=page["keys"], next_cursor=page.get("next_cursor"))


def items_page(response: httpx.Response) -> ItemsPage:
    """A page of records and the cursor to the next."""
    page = _loads(response)
    return ItemsPage(items=[_item(i) for i in page["items"]], next_cursor=page.get("next_cursor"))


def items(response: httpx.Response) -> list[Item]:
    """A list of records (newest)."""
    return [_item(i) for i in _loads(response)["items"]]


def batch_got(response: httpx.Response) -> BatchGetResult:
    """batch-get: found records in request order and the missing keys."""
    body = _loads(response)
    return BatchGetResult(items=[_item(i) for i in body["items"]], missing=body["missing"])


def batch_written(response: httpx.Response) -> list[BatchWritten]:
    """batch-put: the outcome per item."""
    return [
        BatchWritten(key=i["key"], version=i["version"], written=i["written"])
        for i in _loads(response)["items"]
    ]


def counts(response: httpx.Response) -> list[Count]:
    """Inspection: names with record counts."""
    return [Count(name=i["name"], records=i["records"]) for i in _loads(response)["items"]]


def status(response: httpx.Response) -> dict[str, Any]:
    """A health document."""
    body: dict[str, Any] = _loads(response)
    return body
