"""Seeded canary simulations through the real store (chDB) and the real ``canarytrace compare``.

What goes where: every simulation's evaluations are written to one embedded store with
column-oriented inserts (a project per simulation). Verdicts come from the real loader
(``load_inputs``: the SQL) and the real engine, looked at every ``LOOK_EVERY`` pairs with the
window anchored at the canary's start, the way a pipeline polls: it acts on the first
decisive verdict. Each simulation is loaded once; a look re-runs the engine on what an
``--until`` at that look sees (``up_to``); a few looks also run the real command in-process
and the rollout API, and must agree. Sizes keep the whole file around two minutes on two
cores; ``benchmarks/verdict_rules.py`` runs the same scenarios bigger, beside today's rule.
"""

from __future__ import annotations

import json
import statistics
from datetime import timedelta

import pytest

from canarytrace.analysis import compare_command
from canarytrace.analysis import rollouts as R
from canarytrace.analysis.compare import HOLD, PROMOTE, ROLLBACK, compare
from canarytrace.analysis.inputs import ComparisonQuery, load_inputs
from canarytrace.analysis.policy import default_policy
from canarytrace.analysis.report_json import validate_report
from canarytrace.store.client import Store
from tests.analysis import simulate as sim

LOOK_EVERY = 100
PAIRS = 2000
LOOKS = [sim.START + timedelta(seconds=LOOK_EVERY * k) for k in range(1, PAIRS // LOOK_EVERY + 1)]
WORSE = {c: 0.88 for c in sim.COHORTS}  # 2 points worse everywhere: exactly min_effect
SCENARIOS = {  # name: (scenario, runs)
    "null": (sim.Scenario(pairs=PAIRS), 60),
    "null-rare": (sim.Scenario(pairs=PAIRS, correlation=0.98), 40),
    "worse": (sim.Scenario(pairs=PAIRS, candidate_pass=WORSE), 40),
    "worse-rare": (sim.Scenario(pairs=PAIRS, correlation=0.95, candidate_pass=WORSE), 40),
    "drop": (sim.Scenario(pairs=PAIRS, candidate_pass={"pro": 0.8}), 60),
    "better": (sim.Scenario(pairs=PAIRS, base_pass=0.82,
                            candidate_pass={c: 0.93 for c in sim.COHORTS}), 20),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("compare-sims") / "db"
    store = Store.from_url(f"chdb://{path}")
    store.migrate()
    runs = [sim.simulate(f"{name}-{i:03d}", scenario, seed=1000 * index + i)
            for index, (name, (scenario, count)) in enumerate(SCENARIOS.items())
            for i in range(count)]
    sim.insert(store, "eval_results", sim.merge([sim.eval_columns(r) for r in runs]))
    store.path = path
    yield store
    store.close()


def _query(project: str) -> ComparisonQuery:
    return ComparisonQuery(sim.BASE_MODEL, sim.CANDIDATE_MODEL, sim.START,
                           sim.START + timedelta(days=1), project)


def _pipeline(store, project: str, every_look: bool = False):
    """(looks, first decisive report or None): a pipeline polling every LOOK_EVERY pairs."""
    inputs = load_inputs(store, _query(project))
    seen = []
    for look in LOOKS:
        report = compare(inputs.up_to(look), default_policy())
        seen.append(report)
        if report.verdict != HOLD and not every_look:
            return seen, report
    return seen, next((r for r in seen if r.verdict != HOLD), None)


def _runs(name: str) -> list[str]:
    return [f"{name}-{i:03d}" for i in range(SCENARIOS[name][1])]


def _command(store, project: str, *extra: str) -> list[str]:
    return ["--base", sim.BASE_MODEL, "--candidate", sim.CANDIDATE_MODEL,
            "--store", f"chdb://{store.path}", "--project", project,
            "--since", sim.START.isoformat(), *extra]


def _run_command(store, project: str, tmp_path, *extra: str) -> tuple[int, dict]:
    output = tmp_path / f"{project}.json"
    code = compare_command.main(_command(store, project, "--format", "json", "-o", str(output),
                                         *extra))
    report = json.loads(output.read_text())
    validate_report(report)
    return code, report


@pytest.mark.parametrize("name", ["null", "null-rare"])
def test_no_true_difference_looked_at_every_100_pairs_rarely_rolls_back(store, tmp_path, name):
    rollbacks, promotes = 0, 0
    for index, project in enumerate(_runs(name)):
        looks, first = _pipeline(store, project, every_look=True)
        verdicts = [report.verdict for report in looks]
        rollbacks += ROLLBACK in verdicts
        promotes += PROMOTE in verdicts
        if index == 0:  # the real command with --until sees exactly what up_to saw
            for look in (4, 11, len(LOOKS) - 1):
                code, report = _run_command(store, project, tmp_path, "--until",
                                            LOOKS[look].isoformat(), "--no-record")
                assert report["verdict"] == verdicts[look]
                assert code == {PROMOTE: 0, HOLD: 10, ROLLBACK: 11}[verdicts[look]]
                assert report["guarantee"]["window"] == "anchored"
                assert report["guarantee"]["anytime"] is True
    runs = SCENARIOS[name][1]
    print(f"({name}) no difference, {len(LOOKS)} looks each: ROLLBACK at some look in "
          f"{rollbacks} of {runs} runs, PROMOTE in {promotes}")
    assert rollbacks <= 0.05 * runs


@pytest.mark.parametrize("name", ["worse", "worse-rare"])
def test_a_regression_of_exactly_min_effect_is_never_promoted(store, name):
    promotes, rollbacks = 0, 0
    for project in _runs(name):
        looks, first = _pipeline(store, project, every_look=True)
        promotes += any(report.verdict == PROMOTE for report in looks)
        rollbacks += first is not None and first.verdict == ROLLBACK
    runs = SCENARIOS[name][1]
    print(f"({name}) 2 points worse everywhere: PROMOTE at some look in {promotes} of {runs}, "
          f"ROLLBACK first in {rollbacks}")
    assert promotes <= 0.05 * runs
    assert rollbacks >= 0.3 * runs  # the anytime test still catches most of them


def test_a_ten_point_drop_in_one_cohort_rolls_back_naming_it(store, tmp_path):
    named, promoted, at = 0, 0, []
    for project in _runs("drop"):
        _, first = _pipeline(store, project)
        promoted += first is not None and first.verdict == PROMOTE
        if first is not None and first.verdict == ROLLBACK:
            at.append(first.inputs.query.until)
            named += any(r.kind == "critical_regression" and r.metric == "json_validation"
                         and r.slice == "cohort=pro" for r in first.reasons)
    runs = SCENARIOS["drop"][1]
    pairs = [int((t - sim.START).total_seconds()) for t in at]
    print(f"(drop) 10-point drop in cohort pro: first decisive verdict a ROLLBACK naming it in "
          f"{named} of {runs} runs (median {statistics.median(pairs):.0f} pairs), PROMOTE in "
          f"{promoted}")
    assert named >= 0.9 * runs and promoted == 0
    for project in _runs("drop")[:2]:
        code, report = _run_command(store, project, tmp_path, "--until",
                                    (sim.START + timedelta(days=1)).isoformat())
        assert code == 11 and report["verdict"] == ROLLBACK
        assert {"metric": "json_validation", "slice": "cohort=pro"}.items() <= next(
            r for r in report["reasons"] if r["slice"] == "cohort=pro").items()
    history = store.query_verdicts("drop-000")
    assert [row["Verdict"] for row in history] == [ROLLBACK]
    assert json.loads(history[0]["Report"])["verdict"] == ROLLBACK


def test_a_clear_improvement_is_promoted_and_the_rollout_keeps_the_verdict(store):
    reached = []
    for project in _runs("better"):
        _, first = _pipeline(store, project)
        assert first is not None and first.verdict == PROMOTE
        reached.append(int((first.inputs.query.until - sim.START).total_seconds()))
    print(f"(better) 82% -> 93% everywhere: PROMOTE after a median {statistics.median(reached):.0f}"
          f" pairs (from {min(reached)} to {max(reached)})")
    assert max(reached) <= PAIRS

    # the same looks through a rollout: the first decisive verdict is final, with its evidence
    project = _runs("better")[0]
    rollout = R.start_rollout(store, R.RolloutSpec(sim.BASE_MODEL, sim.CANDIDATE_MODEL,
                                                   started_at=sim.START), project,
                              now=sim.START + timedelta(seconds=1))
    looks = [R.rollout_status(store, project, rollout["id"], now=look) for look in LOOKS]
    verdicts = [look["verdict"] for look in looks]
    decided = verdicts.index(PROMOTE)
    assert decided * LOOK_EVERY + LOOK_EVERY == reached[0]
    assert set(verdicts[decided:]) == {PROMOTE} and set(verdicts[:decided]) == {HOLD}
    assert all(look["final"] and look["report"]["window"] == looks[decided]["report"]["window"]
               for look in looks[decided:])
    history = R.rollout_looks(store, project, rollout["id"])
    assert [h["verdict"] for h in history] == verdicts[:decided + 1]  # final looks not re-judged
    assert history[-1]["final"] and looks[-1]["decided_at"].startswith(
        LOOKS[decided].strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_clear_improvement_everywhere_promotes(store, tmp_path, capsys, monkeypatch):
    """With spans too: error and parser-error rates at zero must be ruled out above their
    min_effect in every cohort and route, which takes the most pairs."""
    monkeypatch.setenv("COLUMNS", "160")
    better = sim.Scenario(pairs=4000, base_pass=0.82, candidate_pass={c: 0.93 for c in
                                                                      sim.COHORTS})
    requests = sim.simulate("better", better, seed=77)
    sim.insert(store, "eval_results", sim.eval_columns(requests))
    sim.insert(store, "otel_traces", sim.span_columns(requests, seed=78, latency_ms=(800, 760),
                                                      output_tokens=(220, 200)))
    sim.insert(store, "eval_results", sim.pairwise_columns(requests, win_rate=0.5,
                                                           tie_rate=0.3, seed=79))
    code = compare_command.main(_command(store, "better", "--until", "2025-03-02",
                                         "--by", "cohort,route"))
    table = capsys.readouterr().out
    assert code == 0
    assert "PROMOTE" in table and "json_validation" in table and "route=billing" in table
    page = tmp_path / "report.html"
    assert compare_command.main(_command(store, "better", "--until", "2025-03-02", "--format",
                                         "html", "-o", str(page), "--no-record")) == 0
    assert "<svg" in page.read_text() and "PROMOTE" in page.read_text()
    report = compare(load_inputs(store, _query("better")), default_policy())
    assert report.verdict == PROMOTE
    assert {r.metric for r in report.results} >= {"json_validation", "latency_p50",
                                                  "output_tokens", "pairwise_win_rate"}


def test_canary_split_traffic_counts_fallbacks_and_thumbs_down(store):
    split = sim.Split(requests=3000, fallback_rate=0.06, thumbs_down=(0.1, 0.2))
    for table, columns in sim.split_columns("split", split, seed=90).items():
        sim.insert(store, table, columns)
    report = compare(load_inputs(store, _query("split")), default_policy())
    overall = {r.metric: r for r in report.results if r.slice.name == "all"}

    fallback = overall["fallback_rate"]
    assert fallback.mode == "unpaired" and fallback.base.value == 0.0
    assert fallback.candidate.n == pytest.approx(1500, abs=120)
    assert fallback.candidate.value == pytest.approx(0.06, abs=0.02)
    assert fallback.classification == "regression"

    thumbs = overall["thumbs_down_rate"]
    assert thumbs.base.value == pytest.approx(0.1, abs=0.03)
    assert thumbs.candidate.value == pytest.approx(0.2, abs=0.04)
    assert thumbs.base.n + thumbs.candidate.n == pytest.approx(1500, abs=120)
    assert thumbs.classification == "regression" and not thumbs.policy.critical

    assert overall["error_rate"].candidate.value == pytest.approx(0.06, abs=0.02)
    assert report.verdict == ROLLBACK
    assert {"fallback_rate", "error_rate"} <= {r.metric for r in report.reasons
                                               if r.kind == "critical_regression"}
