"""Property-based API test: schemathesis drives every operation of the running service's
/openapi.json; no response may be a 5xx or contradict the schema.

Deterministic (derandomized Hypothesis, no example database) and bounded by MAX_EXAMPLES per
operation. The operations are driven from one test rather than through schemathesis' pytest
plugin, whose lazy fixture loading does not work with pytest 9.
"""

import time
from collections import Counter

import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)
from schemathesis.core.result import Ok

MAX_EXAMPLES = 150
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

# The schema cannot say which namespaces and domains are valid, so most generated ones are
# (rightly) refused with 400. Often enough, a valid one is put in to reach the store as well.
SLUG = st.from_regex(r"\A[a-z0-9][a-z0-9_.-]{0,62}\Z")
NAMESPACE = st.one_of(st.none(), st.just("schemathesis"), SLUG)
DOMAIN = st.one_of(st.none(), st.sampled_from(["misc", "signal", "risk", "schedule", "partial"]))


def _run_operation(
    operation: schemathesis.APIOperation, service_url: str, statuses: Counter[int]
) -> None:
    @given(case=operation.as_strategy(), namespace=NAMESPACE, domain=DOMAIN)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case, namespace: str | None, domain: str | None) -> None:
        params = case.path_parameters or {}
        if namespace is not None and "namespace" in params:
            params["namespace"] = namespace
        if domain is not None and "domain" in params:
            params["domain"] = domain
        if operation.path.endswith("watch"):  # /v1/{namespace}/watch and /v1/_watch
            # An event stream never ends by itself: bound it so the response can be checked.
            case.query = {**(case.query or {}), "max_seconds": 0.2}
        response = case.call(base_url=service_url, timeout=10)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    check()


def test_every_operation_conforms_to_the_served_schema(service_url: str) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(service_url + "/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the served schema must load whole
        operations.append(result.ok())
    assert len(operations) >= 10, [op.label for op in operations]
    failures: dict[str, str] = {}
    statuses: dict[str, Counter[int]] = {}
    for operation in operations:
        statuses[operation.label] = Counter()
        try:
            _run_operation(operation, service_url, statuses[operation.label])
        except Exception as exc:  # every operation runs; all failures are reported together
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
    if failures:
        pytest.fail("\n\n".join(f"{label}\n{text}" for label, text in failures.items()))
    # Each operation must also have been driven past validation, to the store, at least once.
    reached = {200, 201, 204, 404, 412}
    never = {label: dict(c) for label, c in statuses.items() if not reached.intersection(c)}
    assert not never, never
    assert time.monotonic() - started < 120, "the schemathesis run is past its 2 minute budget"


def test_served_schema_has_no_unresolvable_references(service_url: str) -> None:
    # "#/$defs/..." resolves against the document root in OpenAPI; nothing may point there.
    spec = httpx.get(service_url + "/openapi.json", timeout=10).text
    assert '"#/$defs/' not in spec
