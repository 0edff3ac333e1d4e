"""Scope stamping: spans other instrumentations start inside a canarytrace scope carry it.

``ct.expect(...)``, ``ct.Canary`` arms, ``ct.request`` and the process labels put attributes in
the ambient scope (``context.current_scope``). canarytrace's own spans copy it themselves;
``ScopeStampingProcessor`` copies it at start onto every *other* span (OpenLLMetry,
OpenInference, traceAI, the OTel OpenAI instrumentation, HTTP clients ...) started while the
scope is active, so the evaluators score a third-party LLM span against ``ct.expect``.

Every span is stamped, not only GenAI-looking ones: some instrumentations (traceAI) set no
attribute before a span starts, so nothing tells an LLM span from another at that point.
Attributes the span already has win, and the per-call outcome keys (``A.CALL_OUTCOME_KEYS``:
fallback, mirror outcome, error type) stay on canarytrace's own arm span.
"""

from __future__ import annotations

import weakref
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from canarytrace import attributes as A
from canarytrace._safety import log_once
from canarytrace.context import current_scope

OWN_SCOPE = "canarytrace"
"""The instrumentation scope of canarytrace's own spans (they copy the scope themselves)."""

_stamped: weakref.WeakSet[Any] = weakref.WeakSet()


class ScopeStampingProcessor(SpanProcessor):
    """On start, copies the ambient canarytrace scope onto spans of other instrumentations."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            scope = current_scope()
            if not scope or not span.is_recording():
                return
            instrumentation = getattr(span, "instrumentation_scope", None)
            if instrumentation is not None and instrumentation.name == OWN_SCOPE:
                return
            present = span.attributes or {}
            missing = {key: value for key, value in scope.items()
                       if key not in present and key not in A.CALL_OUTCOME_KEYS}
            if missing:
                span.set_attributes(missing)
        except Exception as exc:  # noqa: BLE001 - telemetry never breaks the application
            log_once("could not stamp the canarytrace scope on a span", exc)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do: stamping happens at start."""

    def shutdown(self) -> None:
        """Holds nothing."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def stamp_spans_of(provider: Any) -> bool:
    """Add one ScopeStampingProcessor to an SDK TracerProvider (once); False if it has none to
    add or already has it."""
    add = getattr(provider, "add_span_processor", None)
    if add is None or provider in _stamped:
        return False
    add(ScopeStampingProcessor())
    _stamped.add(provider)
    return True
