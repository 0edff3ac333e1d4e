"""Build OTLP requests for collector tests: protobuf messages, OTLP JSON, and foreign conventions.

The OpenInference / OpenLLMetry / traceAI payloads use the attribute names those
instrumentations write (as data, the way their spans arrive on the wire).
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from canarytrace import attributes as A

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def set_value(target: AnyValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()
        for item in value:
            set_value(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        for key, item in value.items():
            kv = target.kvlist_value.values.add()
            kv.key = key
            set_value(kv.value, item)
    else:
        target.string_value = value


def add_attributes(container: Any, attributes: Mapping[str, Any]) -> None:
    for key, value in attributes.items():
        kv: KeyValue = container.add()
        kv.key = key
        set_value(kv.value, value)


def request(spans: list[dict[str, Any]], service: str = "test-svc",
            resource: Mapping[str, Any] | None = None) -> ExportTraceServiceRequest:
    """One resource and scope holding ``spans`` (dicts of Span fields plus ``attributes``)."""
    message = ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    add_attributes(resource_spans.resource.attributes,
                   {A.SERVICE_NAME: service, **(resource or {})})
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    scope_spans.scope.version = "1.0"
    for fields in spans:
        span = scope_spans.spans.add()
        fields = dict(fields)
        add_attributes(span.attributes, fields.pop("attributes", {}))
        for event in fields.pop("events", []):
            added = span.events.add(time_unix_nano=event["time"], name=event["name"])
            add_attributes(added.attributes, event.get("attributes", {}))
        for link in fields.pop("links", []):
            span.links.add(trace_id=link["trace_id"], span_id=link["span_id"])
        status = fields.pop("status", None)
        if status:
            span.status.code, span.status.message = status
        for key, value in fields.items():
            setattr(span, key, value)
    return message


def span(name: str = "chat m", attributes: Mapping[str, Any] | None = None,
         **fields: Any) -> dict[str, Any]:
    """A valid span with fresh random ids, started now, 5 ms long."""
    start = time.time_ns()
    return {"trace_id": os.urandom(16), "span_id": os.urandom(8), "name": name, "kind": 3,
            "start_time_unix_nano": start, "end_time_unix_nano": start + 5_000_000,
            "attributes": dict(attributes or {}), **fields}


def protobuf_body(spans: list[dict[str, Any]], **kwargs: Any) -> bytes:
    return request(spans, **kwargs).SerializeToString()


def json_span(name: str, attributes: list[dict[str, Any]], trace_id: str | None = None,
              span_id: str | None = None) -> dict[str, Any]:
    """A span in the OTLP JSON mapping: hex ids, lowerCamelCase, int64 as strings."""
    start = time.time_ns()
    return {"traceId": trace_id or os.urandom(16).hex(), "spanId": span_id or os.urandom(8).hex(),
            "name": name, "kind": 3, "startTimeUnixNano": str(start),
            "endTimeUnixNano": start + 2_000_000, "attributes": attributes,
            "status": {"code": 1}}


def json_body(spans: list[dict[str, Any]], service: str = "json-svc") -> bytes:
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": A.SERVICE_NAME,
                                     "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "raw-json"}, "spans": spans}]}]}).encode()


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)


def openinference_llm_span() -> dict[str, Any]:
    """An LLM span as Arize OpenInference instrumentation writes it."""
    return span("ChatCompletion", {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.provider": "openai",
        "llm.token_count.prompt": 21,
        "llm.token_count.completion": 9,
        "llm.token_count.total": 30,
        "llm.invocation_parameters": json.dumps({"temperature": 0.2, "max_tokens": 64}),
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You are terse.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "What is 2+2?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "calculator",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments":
            json.dumps({"expression": "2+2"}),
        "session.id": "sess-42",
        "input.value": "What is 2+2?",
        "output.value": "4",
    })


def openllmetry_span() -> dict[str, Any]:
    """A chat span as Traceloop OpenLLMetry writes it (legacy indexed prompt attributes)."""
    return span("openai.chat", {
        "llm.request.type": "chat",
        "gen_ai.system": "OpenAI",
        "gen_ai.request.model": "gpt-3.5-turbo",
        "gen_ai.response.model": "gpt-3.5-turbo-0125",
        "gen_ai.usage.prompt_tokens": 14,
        "gen_ai.usage.completion_tokens": 6,
        "llm.usage.total_tokens": 20,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Tell me a joke",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Why did the chicken cross the road?",
        "gen_ai.completion.0.finish_reason": "stop",
    })


def openllmetry_usage_span() -> dict[str, Any]:
    """An older OpenLLMetry span: only ``llm.usage.*`` token counts and ``llm.request.model``."""
    return span("anthropic.completion", {
        "llm.request.type": "completion",
        "llm.request.model": "claude-instant",
        "llm.usage.prompt_tokens": 7,
        "llm.usage.completion_tokens": 3,
    })


def traceai_span() -> dict[str, Any]:
    """A FutureAGI traceAI LLM span: ``fi.span.kind`` plus OpenInference-style ``llm.*``."""
    return span("OpenAI.chat", {
        "fi.span.kind": "LLM",
        "llm.model_name": "gpt-4.1",
        "llm.token_count.prompt": 11,
        "llm.token_count.completion": 4,
        "raw.input": json.dumps({"model": "gpt-4.1",
                                 "messages": [{"role": "user", "content": "hi there"}]}),
        "raw.output": json.dumps({"choices": [{"message": {"role": "assistant",
                                                           "content": "hello!"},
                                               "finish_reason": "stop"}]}),
    })
