"""The client's own rules against the service's published contract (client/contract.json)."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from persistd_client._core import endpoints
from persistd_client.client.shell import PAGE_SIZE
from persistd_client.errors import _BY_CODE, _BY_STATUS, PersistError, error_from_response
from persistd_client.lease import MAX_RENEW_LEASES
from persistd_client.retry import RETRY_STATUSES

CONTRACT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "contract.json").read_text(encoding="utf-8")
)


def test_the_client_retries_exactly_the_statuses_the_service_calls_retryable() -> None:
    assert sorted(RETRY_STATUSES) == CONTRACT["retry"]["statuses"]


def test_every_error_class_stands_for_a_code_the_service_sends_with_its_status() -> None:
    errors: dict[str, int] = CONTRACT["errors"]
    for code, cls in _BY_CODE.items():
        assert code in errors, f"{cls.__name__}: the service never sends {code!r}"
        assert _BY_STATUS.get(errors[code]) in (cls, *cls.__mro__), (code, errors[code])


@pytest.mark.parametrize("code", sorted(CONTRACT["errors"]))
def test_every_problem_code_of_the_service_is_raised_with_its_code_and_status(code: str) -> None:
    status = CONTRACT["errors"][code]
    answer = httpx.Response(status, json={"code": code, "status": status, "detail": "d"})
    error = error_from_response(answer)
    assert isinstance(error, PersistError)
    assert (error.code, error.status) == (code, status)
    if code in _BY_CODE:
        assert type(error) is _BY_CODE[code]


def test_the_default_page_of_iter_keys_and_iter_items_is_one_the_service_serves() -> None:
    assert 1 <= PAGE_SIZE <= CONTRACT["listing"]["max_page"]


def test_batched_lease_renewals_fit_the_service_limit() -> None:
    assert CONTRACT["leases"]["max_renew_items"] == MAX_RENEW_LEASES


def test_conditional_writes_follow_the_published_rule() -> None:
    # "refused_connection_only": not repeated after an ambiguous failure (Attempts still
    # repeats any call whose connection was refused).
    assert CONTRACT["retry"]["conditional_writes"] == "refused_connection_only"
    assert not endpoints.put("n", "d", "e", "k", 1, if_match=1, create_only=False).retry
    assert not endpoints.put("n", "d", "e", "k", 1, if_match=None, create_only=True).retry
    assert not endpoints.delete("n", "d", "e", "k", if_match=1).retry
    assert endpoints.put("n", "d", "e", "k", 1, if_match=None, create_only=False).retry
