"""HTTP layer: one place each for addresses, conditions and response shapes."""

import base64
import binascii
from email.utils import format_datetime
from typing import Annotated, Any

import orjson
from fastapi import Path, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from ..auth import Principal
from ..config import Settings
from ..errors import InvalidFence, InvalidName, InvalidRequest, Unavailable, describe
from ..names import ascii_int, check_name, check_slug, decode_segment
from ..store import ANY_VERSION, Address, Collection, Fence, Item, Meta, Store
from .schemas import JSON

Namespace = Annotated[str, Path(description="namespace: one bot, account or deployment")]
Domain = Annotated[str, Path(description="domain: signal, risk, schedule, partial, ...")]
Entity = Annotated[str, Path(description="entity name, percent-encoded as one path segment")]
Key = Annotated[str, Path(description="record key, percent-encoded as one path segment")]

ENTITY = "/v1/{namespace}/{domain}/{entity}"


def store_of(request: Request) -> Store:
    store: Store | None = request.app.state.store
    if store is None:
        raise Unavailable("the database is not configured yet")
    return store


def writer_of(principal: Principal | None) -> int | None:
    """The token id the change log records as a write's author (None when auth is off)."""
    return None if principal is None else principal.token_id


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def collection_of(namespace: str, domain: str, entity: str) -> Collection:
    return Collection(
        check_slug("namespace", namespace),
        check_slug("domain", domain),
        decode_segment("entity", entity),
    )


def address_of(namespace: str, domain: str, entity: str, key: str) -> Address:
    coll = collection_of(namespace, domain, entity)
    return Address(coll.namespace, coll.domain, coll.entity, decode_segment("key", key))


def parse_if_match(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    header = header.strip()
    if header == "*":
        return ANY_VERSION
    quoted = len(header) > 2 and header[0] == header[-1] == '"'
    version = ascii_int(header[1:-1]) if quoted else None
    if version is not None and version < 2**63:
        return version
    raise InvalidRequest(f'If-Match must be "*" or one version in quotes, like "3"; got {header!r}')


def parse_create_only(request: Request) -> bool:
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    raise InvalidRequest(f'If-None-Match supports only "*" (create only); got {header!r}')


FENCE_HEADER = "persistd-fence"


def parse_fence(request: Request) -> Fence | None:
    """`Persistd-Fence: <lease name>=<token>`: the lease of the record's namespace that must be
    held with that token for the write to apply."""
    header = request.headers.get(FENCE_HEADER)
    if header is None:
        return None
    name, sep, token = header.strip().partition("=")
    number = ascii_int(token.strip())
    name = name.strip()
    if sep and number is not None and 0 < number < 2**63:
        try:
            return Fence(check_slug("lease name", name), number)
        except InvalidName as exc:
            raise InvalidFence(f"Persistd-Fence: {exc.detail}") from None
    raise InvalidFence(
        f"Persistd-Fence must be <lease name>=<token>, like my-bot=12; got {header!r}"
    )


def meta_headers(meta: Meta | Item) -> dict[str, str]:
    return {
        "ETag": f'"{meta.version}"',
        "Last-Modified": format_datetime(meta.updated_at, usegmt=True),
    }


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status_code=status, headers=headers, media_type=JSON)


def item_json(item: Item) -> dict[str, Any]:
    return {
        "key": item.key,
        "value": orjson.Fragment(item.value),
        "version": item.version,
        "updated_at": item.updated_at.isoformat(),
    }


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        return check_name("cursor", raw.decode("utf-8"))
    except (binascii.Error, ValueError, InvalidName):
        raise InvalidRequest("the cursor is not one this service issued") from None


def validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc.errors(), whole="body")) from None
