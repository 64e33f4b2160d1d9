"""Command layer: `persistd serve | migrate`."""

import argparse
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.config import Settings, get_settings
from app.db import migrate

log = logging.getLogger("persistd")


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The configured database URL, or an embedded PostgreSQL for the duration of the block."""
    if settings.database_url:
        yield settings.database_url
        return
    from app.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.data_dir)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name in ("host", "port", "data_dir")
        if getattr(args, name, None) is not None
    }
    return get_settings().model_copy(update=overrides)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; ending through SystemExit
    # lets the embedded PostgreSQL be stopped cleanly on the way out.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    with database(settings) as url:
        if not args.no_migrate:
            migrate(url)
        # Workers are separate processes: they read the URL from the environment.
        os.environ["PERSISTD_DATABASE_URL"] = url
        get_settings.cache_clear()
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            log_level=settings.log_level,
            proxy_headers=True,
            timeout_graceful_shutdown=args.graceful_timeout,
        )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with database(settings) as url:
        migrate(url, args.revision)
    print(f"database migrated to {args.revision}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="persistd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_database(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            type=Path,
            help="embedded PostgreSQL data folder (when no database URL is set)",
        )

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--graceful-timeout", type=int, default=20, help="seconds to finish requests on SIGTERM"
    )
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate at startup")
    with_database(serve)
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="apply the database migrations")
    mig.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    with_database(mig)
    mig.set_defaults(func=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=get_settings().log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
