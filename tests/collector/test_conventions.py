"""Normalization of the other GenAI conventions, from the attributes each instrumentation sends
(captured from the real instrumentors at the versions pinned in the test extra)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canarytrace import attributes as A
from canarytrace import messages
from canarytrace.collector.normalize import MAPPINGS, normalize, provider_name

ROOT = Path(__file__).resolve().parents[2]
TOOL = json.dumps({"type": "function", "function": {
    "name": "get_weather", "description": "w", "parameters": {"type": "object"}}})


def normalized(attrs: dict) -> dict:
    attrs = dict(attrs)
    normalize(attrs)
    return attrs


def test_traceai_0_1_10_stream_gets_operation_model_and_text():
    attrs = normalized({
        A.TRACEAI_GEN_AI_SPAN_KIND: "LLM", A.GEN_AI_PROVIDER_NAME: "openai",
        "gen_ai.input.messages.0.message.role": "user",
        "gen_ai.input.messages.0.message.content": "say: hi",
        A.TRACEAI_REQUEST_PARAMETERS: '{"model": "gpt-4o-mini", "stream": true}',
        A.GEN_AI_TOOL_DEFINITIONS: "null", A.OPENINFERENCE_OUTPUT_VALUE: "hi"})
    assert attrs[A.GEN_AI_OPERATION_NAME] == A.OPERATION_CHAT
    assert attrs[A.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert messages.text_of(messages.loads(attrs[A.GEN_AI_INPUT_MESSAGES])) == "say: hi"
    assert messages.text_of(messages.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])) == "hi"


def test_traceai_request_model_is_the_requested_one_and_tools_are_collected():
    attrs = normalized({
        A.TRACEAI_GEN_AI_SPAN_KIND: "LLM", A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini-2024-01-01",
        A.TRACEAI_REQUEST_PARAMETERS: '{"model": "gpt-4o-mini", "temperature": 0.2}',
        "gen_ai.output.messages.0.message.role": "assistant",
        "gen_ai.output.messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
        "gen_ai.output.messages.0.message.tool_calls.0.tool_call.function.arguments":
            '{"city": "Paris"}',
        A.GEN_AI_TOOL_DEFINITIONS: json.dumps([json.loads(TOOL)]),
        "gen_ai.tool.definitions.0.tool.json_schema": TOOL})
    assert (attrs[A.GEN_AI_REQUEST_MODEL], attrs[A.GEN_AI_RESPONSE_MODEL]) == (
        "gpt-4o-mini", "gpt-4o-mini-2024-01-01")
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == "0.2"
    assert messages.tool_calls_of(messages.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])) == [
        {"name": "get_weather", "arguments": {"city": "Paris"}}]


def test_openinference_request_model_finish_reason_and_tools():
    attrs = normalized({
        A.OPENINFERENCE_SPAN_KIND: "LLM", A.OPENINFERENCE_MODEL_NAME: "gpt-4o-mini-2024-01-01",
        A.OPENINFERENCE_INVOCATION_PARAMETERS: '{"model": "gpt-4o-mini", "max_tokens": 50}',
        A.OPENINFERENCE_FINISH_REASON: "tool_calls", A.OPENINFERENCE_SYSTEM: "openai",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.tools.0.tool.json_schema": TOOL})
    assert (attrs[A.GEN_AI_REQUEST_MODEL], attrs[A.GEN_AI_RESPONSE_MODEL]) == (
        "gpt-4o-mini", "gpt-4o-mini-2024-01-01")
    assert json.loads(attrs[A.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_calls"]
    assert messages.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])[0]["finish_reason"] == "tool_calls"
    assert json.loads(attrs[A.GEN_AI_TOOL_DEFINITIONS]) == [
        {"type": "function", "name": "get_weather", "description": "w",
         "parameters": {"type": "object"}}]
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == "50"


def test_openllmetry_legacy_finish_reasons_and_functions():
    attrs = normalized({
        A.LLM_REQUEST_TYPE: "chat", A.GEN_AI_SYSTEM: "OpenAI",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.completion.0.content": "ok", "gen_ai.completion.1.finish_reason": "length",
        "llm.request.functions.0.name": "get_weather",
        "llm.request.functions.0.description": "w",
        "llm.request.functions.0.parameters": '{"type": "object"}'})
    assert json.loads(attrs[A.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop", "length"]
    assert json.loads(attrs[A.GEN_AI_TOOL_DEFINITIONS]) == [
        {"type": "function", "name": "get_weather", "description": "w",
         "parameters": {"type": "object"}}]
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "openai"


@pytest.mark.parametrize(("system", "provider"), [
    ("OpenAI", "openai"), ("Anthropic", "anthropic"), ("AWS Bedrock", "aws.bedrock"),
    ("Azure", "azure.ai.openai"), ("MistralAI", "mistral_ai"), ("VertexAI", "gcp.vertex_ai"),
    ("SomethingNew", "somethingnew")])
def test_gen_ai_system_values_become_the_conventions_provider_names(system, provider):
    assert provider_name(system) == provider
    assert normalized({A.GEN_AI_SYSTEM: system})[A.GEN_AI_PROVIDER_NAME] == provider


def test_a_canonical_stream_gets_its_finish_reasons_from_its_output_messages():
    output = [{"role": "assistant", "parts": [], "finish_reason": "stop"}]
    attrs = normalized({A.GEN_AI_OPERATION_NAME: "chat",
                        A.GEN_AI_OUTPUT_MESSAGES: json.dumps(output)})
    assert json.loads(attrs[A.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]


def test_the_readme_conformance_table_lists_every_mapping():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Conformance"):]
    section = section[:section.index("\n## ")]
    for mapping in MAPPINGS:
        row = f"| {mapping.convention} | `{mapping.source}` | `{mapping.target}` |"
        assert row in section, f"README conformance table misses {row}"
