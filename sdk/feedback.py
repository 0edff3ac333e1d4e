"""User feedback (thumbs up/down, a score, a comment) on a trace, sent to the collector.

``feedback()`` posts to the collector's ``POST /v1/feedback`` with the endpoint and API key
that ``init()`` configured (or the ``CANARYTRACE_ENDPOINT`` / ``CANARYTRACE_API_KEY`` env vars).
It uses only the standard library, and like all telemetry it never raises into user code:
it returns True when the collector accepted the feedback and False otherwise (logged once).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
import uuid
from numbers import Real

from opentelemetry import trace

from canarytrace import _runtime
from canarytrace._safety import log_once

FEEDBACK_PATH = "/v1/feedback"
SOURCE = "sdk"


def feedback(trace_id: str | int | None = None, score: float | bool = 1.0,
             comment: str | None = None, span_id: str | int | None = None, *,
             timeout_s: float = 2.0) -> bool:
    """Record feedback on a trace: ``score`` +1 (thumbs up), -1 (thumbs down) or any number.

    ``trace_id`` defaults to the trace of the current span. True when the collector stored it.
    """
    try:
        body = _body(trace_id, score, comment, span_id)
    except ValueError as exc:
        log_once("feedback not sent, invalid arguments", exc)
        return False
    try:
        return _post(body, timeout_s)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises into user code
        log_once("feedback could not be delivered", exc)
        return False


def _body(trace_id: str | int | None, score: float | bool, comment: str | None,
          span_id: str | int | None) -> dict[str, object]:
    if trace_id is None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            raise ValueError("no trace_id given and no current span")
        trace_id = context.trace_id
    return {
        "trace_id": _hex_id(trace_id, 32, "trace_id"),
        "span_id": _hex_id(span_id, 16, "span_id") if span_id is not None else "",
        "score": _score(score),
        "comment": "" if comment is None else str(comment),
        "feedback_id": uuid.uuid4().hex,
        "source": SOURCE,
    }


def _hex_id(value: str | int, digits: int, name: str) -> str:
    """A trace or span id as lowercase hex: OpenTelemetry's ints are formatted, strings checked."""
    text = format(value, f"0{digits}x") if isinstance(value, int) else str(value).lower()
    if len(text) != digits or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{name} must be {digits} hex digits, got {value!r}")
    return text


def _score(score: float | bool) -> float:
    if isinstance(score, bool):
        return 1.0 if score else -1.0
    if not isinstance(score, Real) or not math.isfinite(score):
        raise ValueError(f"score must be a finite number, got {score!r}")
    return float(score)


def _post(body: dict[str, object], timeout_s: float) -> bool:
    settings = _settings()
    request = urllib.request.Request(
        f"{settings.endpoint}{FEEDBACK_PATH}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **settings.headers()})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode(errors="replace")
        log_once("feedback rejected by the collector", ValueError(f"HTTP {exc.code}: {detail}"))
        return False


def _settings() -> _runtime.Settings:
    """init()'s settings; before init(), the CANARYTRACE_* environment."""
    current = _runtime.settings()
    if current == _runtime.Settings():
        return _runtime.Settings.resolve()
    return current
