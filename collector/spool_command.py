"""``canarytrace spool list|replay``: inspect the spool and put quarantined segments back.

The writer moves only what ClickHouse refuses as bad data to ``spool/dead`` (one file per
refused request or segment, with a ``.json`` note saying why). ``replay`` moves such
files back into the spool: a running collector picks them up within a second, a stopped
one at its next start. Both work while ``serve`` runs (they never open the store).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

from canarytrace.cli import CommandError, CommandParser
from canarytrace.collector.settings import load_settings
from canarytrace.collector.spool import DEAD, SUFFIX, dead_reason, fsync_directory, read_contents


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="canarytrace spool",
        description="Segments waiting for the store, and those it refused (spool/dead).")
    parser.add_argument("--store", help="the store whose spool to use (env CANARYTRACE_STORE)")
    parser.add_argument("--spool-dir", help="the spool folder (default: the store's)")
    commands = parser.add_subparsers(dest="action", required=True)
    commands.add_parser("list", help="pending and quarantined segments: spans, bytes, why")
    replay = commands.add_parser("replay", help="move quarantined segments back to be stored")
    replay.add_argument("segments", nargs="*", help="names from 'spool list' (default: all)")
    return parser


def _row(path: Path, state: str) -> str:
    contents = read_contents(path)
    stat = path.stat()
    when = datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = str(dead_reason(path).get("reason", "")) if state == "quarantined" else ""
    return (f"{path.name}\t{state}\t{len(contents.records)} requests\t{contents.rows} spans\t"
            f"{stat.st_size} bytes\t{when}\t{reason}").rstrip()


def list_segments(spool: Path) -> list[str]:
    """One tab-separated line per segment: pending ones first, then quarantined ones."""
    lines = [_row(p, "pending") for p in sorted(spool.glob(f"*{SUFFIX}"))]
    return lines + [_row(p, "quarantined") for p in sorted((spool / DEAD).glob(f"*{SUFFIX}"))]


def replay(spool: Path, names: list[str]) -> tuple[int, int]:
    """Move dead segments (all, or those named) back into the spool: (segments, spans)."""
    dead = spool / DEAD
    available = {p.name: p for p in sorted(dead.glob(f"*{SUFFIX}"))}
    missing = [n for n in names if n not in available]
    if missing:
        raise CommandError(f"no quarantined segment {missing[0]!r} in {dead}")
    chosen = [available[n] for n in names] if names else list(available.values())
    spans = 0
    for path in chosen:
        spans += read_contents(path).rows
        target = spool / path.name
        if target.exists():
            target = spool / f"{path.stem}-replay{SUFFIX}"
        os.replace(path, target)
        with contextlib.suppress(FileNotFoundError):
            path.with_suffix(".json").unlink()
    if chosen:
        fsync_directory(spool)
    return len(chosen), spans


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    overrides = {k: v for k, v in (("store", args.store), ("spool_dir", args.spool_dir)) if v}
    spool = load_settings(**overrides).spool_path
    if not spool.is_dir():
        raise CommandError(f"no spool at {spool}")
    if args.action == "list":
        lines = list_segments(spool)
        print("\n".join(lines) if lines else f"spool {spool} is empty")
        return 0
    count, spans = replay(spool, args.segments)
    print(f"moved {count} segment(s), {spans} span(s), back into {spool}; a running collector "
          "stores them within a second, else the next 'canarytrace serve' does")
    return 0
