"""Back-dated export: each trace's spans moved to a time chosen for it, before OTLP export.

The demo serves its traffic in seconds; moved so that request *i* of *n* starts at
``start + i * spread / n``, the same traffic fills the dashboard's last hour with lines
instead of a column of dots. Only timestamps change (start, end, events); a trace keeps its
shape because all its spans move by the same offset.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class BackdatingExporter(SpanExporter):
    """Wraps ``exporter``; spans of a trace given to :meth:`move_trace` are shifted in time."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter
        self._offsets: dict[int, int] = {}
        self._lock = threading.Lock()

    def move_trace(self, trace_id: int, offset_ns: int) -> None:
        """Shift every span of ``trace_id`` by ``offset_ns`` (negative: into the past)."""
        with self._lock:
            self._offsets[trace_id] = offset_ns

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            offsets = dict(self._offsets)
        return self._exporter.export([_shifted(s, offsets.get(s.context.trace_id, 0))
                                      if s.context is not None else s for s in spans])

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


def _shifted(span: ReadableSpan, offset_ns: int) -> ReadableSpan:
    if not offset_ns:
        return span

    def moved(ns: int | None) -> int | None:
        return None if ns is None else ns + offset_ns

    events = [Event(e.name, e.attributes, moved(e.timestamp)) for e in span.events]
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=span.attributes, events=events, links=span.links, kind=span.kind,
        status=span.status, start_time=moved(span.start_time), end_time=moved(span.end_time),
        instrumentation_scope=span.instrumentation_scope)
