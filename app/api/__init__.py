"""HTTP layer: routes parse the request, call the store, and map the result to a response."""

from fastapi import APIRouter

from . import collections, history, inspection, records

router = APIRouter()
# history first: /v1/{ns}/changes, /watch and /restore before /v1/{ns}/{domain}.
for part in (history, records, collections, inspection):
    router.include_router(part.router)
