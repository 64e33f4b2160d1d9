"""Dump layer: copy a backtest-kit ./dump tree into a namespace and back, in the same layout.

A file `<dump>/data/<domain>/<entity dirs...>/<key>.json` is the record (domain, entity, key),
where the entity is the directories below the domain folder joined with "/" (candles:
`binance/BTCUSDT/1m`). Memory, State, Session and (backtest-kit 20.x) Dictionary live beside
`data/`: `<dump>/<domain>/<entity dirs...>/<key>.json` (memory: `<signalId>/<bucket>`;
dictionary: `<signalId>/<dictionaryName>.json`).
"""

import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from .body import parse_json
from .errors import AppError
from .names import check_name, check_slug
from .shapes import check_write
from .store import Collection, Store

# Domains whose files sit directly under the dump root rather than under data/.
TOP_LEVEL_DOMAINS = frozenset({"memory", "state", "session", "dictionary"})
BATCH_ITEMS = 500
BATCH_BYTES = 8 * 1024 * 1024
PROGRESS_EVERY = 1000
EXPORT_PAGE = 1000  # records read per query when exporting


@dataclass
class Report:
    """What an import or export did, per domain, and which files it skipped and why."""

    written: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        domains = sorted(set(self.written) | set(self.unchanged))
        out = [f"{'domain':<14} {'written':>9} {'unchanged':>9}"]
        out += [f"{d:<14} {self.written[d]:>9} {self.unchanged[d]:>9}" for d in domains]
        total_w, total_u = sum(self.written.values()), sum(self.unchanged.values())
        out.append(f"{'total':<14} {total_w:>9} {total_u:>9}")
        out.append(f"skipped: {len(self.skipped)}")
        out += [f"  {path}: {reason}" for path, reason in self.skipped]
        return out


def address_of(root: Path, path: Path) -> tuple[str, str, str]:
    """The (domain, entity, key) of a dump file; ValueError when it is outside the layout."""
    parts = path.relative_to(root).parts
    if parts and parts[0] == "data":
        parts = parts[1:]
    elif not parts or parts[0] not in TOP_LEVEL_DOMAINS:
        raise ValueError("not under data/, memory/, state/, session/ or dictionary/")
    if len(parts) < 3:
        raise ValueError("expected <domain>/<entity>/<key>.json")
    domain, *entity_dirs, filename = parts
    return domain, "/".join(entity_dirs), filename.removesuffix(".json")


def path_of(root: Path, domain: str, entity: str, key: str) -> Path:
    """Where a record lives in a dump; ValueError when its names cannot be a safe path."""
    segments = [*entity.split("/"), f"{key}.json"]
    if "/" in key or any(s in ("", ".", "..") or "\\" in s for s in segments):
        raise ValueError("the entity or key cannot be written as a file path")
    base = root if domain in TOP_LEVEL_DOMAINS else root / "data"
    return base.joinpath(domain, *segments)


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            # backtest-kit's in-flight atomic writes are `.tmp-*` files: never data.
            if name.endswith(".json") and not name.startswith(".tmp-"):
                yield Path(dirpath, name)


def _progress(done: int, noun: str) -> None:
    if done % PROGRESS_EVERY == 0:
        print(f"... {done} {noun}", file=sys.stderr, flush=True)


async def import_dump(
    store: Store, root: Path, namespace: str, report: Report, *, max_value_bytes: int
) -> None:
    """Copy every valid file of the dump into `namespace`; invalid files (those a PUT would
    refuse, over `max_value_bytes` included) are reported and skipped.

    `report` is filled as batches commit, so a failure midway still tells what was imported.
    """
    check_slug("namespace", namespace)
    batches: dict[Collection, list[tuple[str, bytes, Path]]] = {}
    sizes: dict[Collection, int] = {}  # bytes in each pending batch

    async def flush(coll: Collection) -> None:
        items = batches.pop(coll, [])
        sizes.pop(coll, None)
        if items:
            await _write_batch(store, coll, items, report)

    seen = 0
    for path in _files(root):
        seen += 1
        _progress(seen, "files read")
        try:
            domain, entity, key = address_of(root, path)
            check_slug("domain", domain)
            coll = Collection(namespace, domain, check_name("entity", entity))
            check_name("key", key)
            raw = path.read_bytes()
            check_write(domain, parse_json(raw), len(raw), max_value_bytes, key)
        except (ValueError, OSError, AppError) as exc:
            report.skipped.append((str(path), _reason(exc)))
            continue
        batch = batches.setdefault(coll, [])
        batch.append((key, raw, path))
        sizes[coll] = sizes.get(coll, 0) + len(raw)
        if len(batch) >= BATCH_ITEMS or sizes[coll] >= BATCH_BYTES:
            await flush(coll)
    for coll in list(batches):
        await flush(coll)


def _reason(exc: BaseException) -> str:
    return exc.detail if isinstance(exc, AppError) else str(exc)


async def _write_batch(
    store: Store, coll: Collection, items: list[tuple[str, bytes, Path]], report: Report
) -> None:
    body = b'{"items":[' + b",".join(_item(key, raw) for key, raw, _ in items) + b"]}"
    try:
        written = await store.batch_put(
            coll, [key for key, _, _ in items], body.decode(), insert_only=False, if_changed=True
        )
    except AppError as exc:
        if exc.status >= 500:
            raise
        if len(items) == 1:
            report.skipped.append((str(items[0][2]), _reason(exc)))
            return
        # One file the database refuses must not cost the others: write them one by one.
        for item in items:
            await _write_batch(store, coll, [item], report)
        return
    for w in written:
        (report.written if w.version is not None else report.unchanged)[coll.domain] += 1


def _item(key: str, raw: bytes) -> bytes:
    return b'{"key":' + orjson.dumps(key) + b',"value":' + raw + b"}"


async def export_dump(store: Store, root: Path, namespace: str, report: Report) -> None:
    """Write every record of `namespace` as a file in backtest-kit's layout (atomic renames)."""
    check_slug("namespace", namespace)
    done = 0
    for domain, _ in await store.domains(namespace):
        for entity, _ in await store.entities(namespace, domain):
            coll = Collection(namespace, domain, entity)
            after: str | None = None
            while True:
                page = await store.items(coll, after, EXPORT_PAGE)
                for item in page:
                    done += 1
                    _progress(done, "records exported")
                    _export_one(root, coll, item.key, item.value.encode(), report)
                if len(page) < EXPORT_PAGE:
                    break
                after = page[-1].key


def _export_one(root: Path, coll: Collection, key: str, value: bytes, report: Report) -> None:
    label = f"{coll.domain}/{coll.entity}/{key}"
    try:
        path = path_of(root, coll.domain, coll.entity, key)
        if path.exists() and path.read_bytes() == value:
            report.unchanged[coll.domain] += 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, value)
    except (ValueError, OSError) as exc:
        report.skipped.append((label, str(exc)))
        return
    report.written[coll.domain] += 1


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
