"""Client test fixtures: a sync client on the session's real service, in the test's namespace."""

from collections.abc import Iterator

import pytest

from persistd_client import PersistClient, RetryPolicy


@pytest.fixture
def client(service_url: str, ns: str) -> Iterator[PersistClient]:
    """A sync client on the real service, in this test's own namespace."""
    with PersistClient(service_url, namespace=ns, retry=RetryPolicy(max_attempts=2)) as c:
        yield c
