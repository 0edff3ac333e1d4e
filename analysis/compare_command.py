"""``canarytrace compare``: the canary verdict for a candidate model against its base.

Reads the store directly (``--store URL``, env CANARYTRACE_STORE) or asks a running collector
(``--collector URL``, env CANARYTRACE_COLLECTOR: ``GET /api/compare``, the only way while
``serve`` owns an embedded store). Prints a table, JSON or a self-contained HTML report and
exits 0 PROMOTE, 10 HOLD, 11 ROLLBACK, 2 on a usage error. Each run is recorded in the
``verdicts`` table (directly, or through ``POST /api/verdicts``) unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from canarytrace.analysis.compare import EXIT_CODES
from canarytrace.analysis.policy import (
    Policy,
    PolicyError,
    default_policy,
    parse_policy,
    read_policy_text,
)
from canarytrace.analysis.service import (
    ComparisonRequest,
    StoreError,
    open_store,
    run_comparison,
)
from canarytrace.analysis.window import parse_slicings, parse_window, window_kind
from canarytrace.cli import CommandError, CommandParser, open_output

DEFAULT_STORE = "chdb://./.canarytrace/db"
FORMATS = ("table", "json", "html")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="canarytrace compare", description=(
        "Compare a candidate model with its base per metric and slice, and decide: PROMOTE "
        "(exit 0), HOLD (exit 10) or ROLLBACK (exit 11)."))
    parser.add_argument("--base", required=True, help="base model (the Model column)")
    parser.add_argument("--candidate", required=True, help="candidate model")
    parser.add_argument("--since", default="24h", help="ISO-8601 or a duration back: 30m, 1h, 7d")
    parser.add_argument("--until", default="now", help="ISO-8601, 'now' or a duration back")
    parser.add_argument("--by", default="cohort",
                        help="slicings: route, cohort, service, comma-separated; combine with +")
    parser.add_argument("--project", default="default",
                        help="project (direct store access; a collector uses the key's project)")
    parser.add_argument("--policy", help="policy YAML file (default: the built-in policy)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("-o", "--output", help="write the report to this file")
    parser.add_argument("--store", help="store URL (env CANARYTRACE_STORE)")
    parser.add_argument("--collector", help="collector URL (env CANARYTRACE_COLLECTOR)")
    parser.add_argument("--api-key", help="collector API key (env CANARYTRACE_API_KEY)")
    parser.add_argument("--no-record", action="store_true",
                        help="do not append this verdict to the verdicts table")
    parser.add_argument("--rollout", metavar="ID",
                        help="judge this rollout: its window [start, now], policy and slicing "
                             "(see 'canarytrace rollout'); replaces --since/--by/--policy")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.format == "html" and not args.output:
        raise CommandError("--format html needs -o FILE")
    if args.store and args.collector:
        raise CommandError("give either --store or --collector, not both")
    if args.rollout:
        return _rollout(args)
    request = _request(args)
    policy, policy_text = _policy(args.policy)
    collector = args.collector or (None if args.store else os.environ.get("CANARYTRACE_COLLECTOR"))
    if collector:
        report = _via_collector(collector, request, policy_text, args)
    else:
        store_url = args.store or os.environ.get("CANARYTRACE_STORE") or DEFAULT_STORE
        report = _via_store(store_url, request, policy, args)
    _emit(report, args)
    return EXIT_CODES[report["verdict"]]


def _request(args: argparse.Namespace) -> ComparisonRequest:
    """The comparison parameters, validated (the same for both access paths)."""
    if args.base == args.candidate:
        raise CommandError("--base and --candidate name the same model")
    try:
        since, until = parse_window(args.since, args.until)
        slicings = parse_slicings(args.by)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return ComparisonRequest(args.base, args.candidate, since, until, slicings,
                             window_kind(args.since))


def _rollout(args: argparse.Namespace) -> int:
    """``--rollout ID``: the rollout's verdict (recorded in its history), shown as a report."""
    from canarytrace.analysis import rollout_command

    argv = ["status", args.rollout, "--format", "json", "--project", args.project]
    for flag, value in (("--store", args.store), ("--collector", args.collector),
                        ("--api-key", args.api_key)):
        if value:
            argv += [flag, value]
    parsed = rollout_command.build_parser().parse_args(argv)
    collector = args.collector or (None if args.store else os.environ.get("CANARYTRACE_COLLECTOR"))
    backend = (rollout_command.RemoteRollouts(collector, args.api_key
                                       or os.environ.get("CANARYTRACE_API_KEY"))
               if collector else rollout_command.DirectRollouts(
                   args.store or os.environ.get("CANARYTRACE_STORE") or DEFAULT_STORE,
                   parsed.project))
    with backend:
        status = backend.status(args.rollout)
    if (status["base_model"], status["candidate_model"]) != (args.base, args.candidate):
        raise CommandError(f"rollout {args.rollout} compares {status['candidate_model']} with "
                           f"{status['base_model']}, not {args.candidate} with {args.base}")
    _emit(status["report"], args)
    return EXIT_CODES[status["report"]["verdict"]]


def _policy(path: str | None) -> tuple[Policy, str | None]:
    """The policy and its text (None for the default); a bad file is a usage error before
    any data is read."""
    if path is None:
        return default_policy(), None
    try:
        text = read_policy_text(path)
        return parse_policy(text, source=path), text
    except PolicyError as exc:
        raise CommandError(str(exc)) from exc


def _via_store(url: str, request: ComparisonRequest, policy: Policy,
               args: argparse.Namespace) -> dict[str, Any]:
    try:
        store = open_store(url)
    except StoreError as exc:
        raise CommandError(str(exc), exit_code=1) from exc
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        return run_comparison(store, request, policy, project=args.project,
                              record=not args.no_record)
    except ClickHouseError as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CommandError(f"the store at {url} failed: {first_line}", exit_code=1) from exc
    finally:
        store.close()


def _via_collector(url: str, request: ComparisonRequest, policy_text: str | None,
                   args: argparse.Namespace) -> dict[str, Any]:
    from canarytrace.analysis.remote import fetch_report, record_verdict

    api_key = args.api_key or os.environ.get("CANARYTRACE_API_KEY")
    report = fetch_report(url, request, policy_text, args.by, api_key)
    if not args.no_record:
        record_verdict(url, report, request, api_key)
    return report


def _emit(report: dict[str, Any], args: argparse.Namespace) -> None:
    if args.format == "json":
        text = json.dumps(report, indent=2) + "\n"
    elif args.format == "html":
        from canarytrace.analysis.report_html import render_html

        text = render_html(report)
    else:
        _print_table(report, args.output)
        return
    if args.output:
        _write(args.output, text)
    else:
        sys.stdout.write(text)


def _print_table(report: dict[str, Any], output: str | None) -> None:
    from rich.console import Console

    from canarytrace.analysis.report_table import render_table

    if output is None:
        render_table(report, Console())
        return
    with open_output(output) as handle:
        render_table(report, Console(file=handle, width=140, force_terminal=False))


def _write(path: str, text: str) -> None:
    with open_output(path) as handle:
        handle.write(text)
