"""An evaluation run: sampled spans of a time window in, ``eval_results`` rows out.

The run reads LLM spans and agent runs page by page (pages follow the table's key), keeps
the ones the sampling rule selects, and asks once per page for their context: which
spans each evaluator version has already scored (skipped unless ``rescore``), the traces
of agent runs (for trajectory checks) and, when an evaluator ``needs_partners``, the base
arms of mirrored candidate spans (``pairwise``, whose result lands on the candidate
span). Each evaluator then scores the spans it ``applies_to`` in batches; a judge-backed
one asks for batches big enough to keep its judge's concurrency busy. Rewriting a score
replaces the old row (``eval_results`` is a ReplacingMergeTree), so re-running never
duplicates. The next page is read and the last one written while a page is scored, so
memory holds at most three pages (and their context).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from canarytrace import attributes as A
from canarytrace.evaluators.base import EvalResult, Evaluator, SpanRecord
from canarytrace.evaluators.pipeline import OneWriteBehind, read_ahead
from canarytrace.evaluators.registry import EvaluatorRegistry, default_registry
from canarytrace.evaluators.sampling import SamplingRule
from canarytrace.evaluators.sources import (
    ContextRequest,
    PageContext,
    Source,
    SpanPage,
    Window,
)
from canarytrace.evaluators.traces import is_agent

logger = logging.getLogger("canarytrace.evaluators")

DEFAULT_BATCH_SIZE = 64
DEFAULT_PAGE_SIZE = 2000

Progress = Callable[["RunSummary"], None]
"""Called with the run's summary so far after each page and each scored batch."""


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
    spans_total: int | None = None
    """About how many spans the window holds, when the run was asked to count them."""
    complete: bool = True
    """False when the run was stopped before it read the whole window."""
    tallies: dict[str, Tally] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    """One line per evaluator failure (first few only)."""

    def note_error(self, message: str, limit: int = 20) -> None:
        if len(self.errors) < limit:
            self.errors.append(message)

    @property
    def results(self) -> int:
        """Results produced so far (written, or about to be with their page)."""
        return sum(tally.scored for tally in self.tallies.values())


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
                 batch_size: int | None = None, page_size: int = DEFAULT_PAGE_SIZE,
                 progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        """``batch_size`` None: DEFAULT_BATCH_SIZE, or more where an evaluator prefers it."""
        self.source, self.evaluators = source, list(evaluators)
        self.should_stop = should_stop or (lambda: False)
        self.rule = rule or SamplingRule()
        self.rescore, self.batch_size, self.page_size = rescore, batch_size, page_size
        self.progress = progress
        self.needs_partners = any(e.needs_partners for e in self.evaluators)

    def run(self, window: Window) -> RunSummary:
        """Evaluate every sampled span in ``window`` and write the results. The next page
        is read, and the last one's results written, while a page is scored."""
        summary = RunSummary(tallies={e.name: Tally() for e in self.evaluators})
        pages = read_ahead(self._prepared(window))
        writes = OneWriteBehind(self.source.write)
        try:
            for page, sampled, context in pages:
                if self.should_stop() or not summary.complete:
                    summary.complete = False
                    break
                if page.total is not None:
                    summary.spans_total = page.total
                summary.spans_read += len(page.spans)
                summary.spans_sampled += len(sampled)
                rows = self._evaluate_page(self._with_context(sampled, context),
                                           context.scored, summary)
                if rows:
                    writes.submit(rows)  # what was scored before a stop is kept
                    summary.rows_written += len(rows)
                self._report(summary)
        finally:
            pages.close()
            writes.close()
        return summary

    def _prepared(self, window: Window) -> Iterator[tuple[SpanPage, list[SpanRecord],
                                                          PageContext]]:
        """Each page, its sampled spans and their context (read ahead of the scoring)."""
        for page in self.source.pages(window, self.page_size, count=self.progress is not None):
            sampled = [span for span in page.spans if self.rule.selects(span)]
            context = self.source.context(self._request(sampled)) if sampled else PageContext()
            yield page, sampled, context

    def _report(self, summary: RunSummary) -> None:
        if self.progress is not None:
            self.progress(summary)

    def batch_size_for(self, evaluator: Evaluator) -> int:
        """Spans per evaluate_batch call: the run's, else the default or the evaluator's
        preference (a judge's concurrency), whichever is bigger."""
        if self.batch_size is not None:
            return self.batch_size
        return max(DEFAULT_BATCH_SIZE, evaluator.preferred_batch_size() or 0)

    # --- context: what was scored, trace spans for agent runs, partners for pairs --------
    def _request(self, spans: list[SpanRecord]) -> ContextRequest:
        times = [span.timestamp_ns for span in spans]
        pair_ids: tuple[str, ...] = ()
        if self.needs_partners:
            on_page = {s.pair_id for s in spans if s.variant == A.VARIANT_BASE and s.pair_id}
            pair_ids = tuple(sorted({s.pair_id for s in spans if s.pair_id
                                     and s.variant == A.VARIANT_CANDIDATE} - on_page))
        scored = () if self.rescore else tuple((e.name, str(e.version))
                                               for e in self.evaluators)
        return ContextRequest(
            since_ns=min(times), until_ns=max(times) + 1, pair_ids=pair_ids,
            trace_ids=tuple(sorted({s.trace_id for s in spans if is_agent(s)})),
            span_ids=tuple(s.span_id for s in spans) if scored else (), evaluators=scored)

    def _with_context(self, spans: list[SpanRecord], context: PageContext) -> list[SpanRecord]:
        by_pair: dict[str, list[SpanRecord]] = {}
        for span in spans:
            if span.pair_id:
                by_pair.setdefault(span.pair_id, []).append(span)
        return [self._attach(span, by_pair, context) for span in spans]

    def _attach(self, span: SpanRecord, by_pair: dict[str, list[SpanRecord]],
                context: PageContext) -> SpanRecord:
        related: list[SpanRecord] = []
        if is_agent(span):
            related += context.traces.get(span.trace_id, [])
        if self.needs_partners and span.pair_id and span.variant == A.VARIANT_CANDIDATE:
            related += by_pair.get(span.pair_id, []) + context.partners.get(span.pair_id, [])
        if not related:
            return span
        unique = {s.span_id: s for s in related if s.span_id != span.span_id}
        return replace(span, trace_spans=tuple(unique.values()))

    # --- scoring ------------------------------------------------------------------------
    def _evaluate_page(self, spans: list[SpanRecord], scored: dict[tuple[str, str], set[str]],
                       summary: RunSummary) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for evaluator in self.evaluators:
            tally = summary.tallies[evaluator.name]
            seen = scored.get((evaluator.name, str(evaluator.version)), set())
            todo = []
            for span in spans:
                if span.span_id in seen:
                    tally.skipped += 1
                elif self._applies(evaluator, span, summary):
                    todo.append(span)
            for batch in _chunks(todo, self.batch_size_for(evaluator)):
                if self.should_stop():
                    summary.complete = False
                    return rows
                for span, result in self._score(evaluator, batch, summary):
                    tally.add(result)
                    rows.append(result_row(span, evaluator, result, time.time_ns()))
                self._report(summary)
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


def _chunks(items: list[SpanRecord], size: int) -> Iterator[list[SpanRecord]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
