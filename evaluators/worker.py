"""An evaluation run: sampled spans of a time window in, ``eval_results`` rows out.

The run reads LLM spans and agent runs page by page, keeps the ones the sampling rule
selects, gives agent runs their trace (for trajectory checks) and candidate spans their
mirrored partners (for ``pairwise``, whose result lands on the candidate span), then lets
each evaluator score the spans it ``applies_to`` in batches. Spans an evaluator version
has already scored are skipped unless ``rescore``; rewriting a score replaces the old row
(``eval_results`` is a ReplacingMergeTree), so re-running never duplicates.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from canarytrace import attributes as A
from canarytrace.evaluators.base import EvalResult, Evaluator, SpanRecord
from canarytrace.evaluators.registry import EvaluatorRegistry, default_registry
from canarytrace.evaluators.sampling import SamplingRule
from canarytrace.evaluators.sources import Source, Window
from canarytrace.evaluators.traces import is_agent

logger = logging.getLogger("canarytrace.evaluators")

DEFAULT_BATCH_SIZE = 64
DEFAULT_PAGE_SIZE = 2000
SPAN_KINDS: tuple[dict[str, Any], ...] = (
    {"llm_only": True},
    {"operation": A.OPERATION_INVOKE_AGENT},
)
"""The spans a run reads (collector span filters): LLM calls, then agent runs."""

PAIR_LOOKAROUND_NS = 3600 * 1_000_000_000
"""How far from a candidate span its base arm is looked for when not on the same page."""

Progress = Callable[[int, int], None]
"""Called after each page with (spans read, spans sampled) so far."""


@dataclass
class Tally:
    """What one evaluator did in a run."""

    scored: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    """Already scored by this evaluator version (not re-scored)."""
    errors: int = 0
    score_sum: float = 0.0
    score_count: int = 0

    @property
    def no_verdict(self) -> int:
        return self.scored - self.passed - self.failed

    def add(self, result: EvalResult) -> None:
        self.scored += 1
        self.passed += result.passed is True
        self.failed += result.passed is False
        if result.score is not None:
            self.score_sum += result.score
            self.score_count += 1


@dataclass
class RunSummary:
    """The outcome of one run: spans read and sampled, and a Tally per evaluator."""

    spans_read: int = 0
    spans_sampled: int = 0
    rows_written: int = 0
    complete: bool = True
    """False when the run was stopped before it read the whole window."""
    tallies: dict[str, Tally] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    """One line per evaluator failure (first few only)."""

    def note_error(self, message: str, limit: int = 20) -> None:
        if len(self.errors) < limit:
            self.errors.append(message)


def create_evaluators(names: Sequence[str] | None = None,
                      registry: EvaluatorRegistry | None = None,
                      ) -> tuple[list[Evaluator], dict[str, str]]:
    """Evaluators by name, configured from the env; with no names, every one that can be
    configured, plus why each other one was left out. Named ones that fail raise."""
    registry = registry or default_registry()
    if names is not None:
        return [registry.create(name) for name in names], {}
    evaluators, left_out = [], {}
    for name in registry.names():
        try:
            evaluators.append(registry.create(name))
        except Exception as exc:  # noqa: BLE001 - unconfigured evaluators are skipped, said why
            left_out[name] = str(exc) or type(exc).__name__
    return evaluators, left_out


def result_row(span: SpanRecord, evaluator: Evaluator, result: EvalResult,
               scored_at_ns: int) -> dict[str, Any]:
    """One ``eval_results`` row: the verdict plus the span's slicing columns."""
    return {
        "Timestamp": scored_at_ns, "SpanTimestamp": span.timestamp_ns,
        "Project": span.project, "ServiceName": span.service_name,
        "TraceId": span.trace_id, "SpanId": span.span_id,
        "Evaluator": evaluator.name, "EvaluatorVersion": str(evaluator.version),
        "Score": result.score, "Passed": result.passed, "Label": result.label,
        "Reason": result.reason, "Details": json.dumps(result.details, default=str),
        "Model": span.model, "Variant": span.variant, "Role": span.role,
        "PairId": span.pair_id, "Route": span.route, "Cohort": span.cohort,
    }


class EvaluationRun:
    """Scores the sampled spans of one project's time window with a set of evaluators."""

    def __init__(self, source: Source, evaluators: Sequence[Evaluator],
                 rule: SamplingRule | None = None, *, rescore: bool = False,
                 batch_size: int = DEFAULT_BATCH_SIZE, page_size: int = DEFAULT_PAGE_SIZE,
                 progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.source, self.evaluators = source, list(evaluators)
        self.should_stop = should_stop or (lambda: False)
        self.rule = rule or SamplingRule()
        self.rescore, self.batch_size, self.page_size = rescore, batch_size, page_size
        self.progress = progress

    def run(self, window: Window) -> RunSummary:
        """Evaluate every sampled span in ``window`` and write the results."""
        summary = RunSummary(tallies={e.name: Tally() for e in self.evaluators})
        done = self._already_scored(window)
        for page in self._pages(window):
            if self.should_stop() or not summary.complete:
                summary.complete = False
                break
            summary.spans_read += len(page)
            sampled = [span for span in page if self.rule.selects(span)]
            summary.spans_sampled += len(sampled)
            rows = self._evaluate_page(self._with_context(sampled), done, summary)
            self.source.write(rows)  # what was scored before a stop is kept
            summary.rows_written += len(rows)
            if self.progress is not None:
                self.progress(summary.spans_read, summary.spans_sampled)
        return summary

    def _already_scored(self, window: Window) -> dict[str, set[str]]:
        if self.rescore:
            return {e.name: set() for e in self.evaluators}
        return {e.name: self.source.scored_span_ids(e.name, str(e.version), window)
                for e in self.evaluators}

    def _pages(self, window: Window) -> Iterator[list[SpanRecord]]:
        for kind in SPAN_KINDS:
            for page in self.source.span_pages({**kind, **window.filters()}, self.page_size):
                if page:
                    yield page

    # --- context: trace spans for agent runs, partners for mirrored pairs ----------------
    def _with_context(self, spans: list[SpanRecord]) -> list[SpanRecord]:
        by_pair: dict[str, list[SpanRecord]] = {}
        for span in spans:
            if span.pair_id:
                by_pair.setdefault(span.pair_id, []).append(span)
        traces: dict[str, list[SpanRecord]] = {}
        return [self._attach(span, by_pair, traces) for span in spans]

    def _attach(self, span: SpanRecord, by_pair: dict[str, list[SpanRecord]],
                traces: dict[str, list[SpanRecord]]) -> SpanRecord:
        related: list[SpanRecord] = []
        if is_agent(span):
            if span.trace_id not in traces:
                traces[span.trace_id] = self.source.trace(span.trace_id)
            related += traces[span.trace_id]
        if span.pair_id and span.variant == A.VARIANT_CANDIDATE:
            related += self._partners(span, by_pair)
        if not related:
            return span
        unique = {s.span_id: s for s in related if s.span_id != span.span_id}
        return replace(span, trace_spans=tuple(unique.values()))

    def _partners(self, span: SpanRecord, by_pair: dict[str, list[SpanRecord]]) -> list[SpanRecord]:
        """The other arm(s) of the span's pair: from this page, else read by pair id."""
        arms = by_pair.get(span.pair_id, [])
        if not any(s.variant == A.VARIANT_BASE for s in arms):
            around = {"since": _moment(span.timestamp_ns - PAIR_LOOKAROUND_NS),
                      "until": _moment(span.timestamp_ns + PAIR_LOOKAROUND_NS)}
            pages = self.source.span_pages({"pair_id": span.pair_id, "llm_only": True,
                                            **around}, self.page_size)
            arms = [s for page in pages for s in page]
            by_pair[span.pair_id] = arms
        return arms

    # --- scoring ------------------------------------------------------------------------
    def _evaluate_page(self, spans: list[SpanRecord], done: dict[str, set[str]],
                       summary: RunSummary) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for evaluator in self.evaluators:
            tally, seen = summary.tallies[evaluator.name], done[evaluator.name]
            todo = []
            for span in spans:
                if span.span_id in seen:
                    tally.skipped += 1
                elif self._applies(evaluator, span, summary):
                    todo.append(span)
            for batch in _chunks(todo, self.batch_size):
                if self.should_stop():
                    summary.complete = False
                    return rows
                for span, result in self._score(evaluator, batch, summary):
                    tally.add(result)
                    seen.add(span.span_id)
                    rows.append(result_row(span, evaluator, result, time.time_ns()))
        return rows

    def _applies(self, evaluator: Evaluator, span: SpanRecord, summary: RunSummary) -> bool:
        try:
            return bool(evaluator.applies_to(span))
        except Exception as exc:  # noqa: BLE001 - one bad span must not stop the run
            self._failed(evaluator, [span], exc, summary)
            return False

    def _score(self, evaluator: Evaluator, batch: list[SpanRecord],
               summary: RunSummary) -> list[tuple[SpanRecord, EvalResult]]:
        """(span, result) for the batch; when the batch fails, each span alone, so one bad
        span costs only its own result."""
        try:
            return _scored_batch(evaluator, batch)
        except Exception as exc:  # noqa: BLE001 - evaluator bugs are reported, not raised
            if len(batch) == 1:
                self._failed(evaluator, batch, exc, summary)
                return []
        return [pair for span in batch for pair in self._score(evaluator, [span], summary)]

    @staticmethod
    def _failed(evaluator: Evaluator, spans: list[SpanRecord], exc: Exception,
                summary: RunSummary) -> None:
        summary.tallies[evaluator.name].errors += len(spans)
        message = (f"{evaluator.name} failed on span {spans[0].span_id}: "
                   f"{type(exc).__name__}: {exc}")
        summary.note_error(message)
        logger.warning("canarytrace evaluation: %s", message)


def _scored_batch(evaluator: Evaluator,
                  batch: list[SpanRecord]) -> list[tuple[SpanRecord, EvalResult]]:
    results = evaluator.evaluate_batch(batch)
    if len(results) != len(batch):
        raise RuntimeError(f"evaluate_batch returned {len(results)} results for "
                           f"{len(batch)} spans")
    return list(zip(batch, results, strict=True))


def _moment(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _chunks(items: list[SpanRecord], size: int) -> Iterator[list[SpanRecord]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
