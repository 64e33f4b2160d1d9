"""Client test fixtures: clients on the session's real service, and a service with a tiny limit."""

from collections.abc import Iterator

import pytest

from persistd_client import PersistClient, RetryPolicy
from tests.support import Service

SMALL_VALUE_BYTES = 64


@pytest.fixture
def client(service_url: str, ns: str) -> Iterator[PersistClient]:
    """A sync client on the real service, in this test's own namespace."""
    with PersistClient(service_url, namespace=ns, retry=RetryPolicy(max_attempts=2)) as c:
        yield c


@pytest.fixture(scope="module")
def small_service(database_url: str) -> Iterator[Service]:
    """A second service process whose values may be at most SMALL_VALUE_BYTES."""
    with Service(database_url, env={"PERSISTD_MAX_VALUE_BYTES": str(SMALL_VALUE_BYTES)}) as svc:
        yield svc
