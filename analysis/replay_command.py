"""``canarytrace replay``: a held-out dataset through two local checkpoints, traced and compared.

    canarytrace replay --dataset ifeval --base hf:./ckpt/base --candidate hf:./ckpt/lora \\
        --trials 3 --sweep temperature=0.2,0.8 --gen max_new_tokens=256 -o report.html

Steps: read and check the dataset (a bad row is one error naming its line, exit 2); answer
every prompt x configuration x trial with both models (spans through a collector: with
``--store`` one this command starts on the store, with ``--collector`` yours); evaluate the
answers with the worker's evaluators (plus ``reward_score`` with ``--reward hf:PATH``);
compare base and candidate with the ``compare`` engine, sliced by configuration
(``canary.cohort``); print the per-configuration table and write the HTML report (``-o``, by
default next to the run's manifest in the state folder). Re-running
the same command skips answers already exported. Exit code as ``compare``: 0 PROMOTE,
10 HOLD, 11 ROLLBACK; 2 for bad input, 1 when the run fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from canarytrace.analysis.compare import EXIT_CODES
from canarytrace.analysis.console import fit, output_console
from canarytrace.analysis.datasets import DatasetError, load_dataset
from canarytrace.analysis.local_collector import CollectorProcessError, LocalCollector
from canarytrace.analysis.policy import Policy, PolicyError, parse_policy, read_policy_text
from canarytrace.analysis.replay import (
    DEFAULT_BATCH_SIZE,
    Manifest,
    ReplayPlan,
    ReplayResult,
    configurations,
    parse_assignment,
    parse_sweep,
    pending_work,
    run_replay,
    traced,
)
from canarytrace.analysis.replay_backends import (
    Backend,
    CollectorBackend,
    StoreBackend,
    check_endpoint,
    replay_spans_only,
    wait_until_stored,
)
from canarytrace.analysis.replay_models import HF_PREFIX, ModelSpec, ReplayError
from canarytrace.analysis.replay_report import (
    ReplayReport,
    build_report,
    summary_table,
    verdict_lines,
    write_html,
    write_json,
)
from canarytrace.analysis.service import ComparisonRequest
from canarytrace.cli import CommandError, CommandParser
from canarytrace.evaluators.base import Evaluator
from canarytrace.evaluators.sources import SourceError, Window
from canarytrace.evaluators.worker import EvaluationRun, create_evaluators
from canarytrace.store.location import DEFAULT_STORE, chdb_path, resolve_store_url

SLICINGS = (("cohort",),)
"""The comparison is sliced by configuration (each answer's ``canary.cohort``)."""

REPLAY_POLICY = """\
# replay answers in batches: an answer's latency is its whole batch's, so it is not judged
metrics:
  latency_p50: {enabled: false}
  latency_p99: {enabled: false}
"""
"""Merged over the built-in policy when no ``--policy`` is given."""


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="canarytrace replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True,
                        help="'ifeval' (built-in, 541 prompts), 'ifbench' (built-in, 300 "
                             "prompts) or a JSONL file (IFEval rows, or "
                             "rows with prompt/messages and json_schema/tools/reference/task)")
    parser.add_argument("--base", required=True, help="hf:PATH, a directory saved with "
                                                      "save_pretrained")
    parser.add_argument("--candidate", required=True, help="hf:PATH")
    parser.add_argument("--base-name", help="model name on the spans (default: directory name)")
    parser.add_argument("--candidate-name", help="model name on the spans")
    parser.add_argument("--trials", type=int, default=1,
                        help="answers per prompt, seeds seed..seed+N-1; sampling is on with N > 1 "
                             "unless --gen do_sample=false")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2",
                        help="a generation argument to sweep; several multiply")
    parser.add_argument("--gen", action="append", default=[], metavar="KEY=VALUE",
                        help="a fixed generate() argument (e.g. max_new_tokens=256)")
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--reward", help="hf:PATH of a reward model (adds reward_score)")
    parser.add_argument("--evaluators", help="evaluator names, comma-separated (default: every "
                                             "evaluator the environment configures)")
    parser.add_argument("--policy", help="comparison policy YAML (default: built-in)")
    parser.add_argument("--store", help=f"store URL (env CANARYTRACE_STORE; default "
                                        f"{DEFAULT_STORE})")
    parser.add_argument("--collector", help="a running collector (env CANARYTRACE_COLLECTOR)")
    parser.add_argument("--api-key", help="collector API key (env CANARYTRACE_API_KEY)")
    parser.add_argument("--state-dir", type=Path,
                        help="where run manifests live (default: next to the store, else "
                             "./.canarytrace)")
    parser.add_argument("-o", "--output", type=Path,
                        help="write the HTML report here (default: <state dir>/replay/<run>.html, "
                             "next to the run's manifest)")
    parser.add_argument("--json", type=Path, help="write the report's numbers as JSON here")
    return parser


# --- setting up -------------------------------------------------------------------------------

def _plan(args: argparse.Namespace) -> ReplayPlan:
    try:
        dataset = load_dataset(args.dataset, args.limit)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    try:
        fixed = dict(parse_assignment(item) for item in args.gen)
        sweeps = [parse_sweep(item) for item in args.sweep]
        return ReplayPlan(
            dataset, ModelSpec.parse("base", args.base, args.base_name),
            ModelSpec.parse("candidate", args.candidate, args.candidate_name),
            tuple(configurations(sweeps)), args.trials, args.seed, fixed, args.batch_size)
    except ReplayError as exc:
        raise CommandError(str(exc)) from None


def _policy(path: str | None) -> tuple[Policy, str]:
    """The comparison policy and its text (sent to a collector); replay's default without
    ``--policy``."""
    if path is None:
        return parse_policy(REPLAY_POLICY, source="replay default"), REPLAY_POLICY
    try:
        text = read_policy_text(path)
        return parse_policy(text, source=path), text
    except PolicyError as exc:
        raise CommandError(str(exc)) from None


def _evaluators(names_text: str | None, reward: str | None) -> list[Evaluator]:
    names = None if names_text is None else [n.strip() for n in names_text.split(",")
                                             if n.strip()]
    try:
        evaluators, _ = create_evaluators(names)
    except Exception as exc:  # noqa: BLE001 - a named evaluator that cannot be set up
        raise CommandError(f"--evaluators: {exc}") from None
    if reward is not None:
        if not reward.startswith(HF_PREFIX):
            raise CommandError(f"--reward must be hf:PATH, got {reward!r}")
        path = Path(reward[len(HF_PREFIX):]).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise CommandError(f"--reward {reward}: no config.json in {path}")
        from canarytrace.evaluators.reward import RewardScore

        evaluators = [e for e in evaluators if e.name != RewardScore.name]
        evaluators.append(RewardScore(path))
    if not evaluators:
        raise CommandError("no evaluator could be set up")
    return evaluators


def _state_dir(args: argparse.Namespace, store_url: str | None) -> Path:
    if args.state_dir is not None:
        return args.state_dir
    path = chdb_path(store_url) if store_url else None
    return path.parent if path is not None else Path(".canarytrace").absolute()


# --- running ----------------------------------------------------------------------------------

def _generate(plan: ReplayPlan, manifest: Manifest, endpoint: str, api_key: str | None,
              device: str, console: Console) -> ReplayResult:
    pending = sum(len(examples) for spec in plan.models
                  for _, _, examples in pending_work(plan, spec, manifest.load()))
    with traced(endpoint, api_key), Progress(console=console, transient=True) as progress:
        task = progress.add_task("generating", total=pending)
        return run_replay(plan, manifest, device=device,
                          progress=lambda n: progress.advance(task, n))


def _run(args: argparse.Namespace, plan: ReplayPlan, console: Console
         ) -> tuple[ReplayResult, Backend, Manifest]:
    """Generate what is missing (through a collector) and open the backend to read results."""
    collector_url = args.collector or (None if args.store else
                                       os.environ.get("CANARYTRACE_COLLECTOR"))
    api_key = args.api_key or os.environ.get("CANARYTRACE_API_KEY")
    if collector_url:
        manifest = Manifest.for_run(_state_dir(args, None), plan.run_id)
        check_endpoint(collector_url, api_key)
        result = _generate(plan, manifest, collector_url, api_key, args.device, console)
        return result, CollectorBackend(collector_url, api_key), manifest
    store_url = resolve_store_url(args.store or os.environ.get("CANARYTRACE_STORE")
                                  or DEFAULT_STORE)
    state_dir = _state_dir(args, store_url)
    manifest = Manifest.for_run(state_dir, plan.run_id)
    if any(pending_work(plan, spec, manifest.load()) for spec in plan.models):
        with LocalCollector(store_url, state_dir / "replay" / "collector.log") as collector:
            check_endpoint(collector.url, None)
            result = _generate(plan, manifest, collector.url, None, args.device, console)
    else:
        result = run_replay(plan, manifest, device=args.device)
    return result, StoreBackend(store_url), manifest


def _window(result: ReplayResult) -> tuple[datetime, datetime]:
    first = min(a.time_ns for a in result.answers)
    since = datetime.fromtimestamp(first / 1e9, UTC) - timedelta(seconds=1)
    return since, datetime.now(UTC) + timedelta(seconds=1)


def _check_stored(backend: Backend, result: ReplayResult, manifest: Manifest,
                  window: tuple[datetime, datetime]) -> None:
    """Every answer's span must be in the store; missing ones are forgotten so a re-run
    redoes them."""
    missing = wait_until_stored(backend, {a.span_id for a in result.answers},
                                result.plan.dataset.name, *window)
    if missing:
        manifest.rewrite([a for a in manifest.load().values() if a.span_id not in missing])
        raise CommandError(f"{len(missing)} of {len(result.answers)} answers did not reach the "
                           "store; run the same command again to redo them", exit_code=1)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.store and args.collector:
        raise CommandError("give either --store or --collector, not both")
    plan = _plan(args)
    policy, policy_text = _policy(args.policy)
    evaluators = _evaluators(args.evaluators, args.reward)
    console = Console(stderr=True)
    try:
        result, backend, manifest = _run(args, plan, console)
    except (ReplayError, CollectorProcessError) as exc:
        raise CommandError(str(exc), exit_code=1) from None
    try:
        window = _window(result)
        _check_stored(backend, result, manifest, window)
        source = replay_spans_only(backend.source(), plan.dataset.name)
        EvaluationRun(source, evaluators).run(Window(*window))
        verdict, failure = _compare(backend, plan, window, policy, policy_text)
        report = build_report(result, backend.eval_rows(
            [a.span_id for a in result.answers], *window), verdict)
    except (ReplayError, SourceError) as exc:
        raise CommandError(str(exc), exit_code=1) from None
    finally:
        backend.close()
    _emit(report, args, console, manifest.path.with_suffix(".html"))
    if failure is not None:
        raise CommandError(f"the comparison failed: {failure}", exit_code=1)
    return EXIT_CODES[verdict["verdict"]]


def _compare(backend: Backend, plan: ReplayPlan, window: tuple[datetime, datetime],
             policy: Policy, policy_text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the verdict report, None), or (None, why) so the scores are still reported."""
    request = ComparisonRequest(plan.base.label, plan.candidate.label, *window, SLICINGS)
    try:
        return backend.compare(request, policy, policy_text), None
    except (CommandError, ReplayError) as exc:
        return None, str(exc)


def _emit(report: ReplayReport, args: argparse.Namespace, console: Console,
          default_html: Path) -> None:
    """The table and verdict on stdout (full width when piped), the HTML report on disk."""
    out = output_console(sys.stdout)
    table = summary_table(report)
    fit(out, table)
    out.print(table)
    for line in verdict_lines(report.verdict):
        out.print(line, highlight=False, soft_wrap=True)
    console.print(f"{report.generated} answers generated, {report.resumed} already done",
                  highlight=False)
    html = args.output if args.output is not None else default_html
    try:
        html.parent.mkdir(parents=True, exist_ok=True)
        written = write_html(report, html)
    except OSError as exc:
        raise CommandError(f"cannot write the report {html}: {exc.strerror or exc}",
                           exit_code=1) from None
    console.print(f"report: {', '.join(str(p) for p in written)}", highlight=False, soft_wrap=True)
    if args.json is not None:
        write_json(report, args.json)
