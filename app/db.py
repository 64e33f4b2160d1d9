"""Database layer: connection URLs and Alembic migrations (cold paths, outside the event loop)."""

from importlib.resources import files
from urllib.parse import parse_qsl, urlencode

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

# Shipped inside the package (persistd.migrations), so an installed wheel finds them too.
MIGRATIONS_DIR = str(files("persistd.migrations"))


def asyncpg_dsn(url: str) -> str:
    """The URL in the form asyncpg accepts (no SQLAlchemy driver suffix).

    A URL naming several hosts (`h1:5432,h2:5432`) that does not choose target_session_attrs
    gets `read-write`: the service writes, so it must connect to the primary, never a standby.
    """
    _, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    query = rest.partition("?")[2]
    if len(_hosts(rest)) > 1 and "target_session_attrs" not in dict(parse_qsl(query)):
        rest += ("&" if query else "?") + "target_session_attrs=read-write"
    return f"postgresql://{rest}"


def _hosts(rest: str) -> list[str]:
    """The host[:port] entries of a URL after its scheme (`user@h1:5432,h2:5432/db?...`)."""
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    return netloc.rpartition("@")[2].split(",")


def hosts(url: str) -> list[tuple[str, int]]:
    """The (host, port) pairs a URL names, in order; a host without a port gets 5432."""
    pairs = []
    for entry in _hosts(url.partition("://")[2]):
        host, colon, port = entry.rpartition(":")
        if not colon or not port.isdigit() or (host.startswith("[") != host.endswith("]")):
            host, port = entry, "5432"
        pairs.append((host.strip("[]"), int(port)))
    return pairs


def sqlalchemy_url(url: str) -> str:
    """The URL in the form SQLAlchemy's async engine accepts.

    SQLAlchemy reads several hosts only as repeated `host=` query parameters, each with its
    port, not as the comma-separated list libpq and asyncpg accept: the list moves into the query.
    """
    rest = asyncpg_dsn(url).partition("://")[2]
    pairs = hosts(url)
    if len(pairs) > 1:
        head, _, tail = rest.partition("/")
        userinfo, at, _ = head.rpartition("@")
        path, _, query = tail.partition("?")
        params = [("host", f"{host}:{port}") for host, port in pairs]
        params += parse_qsl(query, keep_blank_values=True)
        rest = f"{userinfo}{at}/{path}?{urlencode(params)}"
    return f"postgresql+asyncpg://{rest}"


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
