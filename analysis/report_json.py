"""The comparison report as JSON: ``canarytrace compare --format json`` and ``GET /api/compare``.

The shape is stable (``schema_version`` 2, which added ``guarantee``, ``family`` and the
per-metric ``alpha`` and ``anytime_interval`` to version 1) and is checked by
``compare_report.schema.json`` next to this module. Fields:

- ``schema_version`` (2), ``generated_at`` (ISO-8601 UTC), ``project``, ``base_model``,
  ``candidate_model``, ``window`` {``since``, ``until``} (ISO-8601 UTC),
  ``slicings`` (list of lists of dimensions, e.g. ``[["cohort"]]``).
- ``policy`` {``source``, ``alpha``, ``pass_threshold``, ``marginal_threshold``}.
- ``verdict``: ``PROMOTE`` | ``HOLD`` | ``ROLLBACK``; ``exit_code`` 0 | 10 | 11;
  ``score`` 0-100 or null (nothing judged yet); ``needed_pairs``: for a HOLD, the most extra
  pairs (or samples per arm) a critical metric needs, else null.
- ``reasons``: list of {``kind``, ``message``, ``metric``, ``slice``}; ``kind`` is one of
  critical_regression, regression, score, insufficient_data, no_evaluators, no_data, settled,
  unjudged (a slice PROMOTE did not judge: under min_samples, ``unjudged_slices: list``).
- ``metrics``: one entry per metric x slice:
  ``metric``, ``kind`` (rate | mean | shift | quantile | win_rate), ``slice`` ("all",
  "cohort=gold", "route=billing/cohort=gold"), ``slice_dims`` {dimension: value},
  ``critical``, ``weight``, ``bad_direction`` (up | down), ``threshold`` (min_effect, or the
  relative tolerance for shift/quantile), ``mode`` (paired | unpaired | distribution | judge),
  ``n`` (pairs, or the smaller arm), ``base`` and ``candidate`` {``n``, ``value``,
  ``interval``} (a rate, mean, median or p99 with its interval; the base of a win rate is
  empty), ``difference`` (candidate - base; relative for shift/quantile; win rate - 0.5) and
  ``difference_interval``, ``relative``, ``p_value`` (fixed-horizon test: exact McNemar,
  Mann-Whitney U, t-test), ``p_anytime`` (always-valid p of a regression), ``p_adjusted``
  (Holm), ``classification`` (regression | improvement | pass | inconclusive | insufficient |
  nodata), ``settled``, ``needed`` (extra samples to settle), ``details`` (test-specific).
  ``alpha`` (this cell's share of alpha in the fixed ROLLBACK family, for rates, scores and
  win rates), ``anytime_interval`` (the confidence sequence of the difference: its harm end
  at the policy's alpha, which PROMOTE needs below the threshold, its other end at the
  cell's ``alpha``). On paired metrics the arms' values are over the same pairs as the
  difference (``n`` on each arm says how many).
- ``distributions``: {``latency_ms``: {``edges``, ``base``, ``candidate``}} histogram counts
  on shared log-spaced bins, or {} without latency data.
- ``guarantee`` {``anytime``, ``window`` (rollout | anchored | sliding), ``message``}: what
  repeated looks keep; a sliding ``--since`` keeps nothing.
- ``family``: the fixed alpha split (``analysis/family.py``); ``rollout_id`` when the report
  is a rollout's.

Rates, win rates and their differences are fractions (0.02 = 2 points); latency is in ms.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import jsonschema
import numpy as np

from canarytrace.analysis.compare import ComparisonReport, MetricResult

SCHEMA_VERSION = 2

GUARANTEES = {
    "rollout": "anytime-valid: this rollout's family was fixed at its start; however often it "
               "is looked at, a false ROLLBACK and a false PROMOTE each have probability at "
               "most alpha, and its first decisive verdict is final",
    "anchored": "anytime-valid while --since stays fixed (e.g. the canary's start): looking "
                "again as data arrives keeps a false ROLLBACK and a false PROMOTE each at "
                "most alpha",
    "sliding": "a relative --since slides: repeated looks at a sliding window judge a "
               "different sample each time and carry no anytime guarantee; anchor --since at "
               "the canary's start or use 'canarytrace rollout'",
}


def report_to_dict(report: ComparisonReport, window: str = "anchored") -> dict[str, Any]:
    """The JSON report; ``window`` is how the window was chosen: rollout, anchored or sliding
    (it decides what ``guarantee`` says)."""
    query = report.inputs.query
    if report.family.fixed:
        window = "rollout"
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _iso(report.generated_at),
        "project": query.project,
        "base_model": query.base_model,
        "candidate_model": query.candidate_model,
        "window": {"since": _iso(query.since), "until": _iso(query.until)},
        "slicings": [list(s) for s in query.slicings],
        "policy": report.policy.summary(),
        "verdict": report.verdict,
        "exit_code": report.exit_code,
        "score": _number(report.score),
        "needed_pairs": report.needed_pairs,
        "reasons": [{"kind": r.kind, "message": r.message, "metric": r.metric,
                     "slice": r.slice} for r in report.reasons],
        "metrics": [_result_to_dict(r) for r in report.results],
        "distributions": report.distributions,
        "guarantee": {"anytime": window != "sliding", "window": window,
                      "message": GUARANTEES[window]},
        "family": report.family.to_dict(),
    }


def _result_to_dict(result: MetricResult) -> dict[str, Any]:
    return {
        "metric": result.metric,
        "kind": result.kind,
        "slice": result.slice.name,
        "slice_dims": dict(result.slice.dims),
        "critical": result.policy.critical,
        "weight": result.policy.weight,
        "bad_direction": result.policy.bad,
        "threshold": result.threshold,
        "mode": result.mode,
        "n": int(result.n),
        "base": _arm(result.base),
        "candidate": _arm(result.candidate),
        "difference": _number(result.difference),
        "difference_interval": _interval(result.interval),
        "relative": result.relative,
        "p_value": _number(result.p_value),
        "p_anytime": _number(result.p_anytime),
        "p_adjusted": _number(result.p_adjusted),
        "classification": result.classification,
        "settled": result.settled,
        "needed": result.needed,
        "details": _clean(result.details),
        "alpha": _number(result.alpha),
        "anytime_interval": _interval(result.anytime_interval),
    }


def _arm(arm: Any) -> dict[str, Any]:
    return {"n": int(arm.n), "value": _number(arm.value), "interval": _interval(arm.interval)}


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: they become null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _interval(interval: tuple[float, float] | None) -> list[float | None] | None:
    return None if interval is None else [_number(interval[0]), _number(interval[1])]


def _clean(value: Any) -> Any:
    """Details as plain JSON: numpy numbers become Python numbers, NaN/infinity null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    return _number(float(value))


def _iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def shown_interval(row: dict[str, Any]) -> list[float | None] | None:
    """The interval to show next to a metric's change: the anytime one the verdict uses when
    there is one (rates, scores, win rates), else the fixed-horizon one."""
    return row.get("anytime_interval") or row["difference_interval"]


def arm_text(row: dict[str, Any], arm: str, value: str) -> str:
    """An arm's value with its n when that differs from the row's n, so a rate pair and a
    difference taken over different samples are never shown as if they were one."""
    n = row[arm]["n"]
    return value if n == row["n"] or row[arm]["value"] is None else f"{value} (n={n})"


def report_schema() -> dict[str, Any]:
    text = resources.files("canarytrace.analysis").joinpath("compare_report.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


def validate_report(data: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when ``data`` is not a schema_version 2 report."""
    jsonschema.Draft202012Validator(report_schema()).validate(data)
