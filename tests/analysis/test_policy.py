"""Policy files and what users type for windows and slices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from canarytrace.analysis.policy import PolicyError, default_policy, load_policy, parse_policy
from canarytrace.analysis.window import parse_slicings, parse_time, parse_window

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_default_policy_makes_pass_rates_critical_and_latency_tolerant():
    policy = default_policy()
    json_validation = policy.for_metric("json_validation", "pass_rate")
    assert json_validation.critical and json_validation.bad == "down"
    assert json_validation.min_effect == pytest.approx(0.02)
    latency = policy.for_metric("latency_p50")
    assert not latency.critical and latency.bad == "up" and latency.tolerance == pytest.approx(0.1)
    assert policy.for_metric("reward_score", "score").critical is False
    assert (policy.pass_threshold, policy.marginal_threshold) == (95, 75)


def test_a_user_file_changes_only_what_it_names(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("pass_threshold: 90\nmetrics:\n  json_validation: {min_effect: 0.05}\n"
                    "  latency_p50: {critical: true}\n")
    policy = load_policy(path)
    assert policy.pass_threshold == 90 and policy.marginal_threshold == 75
    json_validation = policy.for_metric("json_validation", "pass_rate")
    assert json_validation.min_effect == pytest.approx(0.05) and json_validation.critical
    latency = policy.for_metric("latency_p50")
    assert latency.critical and latency.tolerance == pytest.approx(0.1)
    assert policy.source == str(path)


@pytest.mark.parametrize(("text", "message"), [
    ("alpha: 2", "alpha: 2 is greater than or equal to the maximum of 1"),
    ("metrics: {latency_p50: {bad: sideways}}", "metrics.latency_p50.bad: 'sideways' is not one"),
    ("metrics: {latency_p50: {weight: -1}}", "metrics.latency_p50.weight: -1 is less than"),
    ("pass_treshold: 90", "'pass_treshold' was unexpected"),
    ("marginal_threshold: 99", "marginal_threshold (99) is above pass_threshold (95)"),
    ("[1, 2", "not valid YAML"),
    ("- 1\n- 2", "is not of type 'object'"),
    ("alpha: .nan", "alpha: nan is not a finite number"),
    ("metrics: {error_rate: {min_effect: .inf}}", "metrics.error_rate.min_effect: inf is not"),
    ("bootstrap_resamples: 100000000", "100000000 is greater than the maximum of 20000"),
    ("distribution_sample: 10000000", "is greater than the maximum of 50000"),
    ("metrics: {error_rate: {min_samples: 500, max_samples: 100}}", "min_samples (500) is above"),
    ("unjudged_slices: skip", "'skip' is not one of ['wait', 'list']"),
    ("seed: -1", "seed: -1 is less than the minimum of 0"),
    ("a: &x [1, 2]\nb: *x", "aliases (*name) are not allowed"),
])
def test_a_bad_policy_names_the_field_and_the_problem(text, message):
    with pytest.raises(PolicyError) as error:
        parse_policy(text, source="mine.yaml")
    assert str(error.value).startswith("mine.yaml: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_policy_file_is_one_clear_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy file .*nope.yaml"):
        load_policy(tmp_path / "nope.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("# politique par défaut\nalpha: 0.1\n".encode("latin-1"))
    with pytest.raises(PolicyError, match="cannot read policy file .*latin1.yaml: not UTF-8"):
        load_policy(latin1)


def test_times_are_iso_now_or_durations_back():
    assert parse_time("1h", NOW) == NOW - timedelta(hours=1)
    assert parse_time("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_time("7d", NOW) == NOW - timedelta(days=7)
    assert parse_time("now", NOW) == NOW
    assert parse_time("2025-02-01T10:00:00Z", NOW) == datetime(2025, 2, 1, 10, tzinfo=UTC)
    assert parse_time("2025-02-01", NOW) == datetime(2025, 2, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="cannot read time 'yesterday'"):
        parse_time("yesterday", NOW)
    with pytest.raises(ValueError, match="the window is empty"):
        parse_window("now", "1h", NOW)


def test_slicings_are_columns_or_combinations():
    assert parse_slicings("route,cohort") == (("route",), ("cohort",))
    assert parse_slicings("route+cohort, service") == (("route", "cohort"), ("service",))
    assert parse_slicings("none") == ()
    with pytest.raises(ValueError, match="cannot slice by 'model'"):
        parse_slicings("cohort,model")
    with pytest.raises(ValueError, match="names a dimension twice"):
        parse_slicings("cohort+cohort")


def test_a_huge_policy_document_is_refused_before_it_costs_time():
    text = "metrics: {latency_p50: {weight: [" + ", ".join(["1"] * 10_001) + "]}}"
    with pytest.raises(PolicyError, match="more than 10000 values"):
        parse_policy(text, source="big.yaml")


def test_unjudged_slices_defaults_to_wait_and_can_list():
    assert default_policy().unjudged_slices == "wait"
    assert parse_policy("unjudged_slices: list").unjudged_slices == "list"
