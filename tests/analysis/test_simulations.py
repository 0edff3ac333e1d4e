"""Seeded canary simulations through the real store (chDB) and the real ``canarytrace compare``.

What goes where: every simulation's spans/evaluations are written to one embedded store with
column-oriented inserts (a project per simulation). Verdicts come from the real loader
(``load_inputs``: the SQL) and the real engine. Repeated checking (a) loads each simulation
once and re-runs the engine on what an ``--until`` at each look would see (``up_to``); a
subset of those looks also runs the real command in-process with ``--until`` and must agree.
The final verdicts of (b) and (c) also come from the command (in-process; the subprocess run
is in test_compare_process.py).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from canarytrace.analysis import compare_command
from canarytrace.analysis.compare import PROMOTE, ROLLBACK, compare
from canarytrace.analysis.inputs import ComparisonQuery, load_inputs
from canarytrace.analysis.policy import default_policy
from canarytrace.analysis.report_json import validate_report
from canarytrace.store.client import Store
from tests.analysis import simulate as sim

LOOK_EVERY = 50
NULL_RUNS = 200
DROP_RUNS = 100
PAIRS = 2000
DROP = sim.Scenario(pairs=PAIRS, candidate_pass={"pro": 0.8})  # 10 points in one of five


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("compare-sims") / "db"
    store = Store.from_url(f"chdb://{path}")
    store.migrate()
    null = [sim.simulate(f"null-{i:03d}", sim.Scenario(pairs=PAIRS), seed=i)
            for i in range(NULL_RUNS)]
    drop = [sim.simulate(f"drop-{i:03d}", DROP, seed=10_000 + i) for i in range(DROP_RUNS)]
    sim.insert(store, "eval_results", sim.merge([sim.eval_columns(r) for r in null + drop]))
    store.path = path
    yield store
    store.close()


def _query(project: str) -> ComparisonQuery:
    return ComparisonQuery(sim.BASE_MODEL, sim.CANDIDATE_MODEL, sim.START,
                           sim.START + timedelta(days=1), project)


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


def test_no_true_difference_checked_every_50_pairs_rarely_rolls_back(store, tmp_path):
    policy = default_policy()
    looks = [sim.START + timedelta(seconds=LOOK_EVERY * k) for k in range(1, PAIRS // LOOK_EVERY
                                                                         + 1)]
    rollbacks, naive, final_verdicts = 0, 0, []
    for run in range(NULL_RUNS):
        inputs = load_inputs(store, _query(f"null-{run:03d}"))
        reports = [compare(inputs.up_to(look), policy) for look in looks]
        verdicts = [report.verdict for report in reports]
        rollbacks += ROLLBACK in verdicts
        final_verdicts.append(verdicts[-1])
        # what re-checking would do with the fixed-horizon test (McNemar) instead
        naive += any(r.p_value is not None and r.p_value < 0.05 and r.difference < 0
                     for report in reports for r in report.results if r.slice.name == "all")
        if run < 2:  # the real command with --until sees exactly what up_to saw
            for index in (3, 19, len(looks) - 1):
                code, report = _run_command(store, f"null-{run:03d}", tmp_path, "--until",
                                            looks[index].isoformat(), "--no-record")
                assert report["verdict"] == verdicts[index]
                assert code == {"PROMOTE": 0, "HOLD": 10, "ROLLBACK": 11}[verdicts[index]]
    print(f"(a) no difference, {len(looks)} looks each: ROLLBACK in {rollbacks} of {NULL_RUNS} "
          f"runs (a fixed-horizon McNemar test re-checked the same way: {naive}); final "
          f"verdicts {dict((v, final_verdicts.count(v)) for v in set(final_verdicts))}")
    assert rollbacks <= 0.05 * NULL_RUNS
    assert naive > 0.05 * NULL_RUNS  # the looks would inflate a classic test past alpha
    assert final_verdicts.count(PROMOTE) >= 0.5 * NULL_RUNS  # no difference: mostly settled


def test_a_ten_point_drop_in_one_cohort_rolls_back_naming_it(store, tmp_path):
    policy = default_policy()
    named = 0
    for run in range(DROP_RUNS):
        report = compare(load_inputs(store, _query(f"drop-{run:03d}")), policy)
        named += report.verdict == ROLLBACK and any(
            r.kind == "critical_regression" and r.metric == "json_validation"
            and r.slice == "cohort=pro" for r in report.reasons)
    print(f"(b) 10-point drop in cohort pro: ROLLBACK naming it in {named} of {DROP_RUNS} runs")
    assert named >= 0.9 * DROP_RUNS
    for run in range(3):
        code, report = _run_command(store, f"drop-{run:03d}", tmp_path, "--until",
                                    (sim.START + timedelta(days=1)).isoformat())
        assert code == 11 and report["verdict"] == ROLLBACK
        assert {"metric": "json_validation", "slice": "cohort=pro"}.items() <= next(
            r for r in report["reasons"] if r["slice"] == "cohort=pro").items()
    history = store.query_verdicts("drop-000")
    assert [row["Verdict"] for row in history] == [ROLLBACK]
    assert json.loads(history[0]["Report"])["verdict"] == ROLLBACK


def test_a_clear_improvement_everywhere_promotes(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    better = sim.Scenario(pairs=PAIRS, base_pass=0.82, candidate_pass={c: 0.93 for c in
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
