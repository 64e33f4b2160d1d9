"""HTTP layer: routes parse the request, call the store, and map the result to a response."""

from fastapi import APIRouter

from . import collections, contract, history, inspection, leases, records

router = APIRouter()
# The contract first: /v1/_contract would otherwise match /v1/{namespace}; history before
# inspection: /v1/_watch before /v1/{namespace}, and /v1/{ns}/changes, /watch and /restore
# before /v1/{ns}/{domain}.
for part in (contract, records, collections, leases, history, inspection):
    router.include_router(part.router)
