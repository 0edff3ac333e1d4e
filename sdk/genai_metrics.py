"""GenAI client metrics for each LLM call: ``gen_ai.client.token.usage`` and
``gen_ai.client.operation.duration``, with the conventions' attributes."""

from __future__ import annotations

from typing import Any

from canarytrace import attributes as A
from canarytrace._runtime import get_meter
from canarytrace._safety import log_once

_METRIC_KEYS = (A.GEN_AI_OPERATION_NAME, A.GEN_AI_PROVIDER_NAME, A.GEN_AI_REQUEST_MODEL)
_instruments: dict[int, tuple[Any, Any]] = {}


def _histograms() -> tuple[Any, Any]:
    meter = get_meter()
    found = _instruments.get(id(meter))
    if found is None:
        found = _instruments[id(meter)] = (
            meter.create_histogram(A.METRIC_TOKEN_USAGE, unit="{token}"),
            meter.create_histogram(A.METRIC_OPERATION_DURATION, unit="s"))
    return found


def record_call(span: Any) -> None:
    """Record an ended LLM span's duration and token counts (never raises)."""
    try:
        attributes = dict(getattr(span, "attributes", None) or {})
        labels = {key: attributes[key] for key in _METRIC_KEYS if key in attributes}
        tokens, duration = _histograms()
        start, end = getattr(span, "start_time", None), getattr(span, "end_time", None)
        if start and end:
            duration.record((end - start) / 1e9, labels)
        for kind, key in (("input", A.GEN_AI_USAGE_INPUT_TOKENS),
                          ("output", A.GEN_AI_USAGE_OUTPUT_TOKENS)):
            if isinstance(attributes.get(key), int):
                tokens.record(attributes[key], {**labels, A.GEN_AI_TOKEN_TYPE: kind})
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not record GenAI client metrics", exc)
