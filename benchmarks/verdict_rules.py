"""Benchmark: how often each verdict rule is wrong when a pipeline looks every 100 pairs.

Seeds one embedded store with the test suite's simulator (``tests/analysis/simulate.py``:
mirrored pairs, correlated pass/fail, five cohorts), loads each run once through the real
SQL (``load_inputs``) and re-runs the real engine at every look on what an ``--until`` at
that look sees, the window anchored at the canary's start. Both rules judge the same looks:

- new: ``compare`` as shipped (anytime-valid PROMOTE and ROLLBACK over a fixed family);
- today's (before issue #11): Holm over the slices present at that look, and PROMOTE when
  the fixed-horizon paired-bootstrap interval of "all" rules out ``min_effect`` (or the
  metric reached ``max_samples``), re-computed from the same per-cell numbers.

For each scenario it prints, per rule, the share of runs with a PROMOTE at some look, a
ROLLBACK at some look, the first decisive verdict (what a pipeline acts on), ROLLBACK naming
the regressed cohort, and the median pairs to the first PROMOTE.

Last, ``--span-runs`` runs of the clear improvement also carry spans (latency, tokens, and
error and parser-error rates at zero, which PROMOTE must rule out above 1 and 2 points in
every cohort), looked at up to 6,000 pairs: the pairs a PROMOTE takes at the default policy.

    python benchmarks/verdict_rules.py [--runs 100] [--pairs 2000] [--look-every 100]
                                       [--span-runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canarytrace.analysis import statistics as st  # noqa: E402
from canarytrace.analysis.compare import (  # noqa: E402
    ALL,
    HOLD,
    PROMOTE,
    ROLLBACK,
    ComparisonReport,
    compare,
)
from canarytrace.analysis.inputs import ComparisonQuery, load_inputs  # noqa: E402
from canarytrace.analysis.policy import default_policy  # noqa: E402
from canarytrace.store.client import Store  # noqa: E402
from tests.analysis import simulate as sim  # noqa: E402

WORSE = {c: 0.88 for c in sim.COHORTS}


def scenarios(pairs: int) -> dict[str, sim.Scenario]:
    return {
        "no difference, correlation 0.8": sim.Scenario(pairs=pairs),
        "no difference, correlation 0.98 (rare discordance)": sim.Scenario(pairs=pairs,
                                                                            correlation=0.98),
        "2 points worse everywhere (= min_effect), correlation 0.8": sim.Scenario(
            pairs=pairs, candidate_pass=WORSE),
        "2 points worse everywhere, correlation 0.95": sim.Scenario(
            pairs=pairs, correlation=0.95, candidate_pass=WORSE),
        "10 points worse in cohort pro (one of five)": sim.Scenario(
            pairs=pairs, candidate_pass={"pro": 0.8}),
        "clear improvement, 82% -> 93%": sim.Scenario(
            pairs=pairs, base_pass=0.82, candidate_pass={c: 0.93 for c in sim.COHORTS}),
    }


def todays_rule(report: ComparisonReport) -> tuple[str, set[str]]:
    """The verdict the engine gave before issue #11, from the same per-cell numbers: Holm
    over the critical cells present at this look; PROMOTE on the fixed-horizon interval of
    "all" (or the max_samples horizon)."""
    policy = report.policy
    cells = [r for r in report.results if r.policy.critical and r.testable
             and r.p_anytime is not None and r.n >= r.policy.min_samples]
    adjusted = st.holm_adjust([r.p_anytime for r in cells], policy.alpha)
    regressed = {r.slice.name for r, p in zip(cells, adjusted, strict=True)
                 if p < policy.alpha and r.harm() is not None
                 and r.harm()[0] >= r.policy.min_effect}
    if regressed:
        return ROLLBACK, regressed
    overall = [r for r in report.results if r.slice is ALL and r.policy.critical]
    settled = [r.harm() is not None and (r.harm()[2] < r.policy.min_effect
                                         or r.n >= r.policy.max_samples) for r in overall]
    return (PROMOTE if overall and all(settled) else HOLD), set()


def new_rule(report: ComparisonReport) -> tuple[str, set[str]]:
    return report.verdict, {r.slice for r in report.reasons if r.kind == "critical_regression"}


@dataclass
class Tally:
    runs: int = 0
    promote_any: int = 0
    rollback_any: int = 0
    first_promote: int = 0
    first_rollback: int = 0
    named: int = 0
    promote_pairs: list[int] = field(default_factory=list)

    def add(self, looks: list[tuple[int, str, set[str]]], cohort: str | None) -> None:
        self.runs += 1
        verdicts = [v for _, v, _ in looks]
        self.promote_any += PROMOTE in verdicts
        self.rollback_any += ROLLBACK in verdicts
        first = next(((n, v, s) for n, v, s in looks if v != HOLD), None)
        if first is not None:
            self.first_promote += first[1] == PROMOTE
            self.first_rollback += first[1] == ROLLBACK
            self.named += first[1] == ROLLBACK and cohort is not None and cohort in first[2]
            if first[1] == PROMOTE:
                self.promote_pairs.append(first[0])

    def row(self, cohort: str | None) -> str:
        def share(k: int) -> str:
            return f"{k}/{self.runs} ({100 * k / self.runs:.0f}%)"

        pairs = statistics.median(self.promote_pairs) if self.promote_pairs else None
        return (f"PROMOTE at some look {share(self.promote_any)}; ROLLBACK at some look "
                f"{share(self.rollback_any)}; first decisive: PROMOTE "
                f"{share(self.first_promote)}, ROLLBACK {share(self.first_rollback)}"
                + (f" (naming {cohort}: {share(self.named)})" if cohort else "")
                + (f"; median pairs to PROMOTE {pairs:.0f}" if pairs else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per scenario")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--look-every", type=int, default=100)
    parser.add_argument("--span-runs", type=int, default=10)
    args = parser.parse_args()
    policy = default_policy()
    looks = list(range(args.look_every, args.pairs + 1, args.look_every))
    rules: dict[str, Callable[[ComparisonReport], tuple[str, set[str]]]] = {
        "new": new_rule, "today's": todays_rule}
    print(f"{args.runs} runs per scenario, a look every {args.look_every} pairs up to "
          f"{args.pairs}, --by cohort, default policy, window anchored at the start")
    with tempfile.TemporaryDirectory() as directory:
        store = Store.from_url(f"chdb://{directory}/db")
        store.migrate()
        for index, (name, scenario) in enumerate(scenarios(args.pairs).items()):
            started = time.perf_counter()
            runs = [sim.simulate(f"s{index}-{run}", scenario, seed=1000 * index + run)
                    for run in range(args.runs)]
            sim.insert(store, "eval_results", sim.merge([sim.eval_columns(r) for r in runs]))
            cohort = "cohort=pro" if "pro" in scenario.candidate_pass and len(
                scenario.candidate_pass) == 1 else None
            tallies = {rule: Tally() for rule in rules}
            for run in runs:
                inputs = load_inputs(store, ComparisonQuery(
                    sim.BASE_MODEL, sim.CANDIDATE_MODEL, sim.START,
                    sim.START + timedelta(days=30), run.project))
                reports = [compare(inputs.up_to(run.time(pairs - 1) + timedelta(
                    milliseconds=1)), policy) for pairs in looks]
                for rule, judge in rules.items():
                    tallies[rule].add([(pairs, *judge(report))
                                       for pairs, report in zip(looks, reports, strict=True)],
                                      cohort)
            print(f"\n{name}  ({time.perf_counter() - started:.0f} s)")
            for rule, tally in tallies.items():
                print(f"  {rule:>8}: {tally.row(cohort)}")
        if args.span_runs:
            _with_spans(store, args.span_runs, args.look_every, policy)
        store.close()


def _with_spans(store: Store, runs: int, every: int, policy: object) -> None:
    """Pairs to the first PROMOTE of a clear improvement with spans (error rates at zero)."""
    started = time.perf_counter()
    scenario = sim.Scenario(pairs=6000, base_pass=0.82,
                            candidate_pass={c: 0.93 for c in sim.COHORTS})
    reached = []
    for run in range(runs):
        requests = sim.simulate(f"spans-{run}", scenario, seed=90_000 + run)
        sim.insert(store, "eval_results", sim.eval_columns(requests))
        sim.insert(store, "otel_traces", sim.span_columns(requests, seed=run))
        inputs = load_inputs(store, ComparisonQuery(
            sim.BASE_MODEL, sim.CANDIDATE_MODEL, sim.START, sim.START + timedelta(days=30),
            requests.project))
        for pairs in range(every, scenario.pairs + 1, every):
            report = compare(inputs.up_to(requests.time(pairs - 1) + timedelta(
                milliseconds=1)), policy)
            if report.verdict != HOLD:
                reached.append(pairs if report.verdict == PROMOTE else -pairs)
                break
    promoted = sorted(p for p in reached if p > 0)
    print(f"\nclear improvement with spans (error/parser-error rates at zero), {runs} runs  "
          f"({time.perf_counter() - started:.0f} s)\n       new: PROMOTE in {len(promoted)}/"
          f"{runs}, after a median {statistics.median(promoted) if promoted else '-'} pairs "
          f"(from {promoted[0] if promoted else '-'} to {promoted[-1] if promoted else '-'})")


if __name__ == "__main__":
    main()
