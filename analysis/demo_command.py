"""``canarytrace demo``: the whole loop on the embedded store, with simulated models.

Starts a collector that owns a fresh embedded store, serves simulated traffic through
``ct.Canary`` (the candidate serves a tenth of the users; every other request is mirrored to
it), back-dated so that it spreads over the last hour, evaluates the traces, prints the
comparison verdict sliced by route and by cohort (as the dashboard's overview slices it),
writes ``report.html`` into the demo's folder and leaves the dashboard URL on screen.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry import metrics
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import canarytrace as ct
from canarytrace.analysis import demo_traffic as traffic
from canarytrace.analysis.backdate import BackdatingExporter
from canarytrace.analysis.console import output_console
from canarytrace.analysis.local_collector import CollectorProcessError, LocalCollector
from canarytrace.cli import CommandError, CommandParser
from canarytrace.processor import export_processor

DEFAULT_DIRECTORY = Path(".canarytrace/demo")
CANARY_RATE = 0.1
"""Share of users the candidate serves (with fallback to the base); the rest are mirrored."""
COLLECTOR_LOG = "collector.log"
"""Written first in the demo's folder: a folder holding it is an earlier demo's, and is wiped."""
DEMO_ENTRIES = {COLLECTOR_LOG, "db", "db-state", "spool", "keys.json", "report.html"}
"""What a demo's folder holds; a folder with only these (a wipe cut short by an older version)
is an earlier demo's too."""
WIPING = ".{name}.wiping-"
"""An earlier demo's folder is renamed to this (plus a pid) before it is deleted, so that a
wipe cut short leaves no half-wiped demo folder; the next demo deletes what is left."""
SPREAD = timedelta(minutes=55)
"""The requests' spans are moved to start evenly over this much of the last hour."""
SLICES = "route,cohort"
"""How the demo's verdict is sliced: the same slices as the dashboard's overview."""
SERVICE = "shop-assistant"
COLLECTOR_ENV = {"CANARYTRACE_FLUSH_INTERVAL_S": "0.2", "CANARYTRACE_EVAL_ENABLED": "false"}
"""The demo's collector stores fast and leaves evaluation to the demo's own step."""


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = CommandParser(prog="canarytrace demo", description=__doc__)
    parser.add_argument("--requests", type=int, default=900,
                        help="user requests to simulate (default 900)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY,
                        help=f"demo folder; an earlier demo's is wiped at start "
                             f"(default {DEFAULT_DIRECTORY})")
    parser.add_argument("--port", type=int, default=0, help="collector port (default: a free one)")
    parser.add_argument("-o", "--output", type=Path,
                        help="HTML report (default: report.html in the demo folder)")
    serve = parser.add_mutually_exclusive_group()
    serve.add_argument("--serve", dest="serve", action="store_true", default=None,
                       help="keep the dashboard up until Ctrl+C (default on a terminal)")
    serve.add_argument("--no-serve", dest="serve", action="store_false")
    args = parser.parse_args(argv)
    if args.requests < 30:
        raise CommandError("--requests must be at least 30")
    return args


@dataclass
class Telemetry:
    """The demo app's OpenTelemetry: spans through a back-dating exporter, the canary's
    counters to ``/v1/metrics``, both to the demo's collector."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: BackdatingExporter

    @classmethod
    def start(cls, collector: LocalCollector) -> Telemetry:
        resource = Resource.create({SERVICE_NAME: SERVICE})
        exporter = BackdatingExporter(OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces"))
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(export_processor(exporter))
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{collector.url}/v1/metrics"))
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        metrics.set_meter_provider(meter_provider)  # the SDK's meter follows the global one
        ct.init(service_name=SERVICE, endpoint=collector.url, tracer_provider=tracer_provider)
        return cls(tracer_provider, meter_provider, exporter)

    def shutdown(self) -> None:
        """Export what is left while the collector still listens."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _serve_traffic(telemetry: Telemetry, count: int, first_ns: int,
                   progress: Progress) -> ct.CanaryStats:
    """``count`` requests through ``ct.Canary``; request i's trace moves to
    ``first_ns + i * SPREAD / count``."""
    tracer = telemetry.tracer_provider.get_tracer("canarytrace.demo")
    step_ns = int(SPREAD.total_seconds() * 1e9) // count
    canary = ct.Canary(
        base=traffic.simulated_model(traffic.BASE_MODEL, traffic.BASE_QUALITY),
        candidate=traffic.simulated_model(traffic.CANDIDATE_MODEL, traffic.CANDIDATE_QUALITY),
        base_model=traffic.BASE_MODEL, candidate_model=traffic.CANDIDATE_MODEL,
        mirror_rate=1.0, canary_rate=CANARY_RATE, key=lambda r: r["user"],
        route=lambda r: r["route"], cohort=lambda r: r["cohort"], shadow_workers=4,
        shadow_queue_size=count, meter=telemetry.meter_provider.get_meter("canarytrace"))
    task = progress.add_task("Serving traffic through ct.Canary", total=count)
    rng = random.Random(11)
    with canary:
        for index, request in enumerate(traffic.requests(count)):
            with tracer.start_as_current_span(f"POST /assist/{request['route']}") as span:
                telemetry.exporter.move_trace(span.get_span_context().trace_id,
                                    first_ns + index * step_ns - time.time_ns())
                answer = canary(request)
                _maybe_feedback(answer, request, rng)
            progress.advance(task)
    ct.force_flush()
    return canary.stats


def _maybe_feedback(answer: Any, request: dict[str, Any], rng: random.Random) -> None:
    """Users thumb down invoices they cannot read and thumb up a few good answers."""
    if request["route"] != "billing":
        if rng.random() < 0.05:
            ct.feedback(score=1)
        return
    text = answer["choices"][0]["message"]["content"]
    try:
        ct.parse_json(text)
    except ct.JSONParseError:
        ct.feedback(score=-1, comment="the invoice did not load")


def _evaluate(collector: LocalCollector, since: str) -> None:
    from canarytrace.evaluators import evaluate_command

    code = evaluate_command.main(["--collector", collector.url, "--since", since,
                                  "--evaluators", "json_validation,instruction_adherence,"
                                  "tool_selection"])
    if code:
        raise CommandError(f"evaluation failed (exit {code})")


def _compare(collector: LocalCollector, since: str, output: Path) -> None:
    from canarytrace.analysis import compare_command

    common = ["--collector", collector.url, "--base", traffic.BASE_MODEL,
              "--candidate", traffic.CANDIDATE_MODEL, "--since", since, "--by", SLICES]
    compare_command.main(common)
    compare_command.main([*common, "--format", "html", "-o", str(output), "--no-record"])


def main(argv: list[str]) -> int:
    args = _parse(argv)
    console = output_console()
    _fresh_directory(args.dir)
    args.output = args.output or args.dir / "report.html"
    started = time.monotonic()
    store = f"chdb://{(args.dir / 'db').resolve()}"
    try:
        with ExitStack() as stack:
            with console.status("Starting the collector (embedded ClickHouse)"):
                collector = stack.enter_context(
                    LocalCollector(store, args.dir / COLLECTOR_LOG, COLLECTOR_ENV, args.port))
            telemetry = Telemetry.start(collector)
            stack.callback(ct.shutdown)
            stack.callback(telemetry.shutdown)  # flush while the collector still listens
            _run_loop(collector, telemetry, args, console)
            console.print(f"Demo finished in {time.monotonic() - started:.0f} s.")
            if sys.stdin.isatty() if args.serve is None else args.serve:
                console.print(f"Dashboard: [bold]{collector.url}/[/]  (Ctrl+C stops it)")
                _wait_for_interrupt()
            else:
                console.print(f"Dashboard: canarytrace serve --store {store} "
                              "and open http://127.0.0.1:4318/")
    except CollectorProcessError as exc:
        raise CommandError(str(exc), exit_code=1) from None
    return 0


def _fresh_directory(directory: Path) -> None:
    """Wipe a previous demo's folder; refuse a folder with anything else in it.

    The folder is renamed before it is deleted: a wipe cut short (Ctrl+C, a kill) leaves only
    the renamed copy, which this deletes first on the next run.
    """
    for leftover in directory.parent.glob(WIPING.format(name=directory.name) + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if directory.is_dir() and any(directory.iterdir()):
        if not _is_earlier_demo(directory):
            raise CommandError(f"--dir {directory} is not empty and holds no earlier demo: "
                               "give a new or empty folder")
        doomed = directory.with_name(WIPING.format(name=directory.name) + str(os.getpid()))
        directory.rename(doomed)
        shutil.rmtree(doomed)
    directory.mkdir(parents=True, exist_ok=True)


def _is_earlier_demo(directory: Path) -> bool:
    return (directory / COLLECTOR_LOG).is_file() or all(
        entry.name in DEMO_ENTRIES for entry in directory.iterdir())


def _run_loop(collector: LocalCollector, telemetry: Telemetry, args: argparse.Namespace,
              console: Console) -> None:
    """Traffic, storage, evaluation, verdict and report: the loop a team runs in production."""
    first = datetime.now(UTC) - SPREAD
    since = (first - timedelta(minutes=1)).isoformat()
    with _progress(console) as progress:
        stats = _serve_traffic(telemetry, args.requests, int(first.timestamp() * 1e9), progress)
        drain = progress.add_task("Storing spans", total=1)
        collector.wait_drained()
        progress.advance(drain)
    console.print(f"Served {args.requests} requests: {stats.served_candidate} by the candidate "
                  f"({stats.fallbacks} fell back to the base), the rest by the base with "
                  f"{stats.mirrored} mirrored to the candidate ({stats.dropped} dropped).")
    _evaluate(collector, since)
    _compare(collector, since, args.output)
    console.print(f"\nReport: [bold]{args.output.resolve()}[/]")


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass

