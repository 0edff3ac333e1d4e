"""Per-rollout Prometheus metrics, appended to ``GET /metrics`` for SRE alerting.

For each shown rollout of the scraper's project (its Bearer key's; every rollout of the
``default`` project when the collector has no keys; none for an anonymous scrape of a
collector that has keys):

- ``canarytrace_rollout_verdict{verdict}`` 1 for the current verdict, 0 for the other two
- ``canarytrace_rollout_score``, ``canarytrace_rollout_pairs``, ``canarytrace_rollout_final``,
  ``canarytrace_rollout_start_time_seconds``
- ``canarytrace_rollout_eval_fail_ratio`` and ``canarytrace_rollout_eval_samples`` per
  evaluator x variant (base/candidate: the rollout's two models) x cohort, over its window

Label cardinality is bounded: at most ``MAX_ROLLOUTS`` rollouts (the newest active ones, and
those decided in the last ``DECIDED_SHOWN_S``), ``MAX_EVALUATORS`` evaluators and
``MAX_COHORTS`` cohorts per rollout (the largest; the rest are summed into cohort
``OTHER_COHORT``), label values cut at ``MAX_LABEL_CHARS``.
``canarytrace_rollout_series_dropped`` counts what the limits left out. Each refresh is a
recorded look (the same verdict Argo and Flagger get), at most one per ``REFRESH_S``; between
refreshes a scrape is served from the cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector

from canarytrace import attributes as A
from canarytrace.analysis import rollouts
from canarytrace.analysis.compare import HOLD, PROMOTE, ROLLBACK
from canarytrace.collector.keys import Unauthorized
from canarytrace.collector.state import collector_of
from canarytrace.store import gate_metrics
from canarytrace.store.timestamps import to_ns

logger = logging.getLogger("canarytrace.collector")

MAX_ROLLOUTS = 20
MAX_EVALUATORS = 20
MAX_COHORTS = 20
MAX_LABEL_CHARS = 100
OTHER_COHORT = "_other"
DECIDED_SHOWN_S = 3600.0
REFRESH_S = 30.0
VERDICTS = (PROMOTE, HOLD, ROLLBACK)
ROLLOUT_LABELS = ("project", "rollout", "name", "base_model", "candidate_model")
EVAL_LABELS = ("project", "rollout", "name", "evaluator", "variant", "cohort")


def _label(value: Any) -> str:
    return str(value if value is not None else "")[:MAX_LABEL_CHARS]


class _Families(PromCollector):
    """A fixed list of metric families, registered once to be rendered."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class RolloutMetrics:
    """Computes and caches the per-rollout families of each project."""

    def __init__(self, store: Any, refresh_s: float = REFRESH_S) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._cache: dict[str, tuple[float, list[Metric]]] = {}
        self._lock = threading.Lock()

    def render(self, project: str) -> bytes:
        """The exposition text of ``project``'s rollout metrics."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(self.families(project)))
        return generate_latest(registry)

    def families(self, project: str) -> list[Metric]:
        with self._lock:
            cached = self._cache.get(project)
            if cached is not None and time.monotonic() - cached[0] < self.refresh_s:
                return cached[1]
            try:
                families = self._compute(project)
            except Exception as exc:  # noqa: BLE001 - /metrics must answer during an outage
                logger.warning("rollout metrics of project %s: %s", project, exc)
                families = [*(cached[1][:-1] if cached else []), _up(project, 0)]
            self._cache[project] = (time.monotonic(), families)
            return families

    def _compute(self, project: str) -> list[Metric]:
        shown, dropped = shown_rollouts(self.store, project)
        statuses = [rollouts.rollout_status(self.store, project, r["id"]) for r in shown]
        verdict = GaugeMetricFamily("canarytrace_rollout_verdict",
                                    "1 for the rollout's current verdict, 0 for the others",
                                    labels=[*ROLLOUT_LABELS, "verdict"])
        score = _gauge("canarytrace_rollout_score", "The rollout's score (0-100)")
        pairs = _gauge("canarytrace_rollout_pairs", "Requests judged so far")
        final = _gauge("canarytrace_rollout_final", "1 once the verdict is final")
        start = _gauge("canarytrace_rollout_start_time_seconds", "When the rollout started")
        ratio = GaugeMetricFamily("canarytrace_rollout_eval_fail_ratio",
                                  "Share of evaluated calls that failed, over the rollout",
                                  labels=list(EVAL_LABELS))
        samples = GaugeMetricFamily("canarytrace_rollout_eval_samples",
                                    "Evaluated calls (with a pass/fail verdict) over the rollout",
                                    labels=list(EVAL_LABELS))
        for status in statuses:
            labels = [_label(project), _label(status["id"]), _label(status["name"]),
                      _label(status["base_model"]), _label(status["candidate_model"])]
            for value in VERDICTS:
                verdict.add_metric([*labels, value], float(status.get("verdict") == value))
            if status.get("score") is not None:
                score.add_metric(labels, float(status["score"]))
            pairs.add_metric(labels, float(status.get("pairs") or 0))
            final.add_metric(labels, float(bool(status.get("final"))))
            start.add_metric(labels, _iso(status["started_at"]).timestamp())
            for row in eval_series(self.store, project, status):
                if row is None:
                    dropped += 1
                    continue
                key = [*labels[:3], *map(_label, row[:3])]
                ratio.add_metric(key, row[3] / row[4])
                samples.add_metric(key, float(row[4]))
        lost = _gauge("canarytrace_rollout_series_dropped",
                      "Rollouts and evaluator x cohort series left out by the label limits",
                      labels=["project"])
        lost.add_metric([_label(project)], float(dropped))
        return [verdict, score, pairs, final, start, ratio, samples, lost, _up(project, 1)]


def _gauge(name: str, documentation: str,
           labels: Iterable[str] = ROLLOUT_LABELS) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _up(project: str, value: int) -> GaugeMetricFamily:
    up = _gauge("canarytrace_rollout_metrics_up",
                "1 when the last refresh of the rollout metrics succeeded", labels=["project"])
    up.add_metric([_label(project)], float(value))
    return up


def shown_rollouts(store: Any, project: str,
                   now: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
    """The rollouts to expose (active, or decided within DECIDED_SHOWN_S), newest first, at
    most MAX_ROLLOUTS; and how many more there were."""
    now = now or datetime.now(UTC)
    recent = now - timedelta(seconds=DECIDED_SHOWN_S)
    shown = []
    for rollout in rollouts.list_rollouts(store, project, limit=1000):
        if rollout["state"] == rollouts.ACTIVE or (
                rollout["state"] == rollouts.DECIDED and rollout["decided_at"]
                and _iso(rollout["decided_at"]) >= recent):
            shown.append(rollout)
    return shown[:MAX_ROLLOUTS], max(len(shown) - MAX_ROLLOUTS, 0)


def eval_series(store: Any, project: str,
                status: dict[str, Any]) -> Iterator[tuple[str, str, str, int, int] | None]:
    """(evaluator, variant, cohort, failed, judged) per series within the limits, and None
    for each series the limits leave out (evaluators beyond MAX_EVALUATORS)."""
    window = status.get("window") or {}
    since = to_ns(_iso(window.get("since") or status["started_at"]))
    until = to_ns(_iso(window["until"])) if window.get("until") else time.time_ns()
    rows = gate_metrics.eval_counts(store, project, status["base_model"],
                                    status["candidate_model"], since, until)
    evaluators: dict[str, int] = {}
    cohorts: dict[str, int] = {}
    for row in rows:
        evaluators[row["evaluator"]] = evaluators.get(row["evaluator"], 0) + row["judged"]
        cohorts[row["cohort"]] = cohorts.get(row["cohort"], 0) + row["judged"]
    kept_evaluators = set(sorted(evaluators, key=lambda e: (-evaluators[e], e))[:MAX_EVALUATORS])
    kept_cohorts = set(sorted(cohorts, key=lambda c: (-cohorts[c], c))[:MAX_COHORTS])
    folded: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        if row["evaluator"] not in kept_evaluators:
            yield None
            continue
        cohort = row["cohort"] if row["cohort"] in kept_cohorts else OTHER_COHORT
        variant = A.VARIANT_CANDIDATE if row["is_candidate"] else A.VARIANT_BASE
        counts = folded.setdefault((row["evaluator"], variant, cohort), [0, 0])
        counts[0] += row["failed"]
        counts[1] += row["judged"]
    for (evaluator, variant, cohort), (failed, judged) in sorted(folded.items()):
        yield evaluator, variant, cohort, failed, judged


def _iso(text: str) -> datetime:
    """An ISO-8601 UTC time, with up to nanoseconds, as a datetime (microseconds)."""
    text = text.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def for_request(request: Any) -> bytes:
    """The rollout metrics a ``/metrics`` scrape may see: its key's project's (b"" for an
    anonymous scrape of a collector that has keys; 401 for a bad key)."""
    collector = collector_of(request)
    header = request.headers.get("authorization")
    try:
        project = collector.keys.project_for(header)
    except Unauthorized as exc:
        if not header:
            return b""
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    state = request.app.state
    if getattr(state, "rollout_metrics", None) is None:
        state.rollout_metrics = RolloutMetrics(collector.store)
    return state.rollout_metrics.render(project)
