"""SpanRecords as the store hands them to evaluators, built from plain Python values."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import count
from typing import Any

from canarytrace import attributes as A
from canarytrace.evaluators.base import SpanRecord

_ids = count(1)


def _span_id() -> str:
    return f"{next(_ids):016x}"


def tool_call(name: str, arguments: Any) -> dict[str, Any]:
    """An OpenAI-style tool call (arguments as the JSON string OpenAI sends)."""
    encoded = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"type": "function", "function": {"name": name, "arguments": encoded}}


def llm_span(
    output: str | None = None,
    *,
    question: str | None = "What should I do?",
    tool_calls: Sequence[Mapping[str, Any]] = (),
    expect: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
    **fields: Any,
) -> SpanRecord:
    """An LLM call span: user question in, assistant text and/or tool calls out.

    ``expect`` maps ``canary.expect.*`` attribute names to values, JSON-encoded like the SDK.
    """
    attrs: dict[str, str] = {A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT}
    if question is not None:
        attrs[A.GEN_AI_INPUT_MESSAGES] = json.dumps([{"role": "user", "content": question}])
    if output is not None or tool_calls:
        message = {"role": "assistant", "content": output or "",
                   "tool_calls": [tool_call(c["name"], c.get("arguments", {}))
                                  for c in tool_calls]}
        attrs[A.GEN_AI_OUTPUT_MESSAGES] = json.dumps([message])
    for key, value in (expect or {}).items():
        attrs[key] = value if isinstance(value, str) else json.dumps(value)
    attrs.update({k: str(v) for k, v in (attributes or {}).items()})
    fields.setdefault("trace_id", "0" * 31 + "1")
    fields.setdefault("span_id", _span_id())
    return SpanRecord(attributes=attrs, **fields)


def child_span(parent: SpanRecord, attributes: Mapping[str, Any], *, at: int,
               output: str | None = None) -> SpanRecord:
    """A span below ``parent`` in its trace, started at ``at`` ns."""
    attrs = {k: v if isinstance(v, str) else json.dumps(v) for k, v in attributes.items()}
    if output is not None:
        attrs[A.GEN_AI_OUTPUT_MESSAGES] = json.dumps([{"role": "assistant", "content": output}])
    return SpanRecord(trace_id=parent.trace_id, span_id=_span_id(),
                      parent_span_id=parent.span_id, attributes=attrs, timestamp_ns=at)


def agent_run(steps: Sequence[tuple[str, Sequence[tuple[str, Any]]]], *,
              expect: Mapping[str, Any] | None = None, output: str | None = None,
              final_output: str | None = None) -> SpanRecord:
    """An ``invoke_agent`` span with its trace: ``steps`` are (kind, [(tool, arguments)...]).

    Each step is a span below the agent; each tool call an ``execute_tool`` span below its
    step. ``final_output`` is the output text recorded on the last step.
    """
    agent = llm_span(output, expect=expect, attributes={
        A.GEN_AI_OPERATION_NAME: A.OPERATION_INVOKE_AGENT, A.GEN_AI_AGENT_NAME: "support"})
    spans, clock = [], 1
    for index, (kind, tools) in enumerate(steps):
        last = index == len(steps) - 1
        step = child_span(agent, {A.AGENT_TRAJECTORY_STEP: str(index),
                                  A.AGENT_TRAJECTORY_STEP_KIND: kind},
                          at=clock, output=final_output if last else None)
        spans.append(step)
        for name, arguments in tools:
            clock += 1
            spans.append(child_span(step, {A.GEN_AI_OPERATION_NAME: A.OPERATION_EXECUTE_TOOL,
                                           A.GEN_AI_TOOL_NAME: name,
                                           A.GEN_AI_TOOL_CALL_ARGUMENTS: arguments}, at=clock))
        clock += 1
    return replace(agent, trace_spans=tuple(spans))
