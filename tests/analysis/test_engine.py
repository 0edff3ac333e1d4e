"""The comparison engine on per-request samples: verdicts, reasons and the report formats."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime

import numpy as np
import pytest
from rich.console import Console

from canarytrace.analysis import inputs as I
from canarytrace.analysis.compare import HOLD, PROMOTE, ROLLBACK, compare
from canarytrace.analysis.policy import default_policy, parse_policy
from canarytrace.analysis.report_html import render_html
from canarytrace.analysis.report_json import report_to_dict, validate_report
from canarytrace.analysis.report_table import render_table

COHORTS = ("edu", "enterprise", "free", "internal", "pro")
QUERY = I.ComparisonQuery("base-7b", "tuned-7b", datetime(2025, 3, 1, tzinfo=UTC),
                          datetime(2025, 3, 2, tzinfo=UTC))


def _pass_rates(n: int, base: float, candidate: dict[str, float] | float, seed: int = 0,
                name: str = "json_validation", paired: bool = True) -> I.MetricSamples:
    """Correlated pass/fail outcomes of ``n`` requests spread over five cohorts."""
    rng = np.random.default_rng(seed)
    cohort = rng.integers(0, len(COHORTS), n)
    rates = np.array([candidate.get(c, base) if isinstance(candidate, dict) else candidate
                      for c in COHORTS])[cohort]
    draw = rng.random(n)
    other = np.where(rng.random(n) < 0.8, draw, rng.random(n))
    base_passed = (draw < base).astype(float)
    candidate_passed = (other < rates).astype(float)
    if not paired:  # canary split: each request went to one arm only
        to_candidate = rng.random(n) < 0.5
        base_passed[to_candidate] = np.nan
        candidate_passed[~to_candidate] = np.nan
    return I.MetricSamples(name, I.RATE, np.arange(n, dtype=float), base_passed,
                           candidate_passed, np.full(n, paired), _cohorts(cohort),
                           evaluator_kind="pass_rate")


def _cohorts(codes: np.ndarray) -> dict[str, I.Dimension]:
    return {"cohort": I.Dimension(codes.astype(np.int32), COHORTS)}


def _latency(n: int, base_ms: float, candidate_ms: float, seed: int = 1) -> list[I.MetricSamples]:
    rng = np.random.default_rng(seed)
    cohort = rng.integers(0, len(COHORTS), n)
    base = rng.lognormal(np.log(base_ms), 0.3, n)
    candidate = rng.lognormal(np.log(candidate_ms), 0.3, n)
    time = np.arange(n, dtype=float)
    return [I.MetricSamples(name, kind, time, base, candidate, np.ones(n, bool), _cohorts(cohort))
            for name, kind in ((I.LATENCY_P50, I.SHIFT), (I.LATENCY_P99, I.QUANTILE))]


def _run(*metrics: I.MetricSamples, policy_text: str | None = None):
    policy = parse_policy(policy_text) if policy_text else default_policy()
    return compare(I.ComparisonInputs(QUERY, list(metrics)), policy)


def _result(report, metric: str, slice_name: str = "all"):
    return next(r for r in report.results if r.metric == metric and r.slice.name == slice_name)


def test_a_drop_in_one_cohort_is_a_rollback_naming_metric_and_cohort():
    report = _run(_pass_rates(3000, 0.9, {"pro": 0.78}), *_latency(3000, 800, 800))
    assert report.verdict == ROLLBACK and report.exit_code == 11
    named = {(r.metric, r.slice) for r in report.reasons if r.kind == "critical_regression"}
    assert ("json_validation", "cohort=pro") in named
    assert all(s != "cohort=edu" for _, s in named)
    pro = _result(report, "json_validation", "cohort=pro")
    assert pro.classification == "regression" and pro.difference < -0.08
    assert pro.p_adjusted >= pro.p_anytime  # Holm never makes a p-value smaller


def test_a_clear_improvement_everywhere_is_a_promote():
    report = _run(_pass_rates(3000, 0.80, 0.92), *_latency(3000, 800, 790))
    assert report.verdict == PROMOTE and report.exit_code == 0
    assert report.score == 100
    assert _result(report, "json_validation").classification == "improvement"
    assert any(r.kind == "settled" and r.metric == "json_validation" for r in report.reasons)


def test_too_few_pairs_is_a_hold_that_says_how_many_more_are_needed():
    report = _run(_pass_rates(60, 0.9, 0.9))
    assert report.verdict == HOLD and report.exit_code == 10
    assert report.needed_pairs == 40
    assert "json_validation has 60 of 100" in report.reasons[0].message


def test_an_unsettled_metric_holds_with_an_estimate_of_the_pairs_still_needed():
    report = _run(_pass_rates(400, 0.7, 0.69, seed=4), *_latency(400, 800, 800))
    assert report.verdict == HOLD
    blocker = next(r for r in report.reasons if r.kind == "insufficient_data")
    assert blocker.metric == "json_validation" and blocker.slice == "all"
    assert "cannot rule out a 2.0 pts regression" in blocker.message
    assert report.needed_pairs and report.needed_pairs > 100
    assert re.search(r"about \d+ more pairs needed", blocker.message)


def test_a_noncritical_latency_regression_holds_below_the_pass_threshold():
    report = _run(_pass_rates(3000, 0.8, 0.92), *_latency(3000, 800, 1000))
    assert report.verdict == HOLD
    assert _result(report, "latency_p50").classification == "regression"
    assert report.score == pytest.approx(100 * 4 / 5)  # json 3 + p50 1 + p99 1; p50 regressed
    assert any(r.kind == "score" and "below the pass threshold" in r.message
               for r in report.reasons)


def test_many_noncritical_regressions_fall_below_the_marginal_threshold():
    heavy = "metrics: {latency_p50: {weight: 5}, latency_p99: {weight: 5}}"
    report = _run(_pass_rates(3000, 0.8, 0.8), *_latency(3000, 800, 1600), policy_text=heavy)
    assert report.verdict == ROLLBACK
    first = report.reasons[0]
    assert first.kind == "score" and "below the marginal threshold 75" in first.message


def test_no_evaluator_results_never_promotes():
    report = _run(*_latency(3000, 800, 700))
    assert report.verdict == HOLD
    assert any(r.kind == "no_evaluators" for r in report.reasons)


def test_canary_split_traffic_is_compared_unpaired():
    report = _run(_pass_rates(8000, 0.9, 0.8, paired=False))
    overall = _result(report, "json_validation")
    assert overall.mode == "unpaired" and overall.classification == "regression"
    assert overall.details["interval"].startswith("Newcombe")
    assert report.verdict == ROLLBACK


def test_a_losing_pairwise_judge_is_a_regression_of_the_win_rate():
    rng = np.random.default_rng(2)
    outcomes = rng.choice([0.0, 0.5, 1.0], size=1000, p=[0.5, 0.2, 0.3])
    judge = I.MetricSamples(I.PAIRWISE_WIN_RATE, I.WIN_RATE, np.arange(1000.0),
                            np.full(1000, np.nan), outcomes, np.zeros(1000, bool),
                            _cohorts(rng.integers(0, 5, 1000)))
    report = _run(_pass_rates(3000, 0.9, 0.9), judge)
    win = _result(report, I.PAIRWISE_WIN_RATE)
    assert win.candidate.value == pytest.approx((outcomes.sum()) / 1000)
    assert win.classification == "regression"
    assert win.details["wins"] + win.details["losses"] + win.details["ties"] == 1000


def test_holm_spans_every_critical_metric_and_slice_with_fixed_weights():
    report = _run(_pass_rates(3000, 0.9, {"pro": 0.8}),
                  _pass_rates(3000, 0.9, 0.9, seed=9, name="tool_selection"))
    tested = [r for r in report.results if r.p_adjusted is not None]
    assert {r.metric for r in tested} == {"json_validation", "tool_selection"}
    smallest = min(tested, key=lambda r: r.p_anytime / report.family.weight(r.metric,
                                                                            r.slice.name))
    weight = report.family.weight(smallest.metric, smallest.slice.name)
    assert smallest.p_adjusted == pytest.approx(min(1.0, smallest.p_anytime / weight))
    # the split spends at most alpha over every cell, seen or not yet seen
    assert sum(r.alpha for r in tested) <= report.policy.alpha
    assert all(r.alpha == pytest.approx(report.policy.alpha * report.family.weight(
        r.metric, r.slice.name)) for r in tested)


def test_up_to_sees_only_requests_started_before_the_cutoff():
    inputs = I.ComparisonInputs(QUERY, [_pass_rates(1000, 0.9, 0.9)])
    cut = inputs.up_to(datetime.fromtimestamp(250, UTC))
    assert cut.metrics[0].time.max() < 250 and cut.metrics[0].time.size == 250
    assert cut.query.until == datetime.fromtimestamp(250, UTC)


@pytest.fixture(scope="module")
def report_dict():
    report = _run(_pass_rates(3000, 0.9, {"pro": 0.78}), *_latency(3000, 800, 880))
    return report_to_dict(report)


def test_the_json_report_follows_its_schema(report_dict):
    validate_report(json.loads(json.dumps(report_dict)))
    assert report_dict["verdict"] == ROLLBACK and report_dict["exit_code"] == 11
    row = next(m for m in report_dict["metrics"] if m["slice"] == "cohort=pro"
               and m["metric"] == "json_validation")
    assert row["slice_dims"] == {"cohort": "pro"} and row["mode"] == "paired"
    assert report_dict["distributions"]["latency_ms"]["edges"]


def test_the_html_report_is_one_file_with_inline_plots(report_dict):
    page = render_html(report_dict)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 1 + len({m["metric"] for m in report_dict["metrics"]
                                         if m["difference_interval"]})
    assert "cohort=pro (n=" in page and "ROLLBACK" in page
    assert not re.search(r"<script|<link|src=|href=|@import|url\(", page)


def test_the_table_shows_the_verdict_and_every_slice(report_dict):
    console = Console(file=io.StringIO(), width=160, record=True)
    render_table(report_dict, console)
    text = console.export_text()
    assert "ROLLBACK" in text and "json_validation *" in text and "cohort=pro" in text
    assert "regression" in text


def test_a_score_evaluator_is_compared_by_its_mean_with_a_paired_bootstrap():
    rng = np.random.default_rng(12)
    base = rng.normal(0.0, 1.0, 2000)
    reward = I.MetricSamples("reward_score", I.MEAN, np.arange(2000.0), base,
                             base + rng.normal(0.3, 0.5, 2000), np.ones(2000, bool),
                             _cohorts(rng.integers(0, 5, 2000)), evaluator_kind="score")
    report = _run(_pass_rates(3000, 0.9, 0.9), reward)
    overall = _result(report, "reward_score")
    assert overall.mode == "paired" and not overall.policy.critical
    assert overall.difference == pytest.approx(0.3, abs=0.05)
    low, high = overall.interval
    assert low < overall.difference < high and high - low < 0.1
    assert overall.classification == "improvement"


def test_no_data_at_all_is_a_hold_with_a_valid_report():
    report = _run()
    assert report.verdict == HOLD and report.score is None and report.results == []
    assert report.reasons[0].kind == "no_data"
    validate_report(report_to_dict(report))
    assert "No metric has enough data" in render_html(report_to_dict(report))


def _with_small_cohort(n: int, small: int, seed: int = 3) -> I.MetricSamples:
    """A clear improvement in five cohorts, plus ``small`` pairs in a sixth cohort "rare"."""
    metric = _pass_rates(n, 0.80, 0.95, seed=seed)
    codes = metric.dims["cohort"].codes.copy()
    codes[:small] = len(COHORTS)
    dims = {"cohort": I.Dimension(codes, (*COHORTS, "rare"))}
    return I.MetricSamples(metric.name, metric.kind, metric.time, metric.base, metric.candidate,
                           metric.paired, dims, metric.evaluator_kind)


def test_a_slice_under_min_samples_waits_or_is_listed_unjudged():
    metric = _with_small_cohort(4000, 40)
    waiting = _run(metric)
    assert waiting.verdict == HOLD
    blocker = next(r for r in waiting.reasons if r.slice == "cohort=rare")
    assert "not judged yet" in blocker.message and "waiting" in blocker.message
    listed = _run(metric, policy_text="unjudged_slices: list")
    assert listed.verdict == PROMOTE
    unjudged = [r for r in listed.reasons if r.kind == "unjudged"]
    assert [(r.metric, r.slice) for r in unjudged] == [("json_validation", "cohort=rare")]
    assert "40 of 100 pairs" in unjudged[0].message


def test_promote_needs_every_judged_slice_to_rule_out_harm():
    """The candidate is better overall, but cohort pro (about 800 pairs) may be 4 points worse:
    "all" alone would promote; the slice keeps it on HOLD, naming the slice."""
    report = _run(_pass_rates(4000, 0.80, {**{c: 0.9 for c in COHORTS}, "pro": 0.77}, seed=6))
    overall = _result(report, "json_validation")
    pro = _result(report, "json_validation", "cohort=pro")
    assert overall.settled and not pro.settled
    assert report.verdict == HOLD
    assert any(r.kind == "insufficient_data" and r.slice == "cohort=pro"
               for r in report.reasons)


def test_paired_rates_and_their_difference_come_from_the_same_pairs():
    metric = _pass_rates(2000, 0.9, 0.85, seed=8)
    base, candidate = metric.base.copy(), metric.candidate.copy()
    candidate[:300] = np.nan  # these requests have no candidate result: not pairs
    base[:300] = 1.0
    paired = ~np.isnan(base) & ~np.isnan(candidate)
    metric = I.MetricSamples(metric.name, metric.kind, metric.time, base, candidate, paired,
                             metric.dims, metric.evaluator_kind)
    overall = _result(_run(metric), "json_validation")
    assert overall.n == overall.base.n == overall.candidate.n == 1700
    assert overall.candidate.value - overall.base.value == pytest.approx(overall.difference)
    assert overall.details["unpaired_left_out"] == 300


def test_a_sliding_window_says_repeated_looks_carry_no_guarantee():
    report = _run(_pass_rates(500, 0.9, 0.9))
    sliding = report_to_dict(report, window="sliding")
    assert sliding["guarantee"]["anytime"] is False
    assert "no anytime guarantee" in sliding["guarantee"]["message"]
    validate_report(sliding)
    console = Console(file=io.StringIO(), width=160, record=True)
    render_table(sliding, console)
    assert "no anytime guarantee" in console.export_text()
    assert report_to_dict(report)["guarantee"]["window"] == "anchored"
    low, high = _result(report, "json_validation").anytime_interval
    assert low < 0 < high  # no difference: the sequence brackets zero
