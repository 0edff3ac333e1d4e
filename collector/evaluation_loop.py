"""The background evaluation ``canarytrace serve`` runs: score new sampled spans every so often.

Every ``interval_s`` the loop evaluates, in every project of the store, the spans that
started in ``[watermark - grace_s, now - settle_s)``, then moves the watermark to the end
of that window. The grace period catches spans that reach the store late (spooled,
retried exporters); spans already scored are skipped, so the overlap costs little. The
first window reaches ``lookback_s`` back. A failing pass is logged and retried at the
next tick: the loop never takes the server down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from canarytrace.collector.settings import Settings
from canarytrace.evaluators.base import Evaluator
from canarytrace.evaluators.registry import EvaluatorRegistry
from canarytrace.evaluators.sampling import SamplingRule
from canarytrace.evaluators.sources import StoreSource, Window
from canarytrace.evaluators.worker import EvaluationRun, RunSummary, create_evaluators
from canarytrace.store.client import Store

logger = logging.getLogger("canarytrace.collector.evaluation")

NS_PER_S = 1_000_000_000


def loop_from_settings(store: Store, settings: Settings) -> EvaluationLoop | None:
    """The loop ``canarytrace serve`` runs, from its Settings' ``eval_*`` fields (None when
    ``eval_enabled`` is off); raises ValueError for a bad sampling or evaluator setting."""
    if not settings.eval_enabled:
        return None
    names = [n.strip() for n in (settings.eval_evaluators or "").split(",") if n.strip()]
    return EvaluationLoop(
        store, interval_s=settings.eval_interval_s, grace_s=settings.eval_grace_s,
        settle_s=settings.eval_settle_s, lookback_s=settings.eval_lookback_s,
        evaluators=names or None, sample_rate=settings.eval_sample_rate,
        sample_overrides=(settings.eval_sample or "").replace(",", " ").split())


def _moment(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / NS_PER_S, UTC)


def _evaluators(names: Sequence[str] | None,
                registry: EvaluatorRegistry | None) -> list[Evaluator]:
    try:
        evaluators, left_out = create_evaluators(names, registry)
    except Exception as exc:  # noqa: BLE001 - a configuration error, said in one line
        raise ValueError(f"background evaluation: {exc}") from exc
    for name, why in left_out.items():
        logger.info("background evaluation without %s: %s", name, why)
    return evaluators


class EvaluationLoop:
    """A daemon thread that scores the store's new sampled spans every ``interval_s``."""

    def __init__(self, store: Store, *, interval_s: float = 30.0, grace_s: float = 300.0,
                 settle_s: float = 5.0, lookback_s: float = 3600.0,
                 evaluators: Sequence[str] | None = None, sample_rate: float = 1.0,
                 sample_overrides: Sequence[str] = (), batch_size: int | None = None,
                 registry: EvaluatorRegistry | None = None) -> None:
        """``evaluators`` None: every evaluator the env configures; ``batch_size`` None:
        the run's default, larger for judges (enough to keep their concurrency busy).
        Raises ValueError for a bad sampling rate or override, or a named evaluator that
        cannot be set up (models load later, on first use)."""
        self.store = store
        self.interval_s, self.grace_s, self.settle_s = interval_s, grace_s, settle_s
        self.rule = SamplingRule.parse(sample_rate, list(sample_overrides))
        self.evaluators = _evaluators(evaluators, registry)
        self.batch_size = batch_size
        self.watermark_ns = time.time_ns() - int(lookback_s * NS_PER_S)
        self.passes = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evaluation-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the loop to stop (it finishes the batch it is scoring) and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        """Whether the loop's thread is running."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - the server outlives any failed pass
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("evaluation pass failed; retrying in %.0fs", self.interval_s)
            self._stop.wait(self.interval_s)

    def run_once(self) -> dict[str, RunSummary]:
        """One pass over every project; advances the watermark when the pass completes."""
        until_ns = time.time_ns() - int(self.settle_s * NS_PER_S)
        window = Window(since=_moment(self.watermark_ns - int(self.grace_s * NS_PER_S)),
                        until=_moment(until_ns))
        summaries = {project: self._evaluate(project, window)
                     for project in StoreSource.projects(self.store)}
        if all(summary.complete for summary in summaries.values()):
            self.watermark_ns = max(self.watermark_ns, until_ns)
        self.passes += 1
        self.last_error = None
        return summaries

    def _evaluate(self, project: str, window: Window) -> RunSummary:
        run = EvaluationRun(StoreSource(self.store, project), self.evaluators, self.rule,
                            batch_size=self.batch_size, should_stop=self._stop.is_set)
        summary = run.run(window)
        if summary.rows_written:
            logger.info("evaluated project %s: %d spans sampled, %d results written",
                        project, summary.spans_sampled, summary.rows_written)
        return summary
