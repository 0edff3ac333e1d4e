"""The per-rollout Prometheus metrics keep label cardinality within their documented limits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from canarytrace.analysis import rollouts
from canarytrace.collector import rollout_metrics
from canarytrace.store.client import Store

PROJECT = "support"


@pytest.fixture
def store(tmp_path):
    opened = Store.from_url(f"chdb://{tmp_path / 'db'}")
    opened.migrate()
    yield opened
    opened.close()


def eval_rows(base: str, candidate: str, cohorts: int, evaluators: int, per: int) -> list[dict]:
    """Results for ``per`` calls per arm, cohort and evaluator; the candidate fails a third."""
    now = time.time_ns()
    rows = []
    for e in range(evaluators):
        for c in range(cohorts):
            for arm, model in (("b", base), ("c", candidate)):
                for i in range(per):
                    rows.append({"Project": PROJECT, "SpanId": f"{arm}{e}-{c}-{i}",
                                 "TraceId": f"t{c}-{i}", "Evaluator": f"check_{e}",
                                 "Passed": not (arm == "c" and i % 3 == 0), "Model": model,
                                 "Cohort": f"cohort-{c:02d}" + "x" * 150 * (c == 0),
                                 "SpanTimestamp": now - 1_000_000 * (i + 1)})
    return rows


def test_limits_fold_small_cohorts_and_count_what_they_leave_out(store, monkeypatch):
    monkeypatch.setattr(rollout_metrics, "MAX_COHORTS", 3)
    monkeypatch.setattr(rollout_metrics, "MAX_EVALUATORS", 2)
    monkeypatch.setattr(rollout_metrics, "MAX_ROLLOUTS", 1)
    started = datetime.now(UTC) - timedelta(minutes=5)
    for name in ("older", "newer"):
        spec = rollouts.RolloutSpec("base-7b", f"tuned-{name}", name=name, started_at=started)
        rollouts.start_rollout(store, spec, PROJECT)
        started += timedelta(seconds=1)
    store.insert_eval_results(eval_rows("base-7b", "tuned-newer", cohorts=6, evaluators=3,
                                        per=4))
    text = rollout_metrics.RolloutMetrics(store).render(PROJECT).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}

    names = {s.labels["name"] for s in families["canarytrace_rollout_verdict"].samples}
    assert names == {"newer"}  # one rollout shown: the newest
    series = families["canarytrace_rollout_eval_samples"].samples
    assert {s.labels["evaluator"] for s in series} == {"check_0", "check_1"}
    cohorts = {s.labels["cohort"] for s in series}
    assert len(cohorts) == 4 and rollout_metrics.OTHER_COHORT in cohorts
    assert all(len(c) <= rollout_metrics.MAX_LABEL_CHARS for c in cohorts)
    counts = {(s.labels["evaluator"], s.labels["variant"], s.labels["cohort"]): s.value
              for s in series}
    assert counts[("check_0", "candidate", rollout_metrics.OTHER_COHORT)] == 3 * 4
    assert sum(v for (e, arm, _), v in counts.items() if e == "check_0" and arm == "base") == 24
    ratios = {(s.labels["evaluator"], s.labels["variant"], s.labels["cohort"]): s.value
              for s in families["canarytrace_rollout_eval_fail_ratio"].samples}
    assert ratios[("check_1", "candidate", rollout_metrics.OTHER_COHORT)] == pytest.approx(0.5)
    assert ratios[("check_1", "base", rollout_metrics.OTHER_COHORT)] == 0.0
    (dropped,) = families["canarytrace_rollout_series_dropped"].samples
    assert dropped.value == 1 + 6 * 2  # one rollout, and check_2's series of both arms
    assert len(families["canarytrace_rollout_verdict"].samples) == 3


def test_a_store_outage_keeps_metrics_answering(store):
    metrics = rollout_metrics.RolloutMetrics(store, refresh_s=0)
    rollouts.start_rollout(store, rollouts.RolloutSpec("base-7b", "tuned"), PROJECT)
    assert b'canarytrace_rollout_metrics_up{project="support"} 1.0' in metrics.render(PROJECT)
    store.close()
    text = metrics.render(PROJECT).decode()
    assert 'canarytrace_rollout_metrics_up{project="support"} 0.0' in text
    assert 'canarytrace_rollout_verdict{' in text  # the last values, still served
