"""Retries, error mapping and configuration, on httpx.MockTransport (no sleeping, no network)."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from persistd_client import (
    NO_RETRY,
    AsyncPersistClient,
    ConnectionFailed,
    Forbidden,
    InvalidJson,
    InvalidName,
    InvalidRequest,
    InvalidValue,
    NotFound,
    PayloadTooLarge,
    PersistClient,
    PersistError,
    RetryPolicy,
    Unauthorized,
    Unavailable,
    VersionMismatch,
    Written,
)
from persistd_client.retry import retry_after

Answer = httpx.Response | Exception


class FakeTime:
    """A clock that only moves when the client sleeps; records every wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def policy(self, jitter: float = 1.0, **options: Any) -> RetryPolicy:
        return RetryPolicy(
            sleep=self.sleep,
            async_sleep=self.async_sleep,
            clock=self.clock,
            random=lambda: jitter,
            **options,
        )


class Script:
    """A transport that gives the scripted answers in order (the last one repeats)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        # A fresh response each time: httpx binds a response to the one request it answers.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def sync(self, time: FakeTime | None = None, **options: Any) -> PersistClient:
        retry = time.policy(**options) if time else NO_RETRY
        http = httpx.Client(transport=httpx.MockTransport(self))
        return PersistClient("http://persistd.test", namespace="ns", retry=retry, http_client=http)

    def async_(self, time: FakeTime | None = None, **options: Any) -> AsyncPersistClient:
        retry = time.policy(**options) if time else NO_RETRY
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return AsyncPersistClient(
            "http://persistd.test", namespace="ns", retry=retry, http_client=http
        )


def problem(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {
        "type": f"https://persistd.dev/problems/{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": f"detail for {code}",
        "code": code,
    }
    return httpx.Response(status, json=body, headers=headers)


def record(value: Any, version: int = 1) -> httpx.Response:
    return httpx.Response(200, json=value, headers={"ETag": f'"{version}"'})


def created(version: int = 1) -> httpx.Response:
    return httpx.Response(201 if version == 1 else 200, json={"version": version})


def connect_error() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


# ---- which failures are retried ----


def test_get_retries_503_and_waits_at_least_retry_after() -> None:
    time, script = FakeTime(), Script(problem(503, "unavailable", {"Retry-After": "2"}), record(1))
    assert script.sync(time, jitter=0.0).get("d", "e", "k").value == 1
    assert len(script.requests) == 2
    assert time.sleeps == [2.0]


def test_put_retries_connection_errors_then_reports_the_servers_answer() -> None:
    time, script = FakeTime(), Script(connect_error(), connect_error(), created(1))
    assert script.sync(time).put("d", "e", "k", {"a": 1}) == Written(version=1, created=True)
    assert len(script.requests) == 3
    assert all(r.content == b'{"a":1}' for r in script.requests)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_unavailable_statuses_are_retried(status: int) -> None:
    time, script = FakeTime(), Script(httpx.Response(status), record("ok"))
    assert script.sync(time).get("d", "e", "k").value == "ok"
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.ReadError("x")]
)
def test_timeouts_and_dropped_connections_are_retried(error: Exception) -> None:
    time, script = FakeTime(), Script(error, record("ok"))
    assert script.sync(time).get("d", "e", "k").value == "ok"
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "invalid_name", InvalidName),
        (400, "invalid_json", InvalidJson),
        (400, "invalid_request", InvalidRequest),
        (401, "unauthorized", Unauthorized),
        (403, "forbidden", Forbidden),
        (404, "not_found", NotFound),
        (412, "version_mismatch", VersionMismatch),
        (413, "payload_too_large", PayloadTooLarge),
        (422, "invalid_value", InvalidValue),
        (500, "internal", PersistError),
    ],
)
def test_client_errors_are_raised_at_once_without_retry(
    status: int, code: str, error: type[PersistError]
) -> None:
    time, script = FakeTime(), Script(problem(status, code))
    with pytest.raises(error) as caught:
        script.sync(time).put("d", "e", "k", 1)
    assert type(caught.value) is error
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.detail == f"detail for {code}"
    assert caught.value.attempts == 1
    assert len(script.requests) == 1 and time.sleeps == []


def test_retries_stop_after_max_attempts_and_raise_unavailable() -> None:
    time, script = FakeTime(), Script(problem(503, "unavailable", {"Retry-After": "1"}))
    with pytest.raises(Unavailable) as caught:
        script.sync(time, max_attempts=3).get("d", "e", "k")
    assert (caught.value.status, caught.value.attempts) == (503, 3)
    assert len(script.requests) == 3 and len(time.sleeps) == 2


def test_a_write_is_never_reported_done_when_every_attempt_failed() -> None:
    time, script = FakeTime(), Script(connect_error())
    with pytest.raises(ConnectionFailed) as caught:
        script.sync(time, max_attempts=4).put("d", "e", "k", {"important": True})
    assert caught.value.attempts == 4 and caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(script.requests) == 4


def test_a_batch_write_that_only_met_gateway_errors_raises() -> None:
    time, script = FakeTime(), Script(httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(Unavailable) as caught:
        script.sync(time, max_attempts=2).batch_put("d", "e", {"a": 1})
    assert (caught.value.status, caught.value.code) == (502, "unavailable")
    assert len(script.requests) == 2


def test_a_conditional_put_is_not_repeated_after_a_lost_answer() -> None:
    # The first attempt may have committed: the outcome is unknown, never a false conflict.
    time = FakeTime()
    script = Script(httpx.ReadError("connection reset"), problem(412, "version_mismatch"))
    with pytest.raises(ConnectionFailed) as caught:
        script.sync(time).put("d", "e", "k", 2, if_match=1)
    assert caught.value.attempts == 1
    assert len(script.requests) == 1


def test_a_conditional_write_is_not_repeated_after_a_503() -> None:
    time = FakeTime()
    script = Script(problem(503, "unavailable", {"Retry-After": "1"}), httpx.Response(204))
    with pytest.raises(Unavailable):
        script.sync(time).delete("d", "e", "k", if_match=3)
    with pytest.raises(Unavailable):
        Script(problem(503, "unavailable")).sync(time).put("d", "e", "k", 1, create_only=True)


def test_a_conditional_put_is_repeated_when_the_connection_was_refused() -> None:
    time = FakeTime()
    created = httpx.Response(201, json={"version": 1}, headers={"ETag": '"1"'})
    script = Script(httpx.ConnectError("refused"), created)
    written = script.sync(time).put("d", "e", "k", 1, create_only=True)
    assert written.version == 1
    assert len(script.requests) == 2


def test_probes_are_not_retried() -> None:
    time, script = FakeTime(), Script(problem(503, "unavailable", {"Retry-After": "1"}))
    with pytest.raises(Unavailable):
        script.sync(time).readyz()
    assert len(script.requests) == 1


def test_a_url_with_an_unsupported_scheme_is_not_retried() -> None:
    time = FakeTime()
    client = PersistClient("ftp://persistd.test", retry=time.policy())
    with client, pytest.raises(ConnectionFailed) as caught:
        client.get("d", "e", "k")
    assert caught.value.attempts == 1 and time.sleeps == []


# ---- how long it waits ----


def test_backoff_doubles_up_to_the_cap() -> None:
    time, script = FakeTime(), Script(httpx.Response(503))
    with pytest.raises(Unavailable):
        script.sync(time, max_attempts=6, initial_delay=0.5, max_delay=2.0).get("d", "e", "k")
    assert time.sleeps == [0.5, 1.0, 2.0, 2.0, 2.0]


def test_full_jitter_draws_each_wait_below_the_capped_backoff() -> None:
    time, script = FakeTime(), Script(httpx.Response(503))
    with pytest.raises(Unavailable):
        script.sync(time, jitter=0.25, max_attempts=4, initial_delay=1.0, max_delay=3.0).get(
            "d", "e", "k"
        )
    assert time.sleeps == [0.25, 0.5, 0.75]


def test_retry_after_longer_than_the_cap_is_still_honoured() -> None:
    time, script = FakeTime(), Script(problem(503, "unavailable", {"Retry-After": "7"}), record(1))
    script.sync(time, max_delay=1.0).get("d", "e", "k")
    assert time.sleeps == [7.0]


def test_no_retry_starts_that_would_end_past_the_deadline() -> None:
    time, script = FakeTime(), Script(problem(503, "unavailable", {"Retry-After": "10"}))
    with pytest.raises(Unavailable) as caught:
        script.sync(time, deadline=5.0).get("d", "e", "k")
    assert caught.value.attempts == 1 and time.sleeps == []


def test_retry_after_as_an_http_date_is_understood() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    response = httpx.Response(503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    assert 28 <= (retry_after(response) or 0) <= 30
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(503)) is None


NON_ASCII_DIGITS = ["\N{SUPERSCRIPT TWO}", "\N{ARABIC-INDIC DIGIT THREE}", "1\N{SUPERSCRIPT ONE}"]


@pytest.mark.parametrize("header", NON_ASCII_DIGITS)
def test_a_retry_after_of_non_ascii_digits_is_ignored_not_a_crash(header: str) -> None:
    # Sent as UTF-8 bytes, as a misbehaving proxy would; httpx decodes them back to `header`.
    answer = httpx.Response(503, headers=[(b"Retry-After", header.encode())])
    assert answer.headers["retry-after"] == header
    assert retry_after(answer) is None
    time = FakeTime()
    script = Script(answer, created(1))
    assert script.sync(time).put("d", "e", "k", 1) == Written(version=1, created=True)
    assert time.sleeps == [0.25]


def test_an_etag_of_non_ascii_digits_is_an_invalid_response() -> None:
    etag = '"\N{SUPERSCRIPT TWO}"'.encode()
    script = Script(httpx.Response(200, json=1, headers=[(b"ETag", etag)]))
    with pytest.raises(PersistError) as caught:
        script.sync(FakeTime()).get("d", "e", "k")
    assert caught.value.code == "invalid_response"


def test_a_policy_of_zero_attempts_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# ---- the async shell runs the same policy ----


def test_async_client_retries_and_waits_like_the_sync_client() -> None:
    answers: list[Answer] = [
        connect_error(),
        problem(503, "unavailable", {"Retry-After": "3"}),
        httpx.Response(504),
        created(2),
    ]
    sync_time, async_time = FakeTime(), FakeTime()
    sync_written = Script(*answers).sync(sync_time).put("d", "e", "k", 1)

    async def run() -> Written:
        async with Script(*answers).async_(async_time) as client:
            return await client.put("d", "e", "k", 1)

    assert asyncio.run(run()) == sync_written == Written(version=2, created=False)
    assert async_time.sleeps == sync_time.sleeps == [0.25, 3.0, 1.0]


def test_async_write_is_never_reported_done_when_every_attempt_failed() -> None:
    time, script = FakeTime(), Script(connect_error())

    async def run() -> None:
        async with script.async_(time, max_attempts=3) as client:
            await client.put("d", "e", "k", 1)

    with pytest.raises(ConnectionFailed) as caught:
        asyncio.run(run())
    assert caught.value.attempts == 3 and len(script.requests) == 3


def test_async_client_raises_the_same_typed_errors() -> None:
    script = Script(problem(412, "version_mismatch"))

    async def run() -> None:
        async with script.async_() as client:
            await client.delete("d", "e", "k", if_match=3)

    with pytest.raises(VersionMismatch):
        asyncio.run(run())
    assert script.requests[0].headers["if-match"] == '"3"'


# ---- error mapping without a problem body ----


def test_a_status_without_a_problem_body_is_mapped_by_status() -> None:
    with pytest.raises(NotFound) as caught:
        Script(httpx.Response(404, text="plain")).sync().get("d", "e", "k")
    assert (caught.value.code, caught.value.detail) == ("not_found", "Not Found")


def test_an_unknown_code_keeps_the_servers_code_on_the_base_error() -> None:
    with pytest.raises(PersistError) as caught:
        Script(problem(415, "unsupported_media_type")).sync().put("d", "e", "k", 1)
    assert type(caught.value) is PersistError
    assert (caught.value.status, caught.value.code) == (415, "unsupported_media_type")
    assert str(caught.value) == "415 unsupported_media_type: detail for unsupported_media_type"


def test_has_maps_404_to_false_and_other_errors_to_exceptions() -> None:
    assert Script(httpx.Response(404)).sync().has("d", "e", "k") is False
    with pytest.raises(InvalidName):
        Script(httpx.Response(400, json={"code": "invalid_name"})).sync().has("d", "e", "k")


# ---- configuration ----


def test_token_is_sent_as_a_bearer_authorization() -> None:
    script = Script(record(1))
    http = httpx.Client(transport=httpx.MockTransport(script))
    with PersistClient("http://h", token="s3cret", http_client=http) as client:
        client.get("d", "e", "k")
    assert script.requests[0].headers["authorization"] == "Bearer s3cret"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSISTD_URL", "http://from-env:9000/")
    monkeypatch.setenv("PERSISTD_TOKEN", "env-token")
    monkeypatch.setenv("PERSISTD_NAMESPACE", "bot-7")
    script = Script(record(1))
    with PersistClient(http_client=httpx.Client(transport=httpx.MockTransport(script))) as c:
        c.get("signal", "BTCUSDT_s", "BTCUSDT")
    request = script.requests[0]
    assert str(request.url) == "http://from-env:9000/v1/bot-7/signal/BTCUSDT_s/records/BTCUSDT"
    assert request.headers["authorization"] == "Bearer env-token"


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PERSISTD_URL", "PERSISTD_TOKEN", "PERSISTD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    script = Script(record(1))
    with PersistClient(http_client=httpx.Client(transport=httpx.MockTransport(script))) as c:
        c.get("d", "e", "k")
    assert str(script.requests[0].url) == "http://127.0.0.1:8000/v1/default/d/e/records/k"
    assert "authorization" not in script.requests[0].headers


def test_an_injected_client_base_url_is_used_when_no_url_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PERSISTD_URL", raising=False)
    script = Script(record(1))
    http = httpx.Client(base_url="http://injected:1234", transport=httpx.MockTransport(script))
    with PersistClient(namespace="n", http_client=http) as c:
        c.get("d", "e", "k")
    assert str(script.requests[0].url) == "http://injected:1234/v1/n/d/e/records/k"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("a/b", b"a%2Fb"),
        ("%2F", b"%252F"),
        ("x?y#z", b"x%3Fy%23z"),
        (" é", b"%20%C3%A9"),
        (".", b"%2E"),
        ("..", b"%2E%2E"),
        ("...", b"..."),
        (12, b"12"),
    ],
)
def test_each_name_is_sent_as_one_percent_encoded_segment(name: str | int, raw: bytes) -> None:
    script = Script(record(1))
    script.sync().get("d", name, name)
    assert script.requests[0].url.raw_path == b"/v1/ns/d/" + raw + b"/records/" + raw


@pytest.mark.parametrize(
    "address", [("", "e", "k"), ("d", "", "k"), ("d", "e", "")], ids=["domain", "entity", "key"]
)
def test_an_empty_name_raises_invalid_name_without_a_request(address: tuple[str, str, str]) -> None:
    script = Script(record(1))
    with pytest.raises(InvalidName) as caught:
        script.sync().put(*address, 1)
    assert caught.value.status is None and caught.value.code == "invalid_name"
    assert script.requests == []


def _closed_after(make: Callable[[httpx.Client | None], PersistClient], inject: bool) -> bool:
    http = httpx.Client(transport=httpx.MockTransport(Script(record(1))))
    client = make(http if inject else None)
    with client:
        pass
    return bool(client._http.is_closed)


def test_an_injected_http_client_is_left_open_and_an_own_one_is_closed() -> None:
    def make(http: httpx.Client | None) -> PersistClient:
        return PersistClient("http://h", http_client=http)

    assert _closed_after(make, inject=True) is False
    assert _closed_after(make, inject=False) is True


def test_an_injected_async_client_is_left_open_and_an_own_one_is_closed() -> None:
    async def run() -> tuple[bool, bool]:
        injected = httpx.AsyncClient(transport=httpx.MockTransport(Script(record(1))))
        async with AsyncPersistClient("http://h", http_client=injected):
            pass
        async with AsyncPersistClient("http://h") as own:
            pass
        closed = (injected.is_closed, own._http.is_closed)
        await injected.aclose()
        return closed

    assert asyncio.run(run()) == (False, True)


def test_an_explicit_timeout_applies_to_every_request() -> None:
    script = Script(record(1))
    http = httpx.Client(transport=httpx.MockTransport(script))
    with PersistClient("http://h", timeout=2.5, http_client=http) as client:
        client.get("d", "e", "k")
    assert script.requests[0].extensions["timeout"]["read"] == 2.5
