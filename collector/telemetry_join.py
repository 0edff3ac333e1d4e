"""The joiner: GenAI log events meet their spans, whichever reaches the store first.

Spans and logs are exported separately, so a span's content events or an evaluation of it
may be stored before the span is. ``/v1/logs`` hands the joiner the spans its events are
about; every ``interval_s`` it

- writes content (messages, finish reasons) from content events onto spans that lack it,
  so the evaluators and the API see one span with everything (``otel_traces`` keeps the
  newer row of a span);
- fills the span facts (model, variant, route, ...) into eval_results rows that were
  stored before their span was.

A key waits at most ``wait_s`` for its span. Every ``sweep_s`` (and at start, over
``lookback_s``) it also looks through the tables for events it was not told about (a
restart, or an OpenTelemetry Collector writing otel_logs directly).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from canarytrace.collector.genai_events import CONTENT_EVENTS, content_attributes, merge_content
from canarytrace.store.client import Store
from canarytrace.store.telemetry import FACTS, Key, Telemetry

logger = logging.getLogger("canarytrace.collector.join")
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
BATCH = 1000


class Joiner:
    """Background thread joining content events and evaluation results to their spans."""

    def __init__(self, store: Store, interval_s: float = 1.0, wait_s: float = 600.0,
                 sweep_s: float = 60.0, lookback_s: float = 3600.0) -> None:
        self.telemetry = Telemetry(store)
        self.interval_s, self.wait_s = interval_s, wait_s
        self.sweep_s, self.lookback_s = sweep_s, lookback_s
        self._content: dict[Key, float] = {}
        self._results: dict[Key, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="genai-joiner", daemon=True)
        self._next_sweep = 0.0
        self._swept_from_ns = time.time_ns() - int(lookback_s * NS_PER_S)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def submit(self, content: Iterable[Key] = (), results: Iterable[Key] = ()) -> None:
        """Join these spans' content events / eval results as soon as the spans are stored."""
        deadline = time.monotonic() + self.wait_s
        with self._lock:
            for key in content:
                self._content.setdefault(key, deadline)
            for key in results:
                self._results.setdefault(key, deadline)
        self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._content) + len(self._results)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.join_once()
            except Exception as exc:  # noqa: BLE001 - the joiner must outlive store outages
                logger.warning("joining GenAI events to spans failed: %s", exc)
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def join_once(self) -> None:
        """One pass: sweep when due, then every pending key whose span is stored."""
        if time.monotonic() >= self._next_sweep:
            self._sweep()
        with self._lock:
            content, results = list(self._content), list(self._results)
        for start in range(0, len(content), BATCH):
            done = self.join_content(content[start:start + BATCH])
            self._settle(self._content, content[start:start + BATCH], done)
        for start in range(0, len(results), BATCH):
            done = self.join_results(results[start:start + BATCH])
            self._settle(self._results, results[start:start + BATCH], done)

    def _settle(self, pending: dict[Key, float], keys: list[Key], done: set[Key]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                if key in done or pending.get(key, now) < now:
                    pending.pop(key, None)

    def _sweep(self) -> None:
        since = self._swept_from_ns
        self._swept_from_ns = time.time_ns() - int(self.sweep_s * 2 * NS_PER_S)
        self._next_sweep = time.monotonic() + self.sweep_s
        content = self.telemetry.spans_with_content_events(since, CONTENT_EVENTS)
        results = [(r["Project"], r["SpanId"])
                   for r in self.telemetry.unjoined_results(since_ns=since)]
        if content or results:
            self.submit(content, results)

    # --- the joins -------------------------------------------------------------------------
    def join_content(self, keys: list[Key]) -> set[Key]:
        """Write content events onto their stored spans; returns the keys whose span exists."""
        spans = self.telemetry.spans(keys)
        found = {(s["Project"], s["SpanId"]) for s in spans}
        if not spans:
            return found
        events = self.telemetry.content_events(found, CONTENT_EVENTS)
        rows = []
        for span in spans:
            project = span.pop("Project")
            content = content_attributes(events.get((project, span["SpanId"]), []))
            merged = merge_content(span["SpanAttributes"], content)
            if merged is not None:
                rows.append({**span, "SpanAttributes": merged})
        if rows:
            self.telemetry.store.insert_spans(rows)
        return found

    def join_results(self, keys: list[Key]) -> set[Key]:
        """Fill span facts into eval results stored before their span; returns the keys done."""
        facts = self.telemetry.facts(keys)
        if not facts:
            return set()
        rows = [self.with_facts(row, facts[(row["Project"], row["SpanId"])])
                for row in self.telemetry.unjoined_results(list(facts))]
        if rows:
            self.telemetry.store.insert_eval_results(rows)
        return set(facts)

    @staticmethod
    def with_facts(row: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
        """``row`` with the span's facts; its SpanTimestamp moves to the span's only within the
        same day (the partition), so the new row replaces the old one."""
        row = {**row, **{column: facts[column] for column in FACTS if facts.get(column)}}
        if row["SpanTimestamp"] // NS_PER_DAY == facts["SpanTimestamp"] // NS_PER_DAY:
            row["SpanTimestamp"] = facts["SpanTimestamp"]
        return row
