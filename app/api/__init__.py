"""HTTP layer: routes parse the request, call the store, and map the result to a response."""

from fastapi import APIRouter

from . import collections, history, inspection, records

router = APIRouter()
# history before inspection: /v1/{ns}/changes, /watch and /restore before /v1/{ns}/{domain}.
for part in (records, collections, history, inspection):
    router.include_router(part.router)
