"""Reading an agent run out of a span and the other spans of its trace."""

from __future__ import annotations

import json
from typing import Any

from canarytrace import attributes as A
from canarytrace import messages
from canarytrace.evaluators.base import SpanRecord

FINAL_STEP_KINDS = frozenset({"respond", "response", "final", "final_answer", "answer"})


def is_agent(span: SpanRecord) -> bool:
    return span.attributes.get(A.GEN_AI_OPERATION_NAME) == A.OPERATION_INVOKE_AGENT


def descendants(span: SpanRecord) -> list[SpanRecord]:
    """The spans below ``span`` in its trace (from ``span.trace_spans``), in start order."""
    children: dict[str, list[SpanRecord]] = {}
    for other in span.trace_spans:
        children.setdefault(other.parent_span_id, []).append(other)
    found, frontier = [], [span.span_id]
    while frontier:
        below = [s for parent in frontier for s in children.get(parent, []) if s is not span]
        found += below
        frontier = [s.span_id for s in below]
    return sorted(found, key=lambda s: (s.timestamp_ns, s.span_id))


def _is_tool_execution(span: SpanRecord) -> bool:
    return (span.attributes.get(A.GEN_AI_OPERATION_NAME) == A.OPERATION_EXECUTE_TOOL
            or bool(span.attributes.get(A.GEN_AI_TOOL_NAME)))


def _arguments(raw: str | None) -> Any:
    if raw in (None, ""):
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def executed_tools(span: SpanRecord) -> list[dict[str, Any]]:
    """``{"name", "arguments"}`` of the ``execute_tool`` spans below ``span``, in start order."""
    return [{"name": s.attributes.get(A.GEN_AI_TOOL_NAME, ""),
             "arguments": _arguments(s.attributes.get(A.GEN_AI_TOOL_CALL_ARGUMENTS))}
            for s in descendants(span) if _is_tool_execution(s)]


def called_tools(span: SpanRecord) -> list[dict[str, Any]]:
    """The tool calls a span made: for an agent run its executed tools (or, when none were
    traced, the tool calls in its output); for an LLM call the tool calls in its output."""
    requested = messages.tool_calls_of(span.output_messages)
    if is_agent(span):
        return executed_tools(span) or requested
    return requested


def final_step(span: SpanRecord, kinds: frozenset[str] = FINAL_STEP_KINDS) -> SpanRecord | None:
    """The last step below ``span`` whose ``agent.trajectory.step.kind`` is a final kind."""
    finals = [s for s in descendants(span)
              if s.attributes.get(A.AGENT_TRAJECTORY_STEP_KIND, "").lower() in kinds]
    return finals[-1] if finals else None


def question_of(span: SpanRecord) -> str:
    """What the user asked: the last user message's text, else all input text."""
    users = [m for m in span.input_messages if m.get("role") == "user"]
    return messages.text_of(users[-1:]) if users else span.input_text


def answer_of(span: SpanRecord) -> str:
    """The span's output text; for an agent run without one, its final step's output."""
    text = span.output_text
    if text or not is_agent(span):
        return text
    step = final_step(span)
    return step.output_text if step is not None else ""
