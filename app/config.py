"""Configuration layer: every setting comes from a PERSISTD_* environment variable."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERSISTD_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PERSISTD_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL URL; unset means the embedded PostgreSQL in data_dir",
    )
    data_dir: Path = Path("./persistd-data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, description="worker processes of `persistd serve`")
    pool_min_size: int = Field(default=2, ge=0)
    pool_max_size: int = Field(default=20, ge=1)
    pool_timeout: float = Field(default=5.0, gt=0, description="seconds to wait for a connection")
    statement_timeout: float = Field(default=10.0, gt=0, description="seconds per query")
    retry_after: int = Field(default=1, ge=0, description="Retry-After seconds on 503")
    max_value_bytes: int = Field(default=1024 * 1024, ge=1)
    max_batch_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    max_batch_items: int = Field(default=1000, ge=1)
    # Slow and idle clients: each connection must make progress, and there are only so many.
    header_timeout: float = Field(
        default=10.0, gt=0, description="seconds for a request's headers to arrive, else 408"
    )
    body_timeout: float = Field(
        default=10.0, gt=0, description="seconds for a request body to arrive, else 408"
    )
    keepalive_timeout: int = Field(
        default=5, ge=1, description="seconds an idle keep-alive connection is kept open"
    )
    max_connections: int = Field(
        default=1000, ge=1, description="open connections per worker; past it, 503"
    )
    max_requests: int = Field(
        default=500, ge=1, description="requests in progress per worker; past it, 503"
    )
    log_level: str = "info"
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line; text: plain lines"
    )
    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="bearer tokens: auto = off on a loopback host, required on any other",
    )
    auth_cache_ttl: float = Field(
        default=5.0, ge=0, description="seconds a verified token is trusted without a lookup"
    )
    history: bool = Field(default=True, description="keep a change log (docs/history.md)")
    history_days: float = Field(
        default=30, ge=0, description="days of history kept; 0 keeps it forever"
    )
    history_skip_domains: str = Field(
        default="candle", description="comma-separated domains without history"
    )
    history_prune_interval: float = Field(
        default=60.0, gt=0, description="seconds between background pruning rounds"
    )
    watch_max: int = Field(
        default=200, ge=0, description="watchers per worker (below max_requests); 503 past it"
    )
    watch_buffer: int = Field(
        default=1000, ge=1, description="changes queued per watcher before it is disconnected"
    )
    watch_heartbeat: float = Field(default=15.0, gt=0, description="seconds between heartbeats")
    watch_poll: float = Field(
        default=1.0, gt=0, description="seconds between change-log polls when no wake-up came"
    )

    @property
    def skip_domains(self) -> frozenset[str]:
        return frozenset(d.strip() for d in self.history_skip_domains.split(",") if d.strip())


@lru_cache
def get_settings() -> Settings:
    """The process settings, read from the environment once."""
    return Settings()
