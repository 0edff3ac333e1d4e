"""OTLP spans become otel_traces rows the way the Go ClickHouse exporter writes them, with
foreign GenAI conventions normalized to the canonical attributes."""

from __future__ import annotations

import json
import os

import pytest

from canarytrace import attributes as A
from canarytrace import messages
from canarytrace.collector.normalize import normalize
from canarytrace.collector.rows import Limits, RowBuilder, format_double
from tests.collector import otlp_payloads as P

BUILDER = RowBuilder(Limits())


def convert_one(span: dict, builder: RowBuilder = BUILDER, **kwargs) -> dict:
    converted = builder.convert(P.request([span], **kwargs), "proj-a")
    assert converted.rejected == 0, converted.errors
    (row,) = converted.rows
    return row


def test_row_matches_the_go_exporter_columns_and_value_formats():
    trace_id, span_id, parent = os.urandom(16), os.urandom(8), os.urandom(8)
    start = 1_714_567_890_123_456_789
    row = convert_one({
        "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": "chat m",
        "kind": 3, "start_time_unix_nano": start, "end_time_unix_nano": start + 42,
        "trace_state": "k=v", "status": (2, "boom"),
        "attributes": {"i": 7, "b": True, "f": 0.5, "whole": 2.0, "s": "x", "list": [1, "a"],
                       "map": {"z": 1, "a": False}, "raw": b"\x00\x01"},
        "events": [{"time": start + 1, "name": "exception", "attributes": {"n": 1}}],
        "links": [{"trace_id": os.urandom(16), "span_id": os.urandom(8)}],
    }, service="svc")
    assert row["Timestamp"] == start  # integer nanoseconds: nothing for ClickHouse to parse
    assert (row["TraceId"], row["SpanId"], row["ParentSpanId"]) == (
        trace_id.hex(), span_id.hex(), parent.hex())
    assert (row["SpanKind"], row["StatusCode"], row["StatusMessage"]) == ("Client", "Error", "boom")
    assert row["Duration"] == 42 and row["ServiceName"] == "svc" and row["TraceState"] == "k=v"
    assert (row["ScopeName"], row["ScopeVersion"]) == ("tests", "1.0")
    assert row["SpanAttributes"] == {"i": "7", "b": "true", "f": "0.5", "whole": "2", "s": "x",
                                     "list": '[1,"a"]', "map": '{"a":false,"z":1}',
                                     "raw": "AAE="}
    assert row["Events.Name"] == ["exception"] and row["Events.Attributes"] == [{"n": "1"}]
    assert row["Events.Timestamp"] == [start + 1]
    assert len(row["Links.TraceId"][0]) == 32 and len(row["Links.SpanId"][0]) == 16


def test_project_is_stamped_over_whatever_the_client_claims():
    row = convert_one(P.span(), resource={A.CANARY_PROJECT: "someone-else"})
    assert row["ResourceAttributes"][A.CANARY_PROJECT] == "proj-a"


@pytest.mark.parametrize("value, text", [(1.0, "1"), (-2.5, "-2.5"), (1e-7, "1e-7"),
                                         (1e21, "1e+21"), (123456789012345680.0,
                                                           "123456789012345680"),
                                         (float("nan"), "NaN"), (float("inf"), "+Inf")])
def test_doubles_are_written_like_go_pcommon(value, text):
    assert format_double(value) == text


def test_long_values_are_truncated_with_the_marker_and_counted():
    builder = RowBuilder(Limits(max_attribute_length=100))
    converted = builder.convert(P.request([P.span(attributes={"big": "x" * 1000, "ok": "y"})]),
                                "p")
    attrs = converted.rows[0]["SpanAttributes"]
    assert attrs["big"] == "x" * 100 + A.TRUNCATION_MARKER and attrs["ok"] == "y"
    assert converted.truncated_values == 1


@pytest.mark.parametrize("fields, reason", [
    ({"trace_id": b"\x01" * 8}, "trace_id must be 16 bytes, got 8"),
    ({"trace_id": bytes(16)}, "trace_id is all zeros"),
    ({"span_id": b"\x01" * 4}, "span_id must be 8 bytes, got 4"),
    ({"parent_span_id": b"\x01" * 3}, "parent_span_id must be 8 bytes or empty, got 3"),
    ({"start_time_unix_nano": 0}, "start_time_unix_nano 0 is outside"),
    ({"attributes": {f"k{i}": i for i in range(30)}}, "30 attributes; the limit is 20"),
    ({"attributes": {"k" * 50: 1}}, "attribute key of 50 characters; the limit is 40"),
])
def test_an_invalid_span_is_rejected_alone_with_its_reason(fields, reason):
    builder = RowBuilder(Limits(max_attributes_per_span=20, max_attribute_key_length=40))
    good, bad = P.span("good"), {**P.span("bad"), **fields}
    converted = builder.convert(P.request([good, bad]), "p")
    assert [r["SpanName"] for r in converted.rows] == ["good"]
    assert converted.rejected == 1
    assert reason in converted.error_message()
    assert converted.error_message().startswith("rejected 1 span(s): span ")


def test_openinference_llm_span_gets_canonical_attributes_and_keeps_raw_ones():
    attrs = convert_one(P.openinference_llm_span())["SpanAttributes"]
    assert attrs[A.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[A.GEN_AI_OPERATION_NAME] == A.OPERATION_CHAT
    assert (attrs[A.GEN_AI_USAGE_INPUT_TOKENS], attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS]) == ("21", "9")
    assert attrs[A.GEN_AI_REQUEST_TEMPERATURE] == "0.2"
    assert attrs[A.GEN_AI_REQUEST_MAX_TOKENS] == "64"
    assert attrs[A.GEN_AI_CONVERSATION_ID] == "sess-42"
    inputs = messages.loads(attrs[A.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in inputs] == ["system", "user"]
    assert messages.text_of(inputs, role="user") == "What is 2+2?"
    outputs = messages.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])
    assert messages.tool_calls_of(outputs) == [{"name": "calculator",
                                                "arguments": {"expression": "2+2"}}]
    assert attrs[A.OPENINFERENCE_MODEL_NAME] == "gpt-4o-mini"  # raw kept


def test_openllmetry_legacy_prompt_and_completion_become_messages():
    attrs = convert_one(P.openllmetry_span())["SpanAttributes"]
    assert attrs[A.GEN_AI_OPERATION_NAME] == A.OPERATION_CHAT
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "openai"  # gen_ai.system "OpenAI", lower-cased
    assert (attrs[A.GEN_AI_USAGE_INPUT_TOKENS], attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS]) == ("14", "6")
    outputs = messages.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])
    assert outputs[0]["finish_reason"] == "stop"
    assert messages.text_of(outputs) == "Why did the chicken cross the road?"
    assert messages.text_of(messages.loads(attrs[A.GEN_AI_INPUT_MESSAGES])) == "Tell me a joke"
    assert attrs["gen_ai.prompt.0.content"] == "Tell me a joke"  # raw kept


def test_openllmetry_llm_usage_tokens_and_request_model():
    attrs = convert_one(P.openllmetry_usage_span())["SpanAttributes"]
    assert attrs[A.GEN_AI_REQUEST_MODEL] == "claude-instant"
    assert attrs[A.GEN_AI_OPERATION_NAME] == A.OPERATION_TEXT_COMPLETION
    assert (attrs[A.GEN_AI_USAGE_INPUT_TOKENS], attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS]) == ("7", "3")


def test_traceai_span_is_normalized_including_raw_request_messages():
    attrs = convert_one(P.traceai_span())["SpanAttributes"]
    assert attrs[A.GEN_AI_REQUEST_MODEL] == "gpt-4.1"
    assert attrs[A.GEN_AI_OPERATION_NAME] == A.OPERATION_CHAT
    assert (attrs[A.GEN_AI_USAGE_INPUT_TOKENS], attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS]) == ("11", "4")
    assert messages.text_of(messages.loads(attrs[A.GEN_AI_INPUT_MESSAGES])) == "hi there"
    output = messages.loads(attrs[A.GEN_AI_OUTPUT_MESSAGES])
    assert messages.text_of(output) == "hello!" and output[0]["finish_reason"] == "stop"


def test_openinference_tool_and_openllmetry_tool_spans():
    oi = {A.OPENINFERENCE_SPAN_KIND: "TOOL", A.OPENINFERENCE_TOOL_NAME: "lookup_invoice",
          A.OPENINFERENCE_INPUT_VALUE: '{"id": 7}', A.OPENINFERENCE_OUTPUT_VALUE: "paid"}
    normalize(oi)
    assert (oi[A.GEN_AI_OPERATION_NAME], oi[A.GEN_AI_TOOL_NAME]) == (
        A.OPERATION_EXECUTE_TOOL, "lookup_invoice")
    assert oi[A.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"id": 7}'
    assert oi[A.GEN_AI_TOOL_CALL_RESULT] == "paid"
    tl = {A.TRACELOOP_SPAN_KIND: "tool", A.TRACELOOP_ENTITY_NAME: "search",
          A.TRACELOOP_ENTITY_INPUT: '{"q": "x"}', A.TRACELOOP_ENTITY_OUTPUT: "[]"}
    normalize(tl)
    assert (tl[A.GEN_AI_OPERATION_NAME], tl[A.GEN_AI_TOOL_NAME]) == (A.OPERATION_EXECUTE_TOOL,
                                                                     "search")
    assert tl[A.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"q": "x"}'


def test_older_genai_names_map_to_current_ones():
    attrs = {A.GEN_AI_SYSTEM: "vllm", A.GEN_AI_USAGE_PROMPT_TOKENS: "3",
             A.GEN_AI_USAGE_COMPLETION_TOKENS: "4",
             A.GEN_AI_PROMPT: json.dumps([{"role": "user", "content": "hey"}])}
    normalize(attrs)
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "vllm"
    assert (attrs[A.GEN_AI_USAGE_INPUT_TOKENS], attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS]) == ("3", "4")
    assert messages.text_of(messages.loads(attrs[A.GEN_AI_INPUT_MESSAGES])) == "hey"


def test_canonical_attributes_win_over_foreign_ones():
    attrs = {A.GEN_AI_REQUEST_MODEL: "tuned-7b", A.OPENINFERENCE_MODEL_NAME: "other",
             A.GEN_AI_USAGE_INPUT_TOKENS: "5", A.OPENINFERENCE_PROMPT_TOKENS: "99"}
    normalize(attrs)
    assert attrs[A.GEN_AI_REQUEST_MODEL] == "tuned-7b" and attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == "5"


def test_canonical_spans_are_left_exactly_as_sent():
    attrs = {A.GEN_AI_REQUEST_MODEL: "m", A.CANARY_VARIANT: A.VARIANT_BASE}
    assert normalize(dict(attrs)) is False


def test_the_arrow_table_built_by_column_holds_the_same_spans_as_the_rows():
    """What the collector spools (columns straight from protobuf) equals the rows it names."""
    from canarytrace.store import span_columns

    start = 1_714_567_890_000_000_000
    request = P.request([
        P.span(attributes={"a": "1"}),
        {**P.span(), "events": [{"time": start, "name": "e", "attributes": {"k": 2}}]},
        {**P.span(), "trace_id": b"short"},  # rejected: the table has no hole for it
        {**P.span(), "links": [{"trace_id": os.urandom(16), "span_id": os.urandom(8)}]},
    ], service="one")
    other = request.resource_spans.add()
    other.CopyFrom(P.request([P.span()], service="two").resource_spans[0])
    converted = BUILDER.convert(request, "proj")
    assert converted.rejected == 1 and len(converted.spans) == 4

    table = converted.table()
    assert table.equals(span_columns.table(converted.rows))
    rows = table.to_pylist()
    assert [row["ServiceName"] for row in rows] == ["one", "one", "one", "two"]
    assert [row["Events.Name"] for row in rows] == [[], ["e"], [], []]
    assert [len(row["Links.SpanId"]) for row in rows] == [0, 0, 1, 0]
    assert dict(rows[1]["Events.Attributes"][0]) == {"k": "2"}
    assert BUILDER.convert(P.request([]), "proj").table().num_rows == 0
