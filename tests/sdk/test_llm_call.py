"""ct.llm_call: tracing an LLM call made inline, without a decorated function."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace.calls import LlmCall, get_tracer, llm_call
from canarytrace.context import scoped_attributes


def test_llm_call_records_input_output_and_usage(traced):
    with ct.llm_call(model="llama-3-8b", route="billing", cohort="pro") as call:
        assert isinstance(call, LlmCall)
        assert trace.get_current_span() is call.span
        call.set_input([{"role": "user", "content": "Refund please"}])
        call.set_output("Refund issued.", input_tokens=12, output_tokens=4,
                        finish_reasons=["stop"], response_model="llama-3-8b-ft")
        call.set_attribute(A.GEN_AI_CONVERSATION_ID, "conv-9")
    span = traced.one("chat llama-3-8b")
    assert span.kind is SpanKind.CLIENT
    assert span.attributes[A.CANARY_ROUTE] == "billing"
    assert span.attributes[A.CANARY_COHORT] == "pro"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 12
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert span.attributes[A.GEN_AI_RESPONSE_MODEL] == "llama-3-8b-ft"
    assert span.attributes[A.GEN_AI_CONVERSATION_ID] == "conv-9"
    assert json.loads(span.attributes[A.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Refund please"}]}]
    assert json.loads(span.attributes[A.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Refund issued."}]}]
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_chat_message_output_and_explicit_tokens_override_usage(traced):
    with llm_call(model="m", operation="text_completion", name="complete m",
                  attributes={A.CANARY_VARIANT: "base"}) as call:
        call.set_output({"role": "assistant", "content": "Hi"}, output_tokens=1)
    span = traced.one("complete m")
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "text_completion"
    assert span.attributes[A.CANARY_VARIANT] == "base"
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 1
    assert json.loads(span.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "Hi"


def test_set_attribute_stores_structured_values_as_json(traced):
    with llm_call(model="m") as call:
        call.set_attribute("app.request", {"user": "u1", "plan": ["pro"]})
        call.set_attribute("app.tags", ["a", "b"])
    span = traced.one("chat m")
    assert json.loads(span.attributes["app.request"]) == {"user": "u1", "plan": ["pro"]}
    assert span.attributes["app.tags"] == ("a", "b")


def test_exception_in_block_is_recorded_and_reraised(traced):
    with pytest.raises(RuntimeError, match="GPU OOM"), llm_call(model="m"):
        raise RuntimeError("GPU OOM")
    span = traced.one("chat m")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "RuntimeError"


def test_record_error_marks_a_handled_failure(traced):
    with llm_call(model="m") as call:
        call.record_error(TimeoutError("candidate timed out"))
        call.set_output("fallback answer")
    span = traced.one("chat m")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "TimeoutError"


def test_scope_and_explicit_route(traced):
    with scoped_attributes({A.CANARY_ROLE: "shadow", A.CANARY_ROUTE: "from-scope"}):
        with llm_call(model="m"):
            pass
        with llm_call(model="m2", route="explicit"):
            pass
    assert traced.one("chat m").attributes[A.CANARY_ROUTE] == "from-scope"
    assert traced.one("chat m").attributes[A.CANARY_ROLE] == "shadow"
    assert traced.one("chat m2").attributes[A.CANARY_ROUTE] == "explicit"


def test_get_tracer_follows_init(traced):
    with get_tracer().start_as_current_span("by sdk tracer"):
        pass
    assert traced.one("by sdk tracer")
