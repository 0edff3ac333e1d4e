"""``canarytrace evaluate``: score the sampled spans of a time window into ``eval_results``.

Reads through a running collector (``--collector URL``, env ``CANARYTRACE_COLLECTOR``)
or a store no other process holds (``--store URL``, env ``CANARYTRACE_STORE``). Shows a
progress bar on stderr and prints a table of results per evaluator. Re-running skips
spans already scored by the same evaluator version (``--rescore`` scores them again,
replacing the old results).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from canarytrace.cli import CommandError, CommandParser
from canarytrace.evaluators.base import Evaluator
from canarytrace.evaluators.otel_events import EventEmitter, emitting
from canarytrace.evaluators.registry import EvaluatorLoadError, UnknownEvaluatorError
from canarytrace.evaluators.sampling import SamplingRule
from canarytrace.evaluators.sources import (
    CollectorSource,
    Source,
    SourceError,
    StoreSource,
    Window,
    open_store,
)
from canarytrace.evaluators.worker import (
    DEFAULT_BATCH_SIZE,
    EvaluationRun,
    RunSummary,
    create_evaluators,
)
from canarytrace.times import parse_time

DEFAULT_STORE = "chdb://./.canarytrace/db"  # as canarytrace serve's (not imported: no pydantic)
PIPE_WIDTH = 120
"""Width of the summary table when stdout is not a terminal (rich would pick 80)."""


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="canarytrace evaluate", description=(
        "Score the sampled spans of a time window and write eval_results. Times are "
        "ISO-8601 (UTC unless they say otherwise) or durations back from now: 30m, 2h, 7d."))
    parser.add_argument("--since", required=True, help="window start (e.g. 2h or 2024-05-01T00:00)")
    parser.add_argument("--until", help="window end (default: open-ended, i.e. now)")
    parser.add_argument("--evaluators", help="comma-separated names (default: every evaluator "
                                             "the environment configures)")
    parser.add_argument("--sample-rate", type=float, default=1.0,
                        help="share of requests to score, 0..1 (default 1)")
    parser.add_argument("--sample", action="append", default=[], metavar="COLUMN=NAME:RATE",
                        help="rate for one route or cohort, e.g. route=billing:0.5 (repeatable)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--collector", help="a running collector's URL (env CANARYTRACE_COLLECTOR)")
    where.add_argument("--store", help="store URL, chdb:///dir or http://host:8123 "
                                       "(env CANARYTRACE_STORE; default ./.canarytrace/db)")
    parser.add_argument("--api-key", help="API key for --collector (env CANARYTRACE_API_KEY)")
    parser.add_argument("--project", help="with --store: only this project (default: all)")
    parser.add_argument("--emit-otel", metavar="ENDPOINT",
                        help="also send each result as an OTel gen_ai.evaluation.result event "
                             "to ENDPOINT/v1/logs (OTLP/HTTP; headers from "
                             "OTEL_EXPORTER_OTLP_HEADERS)")
    parser.add_argument("--rescore", action="store_true",
                        help="score spans again even if this evaluator version scored them")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"spans per evaluate_batch call (default {DEFAULT_BATCH_SIZE}, "
                             "more for a judge: 8 x CANARYTRACE_JUDGE_CONCURRENCY calls)")
    return parser


# --- arguments ----------------------------------------------------------------------------

def parse_moment(text: str, now: datetime, flag: str) -> datetime:
    """A ``--since``/``--until`` value, in the forms ``canarytrace compare`` reads."""
    try:
        return parse_time(text, now)
    except ValueError as exc:
        raise CommandError(f"{flag} {text!r}: {exc}") from None


def parse_window(since: str, until: str | None) -> Window:
    now = datetime.now(UTC)
    window = Window(parse_moment(since, now, "--since"),
                    parse_moment(until, now, "--until") if until else None)
    if window.until is not None and window.until <= window.since:
        raise CommandError(f"--until ({window.until.isoformat()}) must be after --since "
                           f"({window.since.isoformat()})")
    return window


def parse_rule(rate: float, overrides: list[str]) -> SamplingRule:
    try:
        return SamplingRule.parse(rate, overrides)
    except ValueError as exc:
        raise CommandError(f"--sample-rate/--sample: {exc}") from None


def build_evaluators(spec: str | None) -> tuple[list[Evaluator], dict[str, str]]:
    """The evaluators to run, and the default ones left out (unconfigured) with why."""
    names = None if spec is None else [n.strip() for n in spec.split(",") if n.strip()]
    if names == []:
        raise CommandError("--evaluators: give at least one evaluator name")
    try:
        evaluators, left_out = create_evaluators(names)
    except (UnknownEvaluatorError, EvaluatorLoadError) as exc:
        raise CommandError(f"--evaluators: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a named evaluator that cannot be configured
        raise CommandError(f"--evaluators: cannot set up evaluator: {exc}") from None
    if not evaluators:
        reasons = "; ".join(f"{name}: {why}" for name, why in left_out.items())
        raise CommandError(f"no evaluator could be set up ({reasons})")
    return evaluators, left_out


# --- where the spans are -------------------------------------------------------------------

@contextmanager
def open_sources(args: argparse.Namespace) -> Iterator[list[Source]]:
    """One Source per project to evaluate: the collector's (key's) project, or the store's."""
    collector = args.collector or (None if args.store else os.environ.get("CANARYTRACE_COLLECTOR"))
    if collector:
        if args.project:
            raise CommandError("--project works with --store only; with --collector the API "
                               "key picks the project")
        source = CollectorSource(collector, args.api_key or os.environ.get("CANARYTRACE_API_KEY"))
        try:
            yield [source]
        finally:
            source.close()
        return
    try:
        store = open_store(args.store or os.environ.get("CANARYTRACE_STORE") or DEFAULT_STORE)
    except SourceError as exc:
        raise CommandError(str(exc)) from None
    try:
        projects = [args.project] if args.project else StoreSource.projects(store)
        yield [StoreSource(store, project) for project in projects]
    finally:
        store.close()


# --- running and reporting ------------------------------------------------------------------

def run_all(sources: list[Source], runs: dict[str, EvaluationRun], window: Window,
            console: Console) -> dict[str, RunSummary]:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.fields[of]} spans read, {task.fields[sampled]} "
                          "sampled, {task.fields[results]} results"),
               TimeElapsedColumn(), TimeRemainingColumn())
    summaries = {}
    # Only on a terminal: piped stderr gets the one-line messages and nothing else.
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        for source in sources:
            task = progress.add_task(f"project {source.project}", total=None, of="?",
                                     sampled=0, results=0)
            run = runs[source.project]
            if console.is_terminal:  # counting the window costs a query; only for the bar
                run.progress = lambda summary, task=task: progress.update(
                    task, completed=summary.spans_read, total=summary.spans_total,
                    of=summary.spans_total or "?", sampled=summary.spans_sampled,
                    results=summary.results)
            summaries[source.project] = run.run(window)
            progress.update(task, total=summaries[source.project].spans_read)
    return summaries


def summary_table(summaries: dict[str, RunSummary], names: list[str]) -> Table:
    table = Table(title="canarytrace evaluate", box=box.SIMPLE_HEAD, caption=(
        "none: no pass/fail verdict; skipped: already scored by this evaluator version"))
    table.add_column("evaluator", no_wrap=True)
    for column in ("scored", "passed", "failed", "none", "mean", "skipped", "errors"):
        table.add_column(column, justify="right", no_wrap=True)
    for name in names:
        tallies = [s.tallies[name] for s in summaries.values()]
        scored = sum(t.scored for t in tallies)
        score_count = sum(t.score_count for t in tallies)
        mean = sum(t.score_sum for t in tallies) / score_count if score_count else None
        table.add_row(name, str(scored), str(sum(t.passed for t in tallies)),
                      str(sum(t.failed for t in tallies)), str(sum(t.no_verdict for t in tallies)),
                      "-" if mean is None else f"{mean:.3f}", str(sum(t.skipped for t in tallies)),
                      str(sum(t.errors for t in tallies)))
    return table


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1")
    window = parse_window(args.since, args.until)
    rule = parse_rule(args.sample_rate, args.sample)
    err = Console(stderr=True)
    out = Console() if sys.stdout.isatty() else Console(width=PIPE_WIDTH)
    evaluators, left_out = build_evaluators(args.evaluators)
    emitter = EventEmitter(args.emit_otel) if args.emit_otel else None
    with open_sources(args) as opened:
        sources = list(emitting(opened, emitter))
        runs = {s.project: EvaluationRun(s, evaluators, rule, rescore=args.rescore,
                                         batch_size=args.batch_size) for s in sources}
        try:
            summaries = run_all(sources, runs, window, err)
        except SourceError as exc:
            raise CommandError(str(exc)) from None
    out.print(summary_table(summaries, [e.name for e in evaluators]))
    totals = [sum(getattr(s, f) for s in summaries.values())
              for f in ("spans_read", "spans_sampled", "rows_written")]
    out.print(f"{totals[0]} spans read, {totals[1]} sampled, {totals[2]} results written")
    if emitter is not None:
        out.print(f"{emitter.sent} evaluation events sent to {emitter.url}")
        emitter.close()
    for name, why in left_out.items():
        err.print(f"not run: {name} ({why})", style="dim", highlight=False, soft_wrap=True)
    errors = [e for s in summaries.values() for e in s.errors]
    if errors:
        err.print(f"canarytrace evaluate: some evaluations failed; first: {errors[0]}",
                  highlight=False, soft_wrap=True)
        return 1
    return 0
