"""HTTP layer: the client contract (name rules, limits, error codes, retryable statuses)."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..contract import contract
from .common import json_response, settings_of

router = APIRouter()


# Public, like /openapi.json: it describes the service, holds no records, and a client with a
# write-only token needs its limits too. The leading '_' cannot be a namespace.
@router.get(
    "/v1/_contract",
    summary="What clients need to know: name rules, limits, error codes, retryable statuses",
    tags=["service"],
    response_model=dict[str, Any],
)
async def get_contract(request: Request) -> Response:
    return json_response(contract(settings_of(request)))
