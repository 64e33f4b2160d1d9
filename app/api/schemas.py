"""HTTP layer: request and response models, which also document the API in /docs."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from ..contract import MAX_RENEW_LEASES
from ..errors import PROBLEM_MEDIA_TYPE
from ..names import SLUG_PATTERN

JSON = "application/json"


class InitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    initial: bool = True


class BatchGetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[str]


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    value: Any = Field(description="any JSON value, null included")


class BatchPutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[BatchItem]
    mode: Literal["upsert", "insert_if_absent"] = "upsert"


# Lease TTL bounds: long enough to renew over a slow network, short enough that a crashed
# holder is replaced within the hour (docs/leases.md: choosing the TTL).
MIN_TTL_MS = 100
MAX_TTL_MS = 3_600_000
_TTL = Field(ge=MIN_TTL_MS, le=MAX_TTL_MS, description="time to live in ms, 100 to 3600000")
_TOKEN = Field(ge=1, lt=2**63, description="the fencing token the acquisition answered")


class AcquireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    holder: str = Field(
        min_length=1, max_length=256, description="who takes the lease: unique per process"
    )
    ttl_ms: int = _TTL


class RenewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    token: int = _TOKEN
    ttl_ms: int | None = Field(
        default=None, ge=MIN_TTL_MS, le=MAX_TTL_MS, description="new TTL; default: the same"
    )


# Documented as the slug rule (names.py checks it, with its own error) so generated requests
# can name real leases.
_SLUG_DOC: JsonDict = {"pattern": f"^{SLUG_PATTERN}$"}


class RenewItem(RenewRequest):
    namespace: str = Field(json_schema_extra=_SLUG_DOC)
    name: str = Field(json_schema_extra=_SLUG_DOC, description="the lease name")


class RenewLeasesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    leases: list[RenewItem] = Field(min_length=1, max_length=MAX_RENEW_LEASES)


class LeaseOut(BaseModel):
    name: str
    holder: str | None = Field(description="null once released")
    token: int = Field(description="fencing token: strictly increases per acquisition")
    ttl_ms: int
    expires_at: str
    held: bool


class RenewRefusal(BaseModel):
    code: Literal["lease_lost", "not_found"]
    detail: str = Field(description="the detail the single renewal's problem would carry")


class RenewedOut(BaseModel):
    """A renewed lease (the fields of LeaseOut), or `error` for one that was not renewed."""

    namespace: str
    name: str
    holder: str | None = None
    token: int | None = None
    ttl_ms: int | None = None
    expires_at: str | None = None
    held: bool | None = None
    error: RenewRefusal | None = None


class RenewLeasesOut(BaseModel):
    leases: list[RenewedOut] = Field(description="one result per requested lease, in order")


class VersionOut(BaseModel):
    version: int


class CountOut(BaseModel):
    keys: int


class ItemOut(BaseModel):
    key: str
    value: Any
    version: int
    updated_at: str


class KeysPage(BaseModel):
    keys: list[str] | None = None
    items: list[ItemOut] | None = None
    next_cursor: str | None = None


class BatchGetOut(BaseModel):
    items: list[ItemOut]
    missing: list[str]


class WrittenOut(BaseModel):
    key: str
    version: int | None = Field(description="null when insert_if_absent found the key present")
    written: bool


class BatchPutOut(BaseModel):
    items: list[WrittenOut]


class Count(BaseModel):
    name: str
    records: int


class Listing(BaseModel):
    items: list[Count]


_PROBLEM: dict[str, Any] = {PROBLEM_MEDIA_TYPE: {}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid name, JSON, request or fence", "content": _PROBLEM},
    401: {"description": "missing, invalid or revoked bearer token", "content": _PROBLEM},
    403: {"description": "the token's scope or namespace does not cover this", "content": _PROBLEM},
    503: {"description": "database unavailable; retry after Retry-After", "content": _PROBLEM},
}


def errors_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        404: "no record at this address",
        409: "the lease is held, lost or the fenced write refused; or no history for this domain",
        410: "retention removed that version or time",
        412: "the If-Match or If-None-Match condition failed",
        413: "the value is over the size limit",
        415: "the body is not application/json",
        422: "the value does not fit the domain's shape",
    }
    out = dict(_ERRORS)
    for code in codes:
        out[code] = {"description": described[code], "content": _PROBLEM}
    return out


def _inline_defs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline_defs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_defs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_defs(v, defs) for v in node]
    return node


def request_schema(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    # In OpenAPI a "#/..." reference points into the whole document, where a model's own
    # $defs are not found, so nested models are inlined.
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": required,
            "content": {JSON: {"schema": _inline_defs(schema, defs)}},
        }
    }


# Documented here, read by the handlers from the request: the record routes also run on the
# fast path (app/fast.py), which passes only the path parameters.
FENCE_PARAMETER: dict[str, Any] = {
    "parameters": [
        {
            "name": "Persistd-Fence",
            "in": "header",
            "required": False,
            "description": "<lease name>=<token>: apply the write only while that lease of the "
            "namespace is held with that token (else 409 fenced)",
            "schema": {"type": "string"},
        }
    ]
}
