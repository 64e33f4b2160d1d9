"""HTTP layer: request and response models, which also document the API in /docs."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import PROBLEM_MEDIA_TYPE

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
    400: {"description": "invalid name, JSON or request", "content": _PROBLEM},
    401: {"description": "missing, invalid or revoked bearer token", "content": _PROBLEM},
    403: {"description": "the token's scope or namespace does not cover this", "content": _PROBLEM},
    503: {"description": "database unavailable; retry after Retry-After", "content": _PROBLEM},
}


def errors_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        404: "no record at this address",
        409: "no history is kept for this domain",
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
