"""Migration layer: Alembic environment, async, configured from the persistd settings."""

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from persistd.db import sqlalchemy_url
from persistd.models import metadata


def _url() -> str:
    cfg = context.config
    if cfg.file_config.has_option(cfg.config_ini_section, "sqlalchemy.url"):
        return str(cfg.get_main_option("sqlalchemy.url"))
    from persistd.config import get_settings

    configured = get_settings().database_url
    if not configured:
        raise SystemExit(
            "set PERSISTD_DATABASE_URL, or run `persistd migrate` (embedded PostgreSQL)"
        )
    return sqlalchemy_url(configured)


# Several instances may migrate at startup at once: one at a time, the others then find it done.
_MIGRATION_LOCK = 0x70657273  # "pers"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
