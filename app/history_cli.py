"""Command layer: `persistd history show | prune` and `persistd restore`."""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .config import Settings
from .errors import AppError
from .history import prune
from .names import check_name, check_slug, decode_segment, parse_time
from .store import Address, Store
from .store import history as log

Work = Callable[[Store], Awaitable[None]]


def _show(args: argparse.Namespace) -> Work:
    addr = Address(
        check_slug("namespace", args.namespace),
        check_slug("domain", args.domain),
        check_name("entity", args.entity),
        decode_segment("key", args.key) if args.encoded else check_name("key", args.key),
    )

    async def run(store: Store) -> None:
        print("seq\tversion\top\tat\ttoken_id\tvalue")
        for e in await log.history(store, addr, None, args.limit, values=True):
            token = "-" if e.token_id is None else e.token_id
            print(f"{e.seq}\t{e.version}\t{e.op}\t{e.at.isoformat()}\t{token}\t{e.value or ''}")

    return run


def _restore(args: argparse.Namespace) -> Work:
    namespace = check_slug("namespace", args.namespace)
    when = parse_time("--at", args.at)

    async def run(store: Store) -> None:
        done = await log.restore(
            store,
            namespace,
            when,
            domain=args.domain and check_slug("domain", args.domain),
            entity=args.entity and check_name("entity", args.entity),
            dry_run=args.dry_run,
            writer=None,
        )
        for p in done.planned:
            print(f"{p.op}\t{p.domain}\t{p.entity}\t{p.key}\t{p.value or ''}")
        verb = "would write" if args.dry_run else "wrote"
        print(f"{verb} {done.puts} puts and {done.deletes} deletes")

    return run


def _prune(settings: Settings) -> Work:
    async def run(store: Store) -> None:
        removed = await prune(store, settings.history_days)
        print(f"pruned {removed} changes older than {settings.history_days:g} days")

    return run


def command(
    args: argparse.Namespace,
    settings: Settings,
    with_store: Callable[[Work], Coroutine[Any, Any, None]],
) -> int:
    """Run one history command; `with_store(work)` gives `work` a store over the database."""
    try:
        if args.command == "restore":
            work = _restore(args)
        elif args.action == "show":
            work = _show(args)
        else:
            work = _prune(settings)
        asyncio.run(with_store(work))
    except AppError as exc:
        print(f"persistd: {exc.detail}", file=sys.stderr)
        return 1
    return 0


def add_parsers(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> list[argparse.ArgumentParser]:
    """The history commands' parsers (the caller adds the database options)."""
    hist = sub.add_parser("history", help="show a record's history, or prune old history")
    hist_sub = hist.add_subparsers(dest="action", required=True)
    show = hist_sub.add_parser("show", help="a record's versions, newest first")
    for name in ("namespace", "domain", "entity", "key"):
        show.add_argument(name)
    show.add_argument("--limit", type=int, default=100, help="versions shown (default 100)")
    show.add_argument("--encoded", action="store_true", help="the key is percent-encoded")
    prune_cmd = hist_sub.add_parser(
        "prune", help="remove history older than PERSISTD_HISTORY_DAYS now"
    )
    restore = sub.add_parser("restore", help="write a namespace's state at a time back")
    restore.add_argument("namespace")
    restore.add_argument("--at", required=True, help="RFC 3339 time, e.g. 2026-12-01T14:05:00Z")
    restore.add_argument("--domain", help="only this domain")
    restore.add_argument("--entity", help="only this entity")
    restore.add_argument("--dry-run", action="store_true", help="list the changes, make none")
    return [show, prune_cmd, restore]
