"""HTTP layer: routes parse the request, call the store, and map the result to a response."""

from fastapi import APIRouter

from . import collections, contract, inspection, leases, records

router = APIRouter()
# The contract first: /v1/_contract would otherwise match /v1/{namespace}.
for part in (contract, records, collections, leases, inspection):
    router.include_router(part.router)
