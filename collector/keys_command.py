"""``canarytrace keys create|list|revoke``: manage API keys (works while ``serve`` runs)."""

from __future__ import annotations

import argparse
import sys

from canarytrace.cli import CommandError, CommandParser
from canarytrace.collector.keys import KeyRing
from canarytrace.collector.settings import load_settings
from canarytrace.collector.store_state import adopt_legacy_keys


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="canarytrace keys",
        description="API keys bind a client to one project. Stored hashed in keys.json next "
                    "to the store; a running collector picks up changes without restart.")
    parser.add_argument("--store", help="the store whose keys to manage (env CANARYTRACE_STORE)")
    parser.add_argument("--keys-file", help="the keys file (default: keys.json next to the store)")
    commands = parser.add_subparsers(dest="action", required=True)
    create = commands.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--project", required=True)
    create.add_argument("--name", default="", help="a note saying who uses the key")
    commands.add_parser("list", help="list keys (ids and projects; never the keys)")
    revoke = commands.add_parser("revoke", help="delete a key by id")
    revoke.add_argument("key_id")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    overrides = {k: v for k, v in (("store", args.store), ("keys_file", args.keys_file)) if v}
    settings = load_settings(**overrides)
    adopt_legacy_keys(settings)
    ring = KeyRing(settings.keys_path, markers=settings.auth_markers)
    if args.action == "create":
        if not args.project.strip():
            raise CommandError("--project must not be empty")
        print(ring.create(args.project.strip(), args.name))
    elif args.action == "list":
        for entry in ring.entries():
            print(f"{entry.id}\t{entry.project}\t{entry.created_at}\t{entry.name}")
    elif not ring.revoke(args.key_id):
        raise CommandError(f"no key with id {args.key_id!r} in {ring.path}")
    elif not ring.remaining():
        print("canarytrace keys: that was the last key; the collector now refuses every "
              "request until a key is created (or it runs with --auth none)", file=sys.stderr)
    return 0
