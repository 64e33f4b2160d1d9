"""Observability layer: request ids, JSON access logs and Prometheus metrics, as pure ASGI."""

import contextvars
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PROBLEM_MEDIA_TYPE, AppError

log = logging.getLogger("persistd.access")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# An incoming id is echoed only when it is short and harmless in a log line or a header.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_PROBLEM = PROBLEM_MEDIA_TYPE.encode()
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# ---- logging ----


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id when there is one."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # the date and time change once a second, not every line
            self._second, self._stamp = second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        entry: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def configure_logging(fmt: str, level: str) -> None:
    """Send persistd's and uvicorn's logs to stderr in one format (json or text)."""
    # What no persistd line shows is not collected for every record (the logging HOWTO's
    # "Optimization"): the caller's file and line, thread, process and process name. With a
    # line per request, collecting them was a fifth of a read's CPU (docs/performance.md).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    persistd = logging.getLogger("persistd")
    persistd.handlers[:] = [handler]
    persistd.setLevel(level.upper())
    persistd.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        for existing in logging.getLogger(name).handlers:
            existing.setFormatter(formatter)


# ---- metrics ----


class PoolCollector:
    """Pool gauges read at scrape time, so the hot path pays nothing for them."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        size = GaugeMetricFamily("persistd_db_pool_size", "connections open in the pool")
        in_use = GaugeMetricFamily("persistd_db_pool_in_use", "connections lent to requests")
        store = getattr(self._state, "store", None)
        if store is not None:
            total, lent = store.pool_usage()
            size.add_metric([], total)
            in_use.add_metric([], lent)
        yield size
        yield in_use


class LeasesCollector:
    """Live leases across every namespace, as counted at the last scrape (metrics_endpoint)."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        held = GaugeMetricFamily("persistd_leases_held", "leases held (live) now, all namespaces")
        count = getattr(self._state, "leases_held", None)
        if count is not None:
            held.add_metric([], count)
        yield held


class Metrics:
    """The service's Prometheus metrics, on a registry of their own (no import-time state)."""

    def __init__(self, state: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "persistd_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "persistd_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "persistd_errors",
            "problem+json responses by error code",
            ["code"],
            registry=self.registry,
        )
        self.lease_events = Counter(
            "persistd_lease_events",
            "lease changes: acquired, released, lost (renew or release with a stale token)",
            ["event"],
            registry=self.registry,
        )
        self.fenced_refused = Counter(
            "persistd_fenced_writes_refused",
            "fenced writes refused because their lease was not held with their token",
            registry=self.registry,
        )
        self.registry.register(PoolCollector(state))
        self.leases_held = LeasesCollector(state)
        self.registry.register(self.leases_held)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its latency; label children are looked up once per series."""
        series = (route, method, status)
        children = self._children.get(series)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._children[series] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        # With PROMETHEUS_MULTIPROC_DIR set, every worker's counters are summed at scrape time.
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            # A count of the database's, so any one worker's answer is the whole truth.
            registry.register(self.leases_held)
            return generate_latest(registry)
        return generate_latest(self.registry)


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    store = request.app.state.store
    # One small query per scrape: a lease's expiry is the database's fact, not this process's.
    try:
        request.app.state.leases_held = None if store is None else await store.leases_held()
    except AppError:
        request.app.state.leases_held = None
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


# ---- the middleware ----


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class ObservabilityMiddleware:
    """Request id in and out, one access log line, and the request metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SAFE_ID.fullmatch(candidate):
                    rid = candidate
                break
        if rid is None:
            rid = secrets.token_hex(16)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        problem: list[bytes] | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, problem
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
                if status >= 400 and any(
                    k == b"content-type" and v.startswith(_PROBLEM) for k, v in headers
                ):
                    problem = []
            elif message["type"] == "http.response.body" and problem is not None:
                problem.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route, method = _route(scope), scope["method"]
            self.metrics.observe(route, method, status, elapsed)
            code = _problem_code(problem)
            if code is not None:
                self.metrics.errors.labels(code).inc()
                if code == "fenced":
                    self.metrics.fenced_refused.inc()
                elif code == "lease_lost":
                    self.metrics.lease_events.labels("lost").inc()
            if log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                fields: dict[str, Any] = {
                    "method": method,
                    "path": scope.get("raw_path", b"").decode("latin-1") or scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": client[0] if client else None,
                }
                if code is not None:
                    fields["code"] = code
                log.info("request", extra={"fields": fields})
            request_id.reset(token)


def _problem_code(chunks: list[bytes] | None) -> str | None:
    if chunks is None:
        return None
    try:
        code = orjson.loads(b"".join(chunks)).get("code")
    except (orjson.JSONDecodeError, AttributeError):
        return "unknown"
    return code if isinstance(code, str) else "unknown"
