"""@ct.llm on plain and async functions: the span a user sees for each call."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace.context import is_instrumented, scoped_attributes

CHAT = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"}]


def messages_of(span, key):
    return json.loads(span.attributes[key])


def test_sync_call_records_request_input_and_output(traced):
    @ct.llm(model="llama-3-8b-lora-r16", route="billing", cohort="eu", provider="vllm")
    def generate(messages):
        """Docstring kept."""
        return "Paris."

    assert generate(CHAT) == "Paris."
    span = traced.one("chat llama-3-8b-lora-r16")
    assert span.kind is SpanKind.CLIENT
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == "chat"
    assert span.attributes[A.GEN_AI_REQUEST_MODEL] == "llama-3-8b-lora-r16"
    assert span.attributes[A.GEN_AI_PROVIDER_NAME] == "vllm"
    assert span.attributes[A.CANARY_ROUTE] == "billing"
    assert span.attributes[A.CANARY_COHORT] == "eu"
    assert messages_of(span, A.GEN_AI_INPUT_MESSAGES) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]},
    ]
    assert messages_of(span, A.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Paris."}]}]
    assert span.status.status_code is StatusCode.UNSET
    assert generate.__name__ == "generate" and generate.__doc__ == "Docstring kept."
    assert is_instrumented(generate)


def test_request_model_is_on_the_span_from_its_start(traced):
    seen = {}

    @ct.llm(model="m-start")
    def generate(messages):
        seen.update(trace.get_current_span().attributes)
        return "ok"

    generate("hi")
    assert seen[A.GEN_AI_REQUEST_MODEL] == "m-start"
    assert A.GEN_AI_OUTPUT_MESSAGES not in seen


def test_prompt_keyword_and_methods_find_the_prompt(traced):
    class Client:
        @ct.llm(model="m")
        def complete(self, *, temperature=0.0, prompt):
            return prompt.upper()

    assert Client().complete(prompt="hello") == "HELLO"
    span = traced.one("chat m")
    assert messages_of(span, A.GEN_AI_INPUT_MESSAGES)[0]["parts"][0]["content"] == "hello"

    class Bot:
        @ct.llm(model="m2")
        def answer(self, question, style="plain"):
            return "42"

    Bot().answer("meaning of life?")
    span = traced.one("chat m2")
    assert messages_of(span, A.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "meaning of life?"}]}]


def test_openai_shaped_response_gives_tokens_finish_reason_and_response_model(traced):
    response = {
        "id": "chatcmpl-1", "model": "llama-3-8b-lora-r16-2024",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Paris.",
                                 "tool_calls": [{"id": "c1", "type": "function", "function": {
                                     "name": "lookup", "arguments": "{\"city\": \"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24},
    }

    @ct.llm(model="llama-3-8b-lora-r16")
    def generate(messages):
        return response

    assert generate(CHAT) is response
    span = traced.one("chat llama-3-8b-lora-r16")
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 21
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert span.attributes[A.GEN_AI_RESPONSE_MODEL] == "llama-3-8b-lora-r16-2024"
    assert messages_of(span, A.GEN_AI_OUTPUT_MESSAGES) == [{
        "role": "assistant", "finish_reason": "stop",
        "parts": [{"type": "text", "content": "Paris."},
                  {"type": "tool_call", "name": "lookup", "arguments": {"city": "Paris"},
                   "id": "c1"}]}]


def test_pydantic_style_response_objects_are_read_through_model_dump(traced):
    class Completion:
        def model_dump(self):
            return {"type": "message", "role": "assistant", "stop_reason": "end_turn",
                    "content": [{"type": "text", "text": "Bonjour"}],
                    "usage": {"input_tokens": 7, "output_tokens": 2}}

    @ct.llm(model="claude-like", provider="anthropic")
    def generate(messages):
        return Completion()

    generate("Say hello in French")
    span = traced.one("chat claude-like")
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert span.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert messages_of(span, A.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "text", "content": "Bonjour"}]


async def test_coroutine_is_traced_and_keeps_its_context(traced):
    @ct.llm(model="async-m", route="search")
    async def generate(messages):
        await asyncio.sleep(0)
        return trace.get_current_span().get_span_context().span_id

    span_id = await generate("q")
    span = traced.one("chat async-m")
    assert span.context.span_id == span_id
    assert messages_of(span, A.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == str(span_id)
    assert asyncio.iscoroutinefunction(generate) and is_instrumented(generate)


def test_exception_marks_the_span_and_is_reraised_unchanged(traced):
    error = KeyError("quota")

    @ct.llm(model="m")
    def generate(messages):
        raise error

    with pytest.raises(KeyError) as raised:
        generate("hi")
    assert raised.value is error
    span = traced.one("chat m")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "KeyError"
    assert any(e.name == "exception" for e in span.events)
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_async_exception_marks_the_span_and_is_reraised(traced):
    @ct.llm(model="m")
    async def generate(messages):
        raise TimeoutError("upstream")

    with pytest.raises(TimeoutError, match="upstream"):
        await generate("hi")
    span = traced.one("chat m")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "TimeoutError"


def test_scope_attributes_are_copied_and_explicit_arguments_win(traced):
    @ct.llm(model="m", route="explicit-route")
    def generate(messages):
        return "ok"

    scope = {A.CANARY_VARIANT: "candidate", A.CANARY_PAIR_ID: "p-1", A.CANARY_ROUTE: "scope-route"}
    with scoped_attributes(scope):
        generate("hi")
    generate("outside")
    inside, outside = traced.named("chat m")
    assert inside.attributes[A.CANARY_VARIANT] == "candidate"
    assert inside.attributes[A.CANARY_PAIR_ID] == "p-1"
    assert inside.attributes[A.CANARY_ROUTE] == "explicit-route"
    assert A.CANARY_VARIANT not in outside.attributes


def test_nested_llm_calls_nest_their_spans(traced):
    @ct.llm(model="inner")
    def inner(messages):
        return "inner answer"

    @ct.llm(model="outer", route="r")
    def outer(messages):
        return inner(messages) + "!"

    outer("hi")
    inner_span, outer_span = traced.one("chat inner"), traced.one("chat outer")
    assert inner_span.parent.span_id == outer_span.context.span_id
    assert inner_span.context.trace_id == outer_span.context.trace_id


def test_bare_decorator_and_no_prompt_argument(traced):
    @ct.llm
    def ping():
        return "pong"

    assert ping() == "pong"
    span = traced.one("chat")
    assert A.GEN_AI_INPUT_MESSAGES not in span.attributes
    assert is_instrumented(ping)
