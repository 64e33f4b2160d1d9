"""Database layer: connection URLs and Alembic migrations (cold paths, outside the event loop)."""

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

# Shipped inside the package (persistd.migrations), so an installed wheel finds them too.
MIGRATIONS_DIR = str(files("persistd.migrations"))


def asyncpg_dsn(url: str) -> str:
    """The URL in the form asyncpg accepts (no SQLAlchemy driver suffix)."""
    _, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    return f"postgresql://{rest}"


def sqlalchemy_url(url: str) -> str:
    """The URL in the form SQLAlchemy's async engine accepts."""
    return "postgresql+asyncpg://" + asyncpg_dsn(url).partition("://")[2]


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at migrations/, independent of the working directory."""
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (idempotent)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Undo the migrations above `revision` (every migration has a downgrade)."""
    command.downgrade(alembic_config(url), revision)


def head_revisions() -> set[str]:
    """The revisions the code expects the database to be at."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())
