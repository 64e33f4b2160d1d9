"""HTTP layer: routes parse the request, call the store, and map the result to a response."""

from fastapi import APIRouter

from . import collections, inspection, leases, records

router = APIRouter()
for part in (records, collections, leases, inspection):
    router.include_router(part.router)
