"""Command layer: `persistd serve | migrate | downgrade | token | import-dump | export-dump`,
`persistd history | restore` and `persistd contract`."""

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from . import auth, history_cli
from .config import Settings, get_settings
from .db import asyncpg_dsn, downgrade, migrate
from .errors import AppError
from .history import history_policy
from .store import Store

log = logging.getLogger("persistd")
T = TypeVar("T")


@contextmanager
def database(settings: Settings, owner: bool = False) -> Iterator[str]:
    """The configured database URL, or an embedded PostgreSQL for the duration of the block.

    An embedded server that was already running (a `persistd serve`) is used and left running,
    unless `owner` (the service itself, adopting a server orphaned by a crash) takes it over.
    """
    if settings.database_url:
        yield settings.database_url
        return
    from .embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.data_dir)
    url = server.start()
    try:
        yield url
    finally:
        if owner or not server.adopted:
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

    from .protocol import IMPORT_STRING

    settings = _settings(args)
    try:
        auth.auth_required(settings.auth, settings.host)
    except RuntimeError as exc:
        print(f"persistd: {exc}", file=sys.stderr)
        return 2
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; ending through SystemExit
    # lets the embedded PostgreSQL be stopped cleanly on the way out.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    with database(settings, owner=True) as url:
        if not args.no_migrate:
            migrate(url)
        # Workers are separate processes: they read the URL from the environment.
        os.environ["PERSISTD_DATABASE_URL"] = url
        # ... and the host, which decides whether PERSISTD_AUTH=auto requires tokens.
        os.environ["PERSISTD_HOST"] = settings.host
        get_settings.cache_clear()
        uvicorn.run(
            "persistd.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers or settings.workers,
            http=IMPORT_STRING,  # problem+json for requests the HTTP parser rejects
            log_level=settings.log_level,
            proxy_headers=True,
            access_log=False,  # persistd logs each request itself, with its request id
            timeout_graceful_shutdown=args.graceful_timeout,
        )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with database(settings) as url:
        migrate(url, args.revision)
    print(f"database migrated to {args.revision}")
    return 0


def cmd_downgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with database(settings) as url:
        downgrade(url, args.revision)
    print(f"database downgraded to {args.revision}")
    return 0


async def _with_store(url: str, settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on a small store of the command's own (the cold paths of the CLI)."""
    store = await Store.open(
        asyncpg_dsn(url),
        min_size=1,
        max_size=2,
        acquire_timeout=settings.pool_timeout,
        statement_timeout=max(settings.statement_timeout, 60.0),
        retry_after=settings.retry_after,
        history=history_policy(settings),
    )
    try:
        return await work(store)
    finally:
        await store.close()


def cmd_token(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.action == "create":
        try:
            scopes = auth.parse_scopes(args.scope)
        except ValueError as exc:
            print(f"persistd: {exc}", file=sys.stderr)
            return 2
    with database(settings) as url:
        if args.action == "create":
            token = asyncio.run(
                _with_store(
                    url,
                    settings,
                    lambda s: auth.create_token(s, scopes, args.namespace, args.name),
                )
            )
            # The only time the token is shown: the database keeps its hash alone.
            print(token)
        elif args.action == "list":
            print("id\tname\tscopes\tnamespace\tcreated_at\trevoked_at")
            for t in asyncio.run(_with_store(url, settings, auth.list_tokens)):
                revoked = t.revoked_at.isoformat() if t.revoked_at else "-"
                created = t.created_at.isoformat()
                scope_text = ",".join(t.scopes)
                print(f"{t.id}\t{t.name or '-'}\t{scope_text}\t{t.namespace}\t{created}\t{revoked}")
        else:
            revoked_ok = asyncio.run(
                _with_store(url, settings, lambda s: auth.revoke_token(s, args.id))
            )
            if not revoked_ok:
                print(f"persistd: no active token with id {args.id}", file=sys.stderr)
                return 1
            print(f"token {args.id} revoked")
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    from . import dump

    settings = _settings(args)

    async def run(store: Store, report: dump.Report) -> None:
        if args.command == "import-dump":
            await dump.import_dump(
                store, args.path, args.namespace, report, max_value_bytes=settings.max_value_bytes
            )
        else:
            await dump.export_dump(store, args.path, args.namespace, report)

    if args.command == "import-dump" and not args.path.is_dir():
        print(f"persistd: {args.path} is not a directory", file=sys.stderr)
        return 2
    report = dump.Report()
    try:
        with database(settings) as url:
            asyncio.run(_with_store(url, settings, lambda s: run(s, report)))
    except AppError as exc:
        print("\n".join(report.lines()))
        print(f"persistd: stopped early, after the counts above: {exc.detail}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 1 if report.skipped else 0


def cmd_contract(args: argparse.Namespace) -> int:
    import json

    from .contract import contract, default_settings

    text = json.dumps(contract(default_settings()), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with database(settings) as url:
        return history_cli.command(args, settings, lambda work: _with_store(url, settings, work))


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
    serve.add_argument(
        "--workers", type=int, help="worker processes (default PERSISTD_WORKERS, else 1)"
    )
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

    down = sub.add_parser("downgrade", help="undo migrations down to a revision")
    down.add_argument("revision", help="target revision, e.g. 0001")
    with_database(down)
    down.set_defaults(func=cmd_downgrade)

    tok = sub.add_parser("token", help="create, list or revoke bearer tokens")
    tok_sub = tok.add_subparsers(dest="action", required=True)
    create = tok_sub.add_parser("create", help="create a token and print it (shown once)")
    create.add_argument("--scope", default="read,write", help="comma-separated: read, write, admin")
    create.add_argument(
        "--namespace", default="*", help="namespace glob the token is valid for, e.g. 'bot-*'"
    )
    create.add_argument("--name", help="a label for `token list`")
    listing = tok_sub.add_parser("list", help="list tokens (never their secrets)")
    revoke = tok_sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    for p in (create, listing, revoke):
        with_database(p)
    tok.set_defaults(func=cmd_token)

    for name, help_text in (
        ("import-dump", "copy a backtest-kit ./dump folder into a namespace"),
        ("export-dump", "write a namespace as a backtest-kit ./dump folder"),
    ):
        d = sub.add_parser(name, help=help_text)
        d.add_argument("path", type=Path, help="the dump folder (the one holding data/)")
        d.add_argument("--namespace", default="default", help="namespace (default: default)")
        with_database(d)
        d.set_defaults(func=cmd_dump)

    con = sub.add_parser(
        "contract", help="print the client contract with the default settings (GET /v1/_contract)"
    )
    con.add_argument("--output", type=Path, help="write it to this file (client/contract.json)")
    con.set_defaults(func=cmd_contract)
    for p in history_cli.add_parsers(sub):
        with_database(p)
        p.set_defaults(func=cmd_history)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=get_settings().log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
