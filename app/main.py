"""Application layer: create_app() wires settings, the store lifespan, routes and errors."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from . import __version__
from .api import leases, records, router
from .api.console import install_console
from .auth import Authenticator, auth_required
from .config import Settings, get_settings
from .db import asyncpg_dsn, head_revisions
from .docs import install_docs
from .errors import InvalidName, Unavailable, install_handlers, render
from .fast import RecordRoutes, record_routes
from .history import history_policy, start_pruner, stop_pruner
from .names import NAME_RULE
from .observability import Metrics, ObservabilityMiddleware, configure_logging, metrics_endpoint
from .store import Store
from .watch import Hub

log = logging.getLogger("persistd.startup")


class RawPathMiddleware:
    """Route /v1 on the raw (still percent-encoded) path so an encoded '/' stays in its segment.

    The routes then decode each segment themselves (persistd.names.decode_segment).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and raw.startswith(b"/v1/"):
                if b"//" in raw or raw.endswith(b"/"):
                    # An empty segment is an empty name, not another route (nor a redirect).
                    error = InvalidName(f"empty name in the path: it must be {NAME_RULE}")
                    await render(error)(scope, receive, send)
                    return
                scope = dict(scope, path=raw.decode("latin-1"))
        await self.app(scope, receive, send)


async def log_durability(store: Store, required: bool) -> None:
    """One line at startup: does an acknowledged write wait for a synchronous standby?"""
    try:
        rep = await store.replication()
    except Unavailable as exc:
        log.warning("database not reachable at startup: %s", exc.detail)
        return
    level = logging.WARNING if required and not rep.synchronous else logging.INFO
    log.log(
        level,
        "synchronous standby: %s (synchronous_standby_names=%r, synchronous_commit=%s, "
        "attached=%s, required=%s)",
        "yes" if rep.synchronous else "no",
        rep.standby_names,
        rep.synchronous_commit,
        "unknown" if rep.attached is None else rep.attached,
        required,
    )


class Persistd(FastAPI):
    """FastAPI with the single-record and lease fast path outside FastAPI's own middleware.

    A request the fast path serves skips the error, body-limit and exception layers of the
    application (it renders its own errors, unexpected ones included); every other request
    takes the whole stack. The access log and metrics wrap both.
    """

    fast_path = True  # False: every request takes the router (tests compare the two)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        if self.fast_path:
            app = RecordRoutes(
                app,
                routes=record_routes(records.router.routes),
                leases=record_routes(leases.router.routes),
            )
        # The observability middleware sees the route the request took, fast or not.
        return RawPathMiddleware(ObservabilityMiddleware(app, metrics=self.state.metrics))


def create_app(settings: Settings | None = None) -> FastAPI:
    """The persistd ASGI application; uvicorn calls it as a factory."""
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)
    # Raises (refusing to start) when auth is off on a host other machines can reach.
    require_tokens = auth_required(settings.auth, settings.host)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError(
                "PERSISTD_DATABASE_URL is not set; `persistd serve` starts an embedded PostgreSQL"
            )
        app.state.store = await Store.open(
            asyncpg_dsn(settings.database_url),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            acquire_timeout=settings.pool_timeout,
            statement_timeout=settings.statement_timeout,
            retry_after=settings.retry_after,
            history=history_policy(settings),
            statement_cache_size=settings.statement_cache_size,
        )
        await log_durability(app.state.store, settings.require_sync_standby)
        app.state.watch = Hub(app.state.store, settings)
        app.state.pruner = start_pruner(app.state.store, settings)
        if require_tokens:
            auth_store = await Store.open(
                asyncpg_dsn(settings.database_url),
                min_size=0,
                max_size=2,
                acquire_timeout=settings.pool_timeout,
                statement_timeout=settings.pool_timeout,
                retry_after=settings.retry_after,
                statement_cache_size=settings.statement_cache_size,
            )
            app.state.auth = Authenticator(auth_store, ttl=settings.auth_cache_ttl)
        try:
            yield
        finally:
            await stop_pruner(app.state.pruner)
            await app.state.watch.close()
            if app.state.auth is not None:
                await app.state.auth.close()
                app.state.auth = None
            await app.state.store.close()
            app.state.store = None

    app = Persistd(
        title="persistd",
        version=__version__,
        description="Durable persistence for backtest-kit trading bots.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # persistd exports its own Prometheus metrics and logs; FastAPI's OpenTelemetry hooks
        # would otherwise be consulted on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.store = None
    app.state.auth = None
    app.state.leases_held = None
    app.state.metrics = Metrics(app.state)
    app.state.head_revisions = head_revisions()
    install_handlers(app)
    app.include_router(router)
    app.add_api_route("/metrics", metrics_endpoint, include_in_schema=False)
    install_docs(app)
    install_console(app)
    # Built now, not at the first request: a record handler the fast path cannot serve fully
    # stops the application from being created at all.
    app.middleware_stack = app.build_middleware_stack()
    return app
