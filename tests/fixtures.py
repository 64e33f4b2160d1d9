"""Shared fixtures: one real PostgreSQL and one real service per test session."""

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support import Service, database_server, scratch_database, through_pooler


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test session."""
    with database_server() as server_url, scratch_database(server_url) as url:
        yield url


@pytest.fixture(scope="session")
def service(database_url: str) -> Iterator[Service]:
    """A running persistd process over real HTTP."""
    with Service(through_pooler(database_url)) as svc:
        yield svc


@pytest.fixture(scope="session")
def service_url(service: Service) -> str:
    return service.url


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own, so tests never see each other's records."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def http(service_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service_url, timeout=10) as client:
        yield client
