"""``canarytrace demo``: the whole loop on the embedded store, with simulated models.

Starts a collector that owns a fresh embedded store, serves simulated traffic through
``ct.Canary`` (every request mirrored to the candidate), evaluates the traces, prints the
comparison verdict, writes ``report.html`` and leaves the dashboard URL on screen.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import canarytrace as ct
import httpx
from canarytrace.analysis import demo_traffic as traffic
from canarytrace.cli import CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

DEFAULT_DIRECTORY = Path(".canarytrace/demo")
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0
CANARY_RATE = 0.1
"""Share of users the candidate serves (with fallback to the base); the rest are mirrored."""
_SPOOL_SEGMENTS = re.compile(r"^canarytrace_spool_segments (\S+)$", re.MULTILINE)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="canarytrace demo", description=__doc__)
    parser.add_argument("--requests", type=int, default=900,
                        help="user requests to simulate (each is mirrored; default 900)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY,
                        help=f"demo folder, wiped at start (default {DEFAULT_DIRECTORY})")
    parser.add_argument("--port", type=int, default=0, help="collector port (default: a free one)")
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"))
    serve = parser.add_mutually_exclusive_group()
    serve.add_argument("--serve", dest="serve", action="store_true", default=None,
                       help="keep the dashboard up until Ctrl+C (default on a terminal)")
    serve.add_argument("--no-serve", dest="serve", action="store_false")
    args = parser.parse_args(argv)
    if args.requests < 30:
        raise CommandError("--requests must be at least 30")
    return args


class Collector:
    """``canarytrace serve`` as a child process owning the demo's store."""

    def __init__(self, directory: Path, port: int) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (directory / "collector.log").open("wb")
        env = {**os.environ, "CANARYTRACE_STORE": f"chdb://{(directory / 'db').resolve()}",
               "CANARYTRACE_FLUSH_INTERVAL_S": "0.2", "CANARYTRACE_EVAL_ENABLED": "false"}
        for name in ("CANARYTRACE_COLLECTOR", "CANARYTRACE_API_KEY", "CANARYTRACE_KEYS_FILE"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "canarytrace.cli", "serve", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CommandError(f"the collector exited early; see {self.log.name}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise CommandError(f"the collector did not become ready; see {self.log.name}")

    def wait_drained(self) -> None:
        """Wait until every acknowledged span has left the spool for ClickHouse."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            match = _SPOOL_SEGMENTS.search(httpx.get(self.url + "/metrics", timeout=5).text)
            if match and float(match.group(1)) == 0:
                return
            time.sleep(0.2)
        raise CommandError("the collector did not store the demo's spans in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_traffic(collector: Collector, count: int, progress: Progress) -> dict[str, Any]:
    provider = ct.init(service_name="shop-assistant", endpoint=collector.url, sample_rate=1.0)
    tracer = provider.get_tracer("canarytrace.demo")
    canary = ct.Canary(
        base=traffic.simulated_model(traffic.BASE_MODEL, traffic.BASE_QUALITY),
        candidate=traffic.simulated_model(traffic.CANDIDATE_MODEL, traffic.CANDIDATE_QUALITY),
        base_model=traffic.BASE_MODEL, candidate_model=traffic.CANDIDATE_MODEL,
        mirror_rate=1.0, canary_rate=CANARY_RATE, key=lambda r: r["user"],
        route=lambda r: r["route"], cohort=lambda r: r["cohort"], shadow_workers=4,
        shadow_queue_size=count)
    task = progress.add_task("Serving traffic through ct.Canary", total=count)
    rng = random.Random(11)
    with canary:
        for request in traffic.requests(count):
            with tracer.start_as_current_span(f"POST /assist/{request['route']}"):
                answer = canary(request)
                _maybe_feedback(answer, request, rng)
            progress.advance(task)
    ct.force_flush()
    return {"requests": count, "stats": canary.stats}


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


def _evaluate(collector: Collector) -> None:
    from canarytrace.evaluators import evaluate_command

    code = evaluate_command.main(["--collector", collector.url, "--since", "1h",
                                  "--evaluators", "json_validation,instruction_adherence,"
                                  "tool_selection"])
    if code:
        raise CommandError(f"evaluation failed (exit {code})")


def _compare(collector: Collector, output: Path) -> int:
    from canarytrace.analysis import compare_command

    common = ["--collector", collector.url, "--base", traffic.BASE_MODEL,
              "--candidate", traffic.CANDIDATE_MODEL, "--since", "1h", "--by", "route"]
    code = compare_command.main(common)
    compare_command.main([*common, "--format", "html", "-o", str(output), "--no-record"])
    return code


def main(argv: list[str]) -> int:
    args = _parse(argv)
    console = Console()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    started = time.monotonic()
    collector = Collector(args.dir, args.port)
    try:
        with _progress(console) as progress:
            step = progress.add_task("Starting the collector (embedded ClickHouse)", total=1)
            collector.wait_ready()
            progress.advance(step)
            served = _serve_traffic(collector, args.requests, progress)
            drain = progress.add_task("Storing spans", total=1)
            collector.wait_drained()
            progress.advance(drain)
        stats = served["stats"]
        console.print(f"Served {served['requests']} requests: {stats.served_candidate} by the "
                      f"candidate ({stats.fallbacks} fell back to the base), the rest by the "
                      f"base with {stats.mirrored} mirrored to the candidate "
                      f"({stats.dropped} dropped).")
        _evaluate(collector)
        verdict_code = _compare(collector, args.output)
        console.print(f"\nReport: [bold]{args.output.resolve()}[/]")
        console.print(f"Demo finished in {time.monotonic() - started:.0f} s "
                      f"(compare exit code {verdict_code}).")
        serve = sys.stdin.isatty() if args.serve is None else args.serve
        if serve:
            console.print(f"Dashboard: [bold]{collector.url}/[/]  (Ctrl+C stops it)")
            _wait_for_interrupt()
        else:
            store = f"chdb://{(args.dir / 'db').resolve()}"
            console.print(f"Dashboard: canarytrace serve --store {store} "
                          "and open http://127.0.0.1:4318/")
    finally:
        ct.shutdown()
        collector.stop()
    return 0


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass

