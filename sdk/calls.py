"""LLM calls as spans: ``llm_call()`` and the ``LlmCall`` it yields.

An LLM span is a CLIENT span named ``"{operation} {model}"`` carrying the GenAI attributes.
At start it copies the enclosing scope's attributes (``context.scoped_attributes``); explicit
arguments win over the scope. Every method swallows SDK-side failures: telemetry never raises.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from canarytrace import attributes as A
from canarytrace import capture, messages
from canarytrace._runtime import get_tracer, state
from canarytrace._safety import log_once
from canarytrace.context import current_scope, take_deadline
from canarytrace.genai_metrics import record_call
from canarytrace.responses import parse_response

__all__ = ["LlmCall", "current_call", "get_tracer", "llm_call", "start_call", "start_attributes"]

_current: contextvars.ContextVar[LlmCall | None] = contextvars.ContextVar(
    "canarytrace_llm_call", default=None)

_PRIMITIVES = (str, bool, int, float)


def current_call() -> LlmCall | None:
    """The innermost LLM call running in this context, if any."""
    return _current.get()


def start_attributes(model: str | None, operation: str, route: str | None = None,
                     cohort: str | None = None, provider: str | None = None,
                     attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The attributes an LLM span starts with, explicit values over ``attributes``."""
    start = dict(attributes) if attributes else {}
    start[A.GEN_AI_OPERATION_NAME] = operation
    for key, value in ((A.GEN_AI_REQUEST_MODEL, model), (A.GEN_AI_PROVIDER_NAME, provider),
                       (A.CANARY_ROUTE, route), (A.CANARY_COHORT, cohort)):
        if value is not None:
            start[key] = value
    return start


def span_name(operation: str, model: str | None) -> str:
    return f"{operation} {model}" if model else operation


def start_call(name: str, attributes: Mapping[str, Any]) -> LlmCall:
    """Start an LLM span under the current context, the scope's attributes below ``attributes``."""
    scope = current_scope()
    if scope:
        attributes = {**scope, **attributes}
    span = state.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
    return LlmCall(span, take_deadline())


def _attribute_value(value: Any) -> Any:
    """An OTel-valid attribute value: primitives and lists of them as is, the rest as JSON."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, Sequence) and all(isinstance(v, _PRIMITIVES) for v in value):
        return list(value)
    return capture.to_json(value)


class LlmCall:
    """One LLM call's span; set its input and output, attributes, errors. A call that ends
    after its ``deadline`` (``time.monotonic()``) without an error is marked a TimeoutError."""

    __slots__ = ("span", "recording", "_tokens", "_input", "_parser_errors", "_parser_retries",
                 "_ended", "_deadline")

    def __init__(self, span: trace.Span, deadline: float | None = None) -> None:
        self.span = span
        self._deadline = deadline
        self.recording = span.is_recording()
        self._tokens: tuple[Any, Any] | None = None
        self._input: str | None = None  # serialized now, set with the output (one span update)
        self._parser_errors = 0
        self._parser_retries = 0
        self._ended = False

    def set_input(self, value: Any) -> None:
        """Record the prompt: a string (one user message) or chat messages."""
        if not self.recording:
            return
        try:
            self._input = capture.messages_json(messages.normalize(value, default_role="user"))
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("could not record LLM input", exc)

    def set_output(self, output: Any, input_tokens: int | None = None,
                   output_tokens: int | None = None,
                   finish_reasons: Sequence[str] | None = None,
                   response_model: str | None = None) -> None:
        """Record the answer (text, messages or a client response) and what it cost."""
        if not self.recording:
            return
        try:
            found = self._output_attributes(output, input_tokens, output_tokens,
                                            finish_reasons, response_model)
            if self._input is not None:
                found[A.GEN_AI_INPUT_MESSAGES], self._input = self._input, None
            self.span.set_attributes(found)
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("could not record LLM output", exc)

    @staticmethod
    def _output_attributes(output: Any, input_tokens: int | None, output_tokens: int | None,
                           finish_reasons: Sequence[str] | None,
                           response_model: str | None) -> dict[str, Any]:
        response = parse_response(output)
        found: dict[str, Any] = {}
        text = capture.messages_json(response.messages) if response.messages else None
        for key, value in (
            (A.GEN_AI_OUTPUT_MESSAGES, text),
            (A.GEN_AI_USAGE_INPUT_TOKENS, _first(input_tokens, response.input_tokens)),
            (A.GEN_AI_USAGE_OUTPUT_TOKENS, _first(output_tokens, response.output_tokens)),
            (A.GEN_AI_RESPONSE_FINISH_REASONS, list(finish_reasons or response.finish_reasons)),
            (A.GEN_AI_RESPONSE_MODEL, _first(response_model, response.response_model)),
            (A.GEN_AI_RESPONSE_ID, response.response_id),
        ):
            if value is not None and value != []:
                found[key] = value
        return found

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one span attribute; values OTel cannot hold (dicts, objects) are stored as JSON."""
        if not self.recording or value is None:
            return
        try:
            self.span.set_attribute(key, _attribute_value(value))
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("could not set attribute", exc)

    def record_error(self, exc: BaseException) -> None:
        """Mark the call failed: status ERROR, ``error.type``, and the exception as an event."""
        if not self.recording:
            return
        if isinstance(exc, asyncio.CancelledError) and self._overran():
            exc = TimeoutError("the call was cancelled at its timeout")
        self._deadline = None  # one error per call: a late failure is not also a timeout
        try:
            self.span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
            self.span.set_attribute(A.ERROR_TYPE, type(exc).__qualname__)
            if isinstance(exc, Exception):
                self.span.record_exception(exc)
        except Exception as failure:  # noqa: BLE001 - telemetry never raises
            log_once("could not record error", failure)

    def add_parser_error(self) -> None:
        self._parser_errors += 1
        self.set_attribute(A.CANARY_PARSER_ERRORS, self._parser_errors)

    def add_parser_retry(self) -> None:
        self._parser_retries += 1
        self.set_attribute(A.CANARY_PARSER_RETRIES, self._parser_retries)

    def activate(self) -> None:
        """Make this span (and call) current in this context until ``deactivate()``."""
        try:
            self._tokens = (otel_context.attach(trace.set_span_in_context(self.span)),
                            _current.set(self))
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            self._tokens = None
            log_once("could not activate span", exc)

    def deactivate(self) -> None:
        tokens, self._tokens = self._tokens, None
        if tokens is None:
            return
        try:
            _current.reset(tokens[1])
            otel_context.detach(tokens[0])
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("could not deactivate span", exc)

    def _overran(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def end(self) -> None:
        """End the span once; later calls do nothing."""
        if self._ended:
            return
        self._ended = True
        if self._overran():
            self.record_error(TimeoutError("the call ended after its timeout"))
        try:
            if self._input is not None:
                self.span.set_attribute(A.GEN_AI_INPUT_MESSAGES, self._input)
            self.span.end()
            record_call(self.span)
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("could not end span", exc)


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


@contextmanager
def llm_call(model: str | None = None, *, route: str | None = None, cohort: str | None = None,
             provider: str | None = None, operation: str = A.OPERATION_CHAT,
             attributes: Mapping[str, Any] | None = None,
             name: str | None = None) -> Iterator[LlmCall]:
    """Trace the LLM call made inside the block; exceptions are recorded and re-raised."""
    call = _start_or_none(name or span_name(operation, model),
                          start_attributes(model, operation, route, cohort, provider, attributes))
    if call is None:
        yield LlmCall(trace.INVALID_SPAN)
        return
    call.activate()
    try:
        yield call
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            call.record_error(exc)
        raise
    finally:
        call.deactivate()
        call.end()


def _start_or_none(name: str, attributes: Mapping[str, Any]) -> LlmCall | None:
    try:
        return start_call(name, attributes)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not start LLM span", exc)
        return None
