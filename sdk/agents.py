"""Agent runs: an ``invoke_agent`` span, numbered steps below it, and ``execute_tool`` spans.

``run.step(kind)`` numbers steps 0, 1, 2… in the order they start (``agent.trajectory.step``).
A ``tool_call`` made directly in a run, outside any step, takes the next step number itself,
so a trajectory evaluator sees every action in order.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from canarytrace import attributes as A
from canarytrace import capture, messages
from canarytrace._runtime import state
from canarytrace._safety import log_once
from canarytrace.context import current_scope
from canarytrace.responses import parse_response

STEP_KIND_TOOL_CALL = "tool_call"

_run: contextvars.ContextVar[AgentRun | None] = contextvars.ContextVar(
    "canarytrace_agent_run", default=None)
_step_of: contextvars.ContextVar[AgentRun | None] = contextvars.ContextVar(
    "canarytrace_agent_step_of", default=None)


@contextmanager
def _span(name: str, attributes: Mapping[str, Any]) -> Iterator[trace.Span]:
    """A current INTERNAL span for the block; errors get status ERROR and ``error.type``."""
    try:
        span = state.tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not start span", exc)
        span = trace.INVALID_SPAN
    with trace.use_span(span, end_on_exit=True, record_exception=True,
                        set_status_on_exception=True):
        try:
            yield span
        except Exception as exc:
            if span.is_recording():
                span.set_attribute(A.ERROR_TYPE, type(exc).__qualname__)
            raise


class AgentRun:
    """One run of an agent; ``step(kind)`` opens its next numbered step."""

    def __init__(self, name: str, span: trace.Span) -> None:
        self.name = name
        self.span = span
        self._numbers = itertools.count()

    def next_step_number(self) -> int:
        return next(self._numbers)

    @contextmanager
    def step(self, kind: str) -> Iterator[trace.Span]:
        """A step of the run (``plan``, ``tool_call``, ``respond`` …), numbered in order."""
        number = self.next_step_number()
        attributes = {A.AGENT_TRAJECTORY_STEP: number, A.AGENT_TRAJECTORY_STEP_KIND: kind,
                      A.GEN_AI_AGENT_NAME: self.name}
        token = _step_of.set(self)
        try:
            with _span(f"step {kind}", attributes) as span:
                yield span
        finally:
            _step_of.reset(token)

    def set_input(self, value: Any) -> None:
        """Record the run's task as ``gen_ai.input.messages`` (text or chat messages)."""
        _set_captured(self.span, A.GEN_AI_INPUT_MESSAGES,
                      lambda: capture.messages_json(messages.normalize(value, "user")))

    def set_output(self, value: Any) -> None:
        """Record the run's final answer as ``gen_ai.output.messages``."""
        _set_captured(self.span, A.GEN_AI_OUTPUT_MESSAGES,
                      lambda: capture.messages_json(parse_response(value).messages))


@contextmanager
def agent(name: str, *, conversation_id: str | None = None) -> Iterator[AgentRun]:
    """Trace an agent run: an ``invoke_agent {name}`` span that its steps and calls nest under."""
    attributes = {**current_scope(), A.GEN_AI_OPERATION_NAME: A.OPERATION_INVOKE_AGENT,
                  A.GEN_AI_AGENT_NAME: name}
    if conversation_id is not None:
        attributes[A.GEN_AI_CONVERSATION_ID] = conversation_id
    with _span(f"{A.OPERATION_INVOKE_AGENT} {name}", attributes) as span:
        run = AgentRun(name, span)
        run_token, step_token = _run.set(run), _step_of.set(None)
        try:
            yield run
        finally:
            _step_of.reset(step_token)
            _run.reset(run_token)


class ToolCall:
    """One tool execution; ``set_result`` records what the tool returned."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def set_result(self, result: Any) -> None:
        _set_captured(self.span, A.GEN_AI_TOOL_CALL_RESULT, lambda: capture.content_json(result))


@contextmanager
def tool_call(name: str, arguments: Any = None, *,
              call_id: str | None = None) -> Iterator[ToolCall]:
    """Trace a tool execution: an ``execute_tool {name}`` span with its arguments and result."""
    attributes: dict[str, Any] = {A.GEN_AI_OPERATION_NAME: A.OPERATION_EXECUTE_TOOL,
                                  A.GEN_AI_TOOL_NAME: name}
    if call_id is not None:
        attributes[A.GEN_AI_TOOL_CALL_ID] = call_id
    run = _run.get()
    if run is not None and _step_of.get() is not run:
        attributes[A.AGENT_TRAJECTORY_STEP] = run.next_step_number()
        attributes[A.AGENT_TRAJECTORY_STEP_KIND] = STEP_KIND_TOOL_CALL
    with _span(f"{A.OPERATION_EXECUTE_TOOL} {name}", attributes) as span:
        if arguments is not None:
            _set_captured(span, A.GEN_AI_TOOL_CALL_ARGUMENTS,
                          lambda: capture.content_json(arguments))
        yield ToolCall(span)


def _set_captured(span: trace.Span, key: str, render: Any) -> None:
    """Set ``key`` to ``render()`` (captured content; nothing when capture is off)."""
    if not span.is_recording():
        return
    try:
        value = render()
        if value is not None:
            span.set_attribute(key, value)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once(f"could not record {key}", exc)
