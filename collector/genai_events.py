"""GenAI log events: message content for spans, and evaluation results for ``eval_results``.

Content events carry what an instrumentation did not put on its span (the OTel OpenAI
instrumentation's default): ``gen_ai.client.inference.operation.details`` (its
``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions``)
and the older per-message events (``gen_ai.user.message``, ``gen_ai.choice``, ...).
``content_attributes`` turns the events of one span into the canonical span attributes.

``gen_ai.evaluation.result`` events (``gen_ai.evaluation.name``, ``.score.value``,
``.score.label``, ``.explanation``, parented to the evaluated span) become eval_results rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from canarytrace import attributes as A
from canarytrace import messages
from canarytrace.collector.normalize import finish_reasons_of, parse_json

CONTENT_EVENTS = (A.EVENT_INFERENCE_DETAILS, A.EVENT_SYSTEM_MESSAGE, A.EVENT_USER_MESSAGE,
                  A.EVENT_ASSISTANT_MESSAGE, A.EVENT_TOOL_MESSAGE, A.EVENT_CHOICE)
_ROLES = {A.EVENT_SYSTEM_MESSAGE: "system", A.EVENT_USER_MESSAGE: "user",
          A.EVENT_ASSISTANT_MESSAGE: "assistant", A.EVENT_TOOL_MESSAGE: "tool"}
PASS_LABELS = frozenset({"pass", "passed", "true", "yes", "correct", "good", "success", "ok"})
FAIL_LABELS = frozenset({"fail", "failed", "false", "no", "incorrect", "bad", "failure"})
SOURCE = "otel"
"""``Details.source`` of eval_results rows that came from evaluation events."""


def _list(raw: Any) -> list[Any]:
    value = parse_json(raw) if isinstance(raw, str) else raw
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def _body(raw: str) -> Any:
    value = parse_json(raw)
    return value if isinstance(value, dict) else {"content": raw} if raw else {}


def content_attributes(events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Canonical span attributes from one span's content events (``EventName``,
    ``LogAttributes``, ``Body``), in time order; {} when they carry no messages."""
    inputs: list[messages.Message] = []
    outputs: list[messages.Message] = []
    for event in events:
        name, attributes = event.get("EventName", ""), event.get("LogAttributes") or {}
        if name == A.EVENT_INFERENCE_DETAILS:
            system = _list(attributes.get(A.GEN_AI_SYSTEM_INSTRUCTIONS))
            if system:
                inputs.append({"role": "system", "parts": [
                    p if isinstance(p, dict) else messages.text_part(str(p)) for p in system]})
            inputs += messages.normalize(_list(attributes.get(A.GEN_AI_INPUT_MESSAGES)), "user")
            outputs += messages.normalize(_list(attributes.get(A.GEN_AI_OUTPUT_MESSAGES)),
                                          "assistant")
        elif name in _ROLES:
            body = _body(event.get("Body", ""))
            inputs += messages.normalize(dict(body, role=body.get("role") or _ROLES[name]))
        elif name == A.EVENT_CHOICE:
            body = _body(event.get("Body", ""))
            message = body.get("message") if isinstance(body.get("message"), dict) else body
            outputs += messages.normalize(dict(message, role=message.get("role") or "assistant",
                                               finish_reason=body.get("finish_reason")),
                                          "assistant")
    found: dict[str, str] = {}
    if inputs:
        found[A.GEN_AI_INPUT_MESSAGES] = json.dumps(inputs, ensure_ascii=False)
    if outputs:
        found[A.GEN_AI_OUTPUT_MESSAGES] = json.dumps(outputs, ensure_ascii=False)
        reasons = finish_reasons_of(outputs)
        if reasons:
            found[A.GEN_AI_RESPONSE_FINISH_REASONS] = json.dumps(reasons)
    return found


def merge_content(span_attributes: Mapping[str, str],
                  content: Mapping[str, str]) -> dict[str, str] | None:
    """The span's attributes with the content it lacks; None when it lacks none of it."""
    missing = {k: v for k, v in content.items() if not span_attributes.get(k)}
    return {**span_attributes, **missing} if missing else None


# --- evaluation results -----------------------------------------------------------------------

def _score(raw: str | None) -> float | None:
    try:
        score = float(raw) if raw not in (None, "") else None
    except ValueError:
        return None
    return score if score is not None and math.isfinite(score) else None


def passed_of(attributes: Mapping[str, str]) -> bool | None:
    """Pass/fail: canarytrace's own ``canary.evaluation.passed``, else read from the label."""
    explicit = attributes.get(A.CANARY_EVALUATION_PASSED, "").strip().lower()
    if explicit in ("true", "false"):
        return explicit == "true"
    label = attributes.get(A.GEN_AI_EVALUATION_SCORE_LABEL, "").strip().lower()
    if label in PASS_LABELS:
        return True
    if label in FAIL_LABELS:
        return False
    return None


def evaluation_row(log_row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The eval_results row of one ``gen_ai.evaluation.result`` log row (None when it names
    no evaluation or no evaluated span). Span facts are filled in by the caller."""
    attributes: Mapping[str, str] = log_row.get("LogAttributes") or {}
    name = attributes.get(A.GEN_AI_EVALUATION_NAME, "").strip()
    if log_row.get("EventName") != A.EVENT_EVALUATION_RESULT or not name \
            or not log_row.get("SpanId"):
        return None
    known = {A.GEN_AI_EVALUATION_NAME, A.GEN_AI_EVALUATION_SCORE_VALUE,
             A.GEN_AI_EVALUATION_SCORE_LABEL, A.GEN_AI_EVALUATION_EXPLANATION,
             A.CANARY_EVALUATION_PASSED, A.CANARY_EVALUATOR_VERSION, A.EVENT_NAME}
    details = {"source": SOURCE, **{k: v for k, v in attributes.items() if k not in known}}
    return {
        "Timestamp": log_row["Timestamp"],
        "Project": log_row["ResourceAttributes"].get(A.CANARY_PROJECT, ""),
        "ServiceName": log_row.get("ServiceName", ""),
        "TraceId": log_row.get("TraceId", ""), "SpanId": log_row["SpanId"],
        "Evaluator": name,
        "EvaluatorVersion": attributes.get(A.CANARY_EVALUATOR_VERSION) or "1",
        "Score": _score(attributes.get(A.GEN_AI_EVALUATION_SCORE_VALUE)),
        "Passed": passed_of(attributes),
        "Label": attributes.get(A.GEN_AI_EVALUATION_SCORE_LABEL, ""),
        "Reason": attributes.get(A.GEN_AI_EVALUATION_EXPLANATION, ""),
        "Details": json.dumps(details, ensure_ascii=False),
    }
