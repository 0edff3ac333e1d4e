"""The ingest fast path (collector/wire.py) builds exactly the table the general path builds
from the same body, or steps aside; it never accepts what the general path refuses."""

from __future__ import annotations

import asyncio
import os
import random

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from canarytrace import attributes as A
from canarytrace.collector import otlp, prepare, wire
from canarytrace.collector.rows import Limits, RowBuilder
from canarytrace.store import span_columns
from tests.collector import otlp_payloads as P
from tests.collector.conftest import wait_for
from tests.support.faults import metric

BUILDER = RowBuilder(Limits())
OUTPUT = '[{"role": "assistant", "parts": [], "finish_reason": "stop"}]'
EVERY_KIND = {
    "text": "plain", "unicode": "żółw 🐢 — ok", "empty": "", "": "empty key",
    "int": 42, "negative": -7, "int64 min": -(2**63), "int64 max": 2**63 - 1, "zero": 0,
    "true": True, "false": False, "double": 0.1, "whole double": 3.0, "tiny": 1e-7,
    "huge": 1e21, "nan": float("nan"), "inf": float("-inf"),
    "array": ["a", 1, [True, 2.5]], "map": {"k": "v", "n": {"m": 1}}, "bytes": b"\x00\xff",
    "ключ": "значение",
}


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    wire.warm_up()


def both(body: bytes, builder: RowBuilder = BUILDER, project: str = "proj"):
    """The fast path's result, after checking it against the general path's."""
    fast = wire.columns(body, project, builder)
    try:
        converted = builder.convert(otlp.decode(body, otlp.Encoding.PROTOBUF), project)
    except otlp.BadRequest:
        assert fast is None, "the fast path accepted a body the general path refuses"
        return None
    if fast is not None:
        assert converted.rejected == 0
        assert fast.truncated_values == converted.truncated_values
        assert fast.table.equals(converted.table())
    return fast


def genai_span(**attributes) -> dict:
    return P.span(attributes={A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_REQUEST_MODEL: "m",
                              A.GEN_AI_OUTPUT_MESSAGES: OUTPUT, A.GEN_AI_USAGE_INPUT_TOKENS: 12,
                              **attributes})


def test_a_genai_request_takes_the_fast_path_with_its_finish_reasons():
    fast = both(P.protobuf_body([genai_span() for _ in range(20)]))
    assert fast is not None and fast.table.num_rows == 20
    row = fast.table.to_pylist()[0]
    assert dict(row["SpanAttributes"])[A.GEN_AI_RESPONSE_FINISH_REASONS] == '["stop"]'
    assert dict(row["ResourceAttributes"])[A.CANARY_PROJECT] == "proj"


def test_values_of_every_kind_are_written_as_the_general_path_writes_them():
    body = P.protobuf_body([P.span(attributes=EVERY_KIND)], resource=EVERY_KIND)
    fast = both(body)
    assert fast is not None
    assert dict(fast.table.to_pylist()[0]["SpanAttributes"])["int64 min"] == str(-(2**63))


def test_span_fields_resources_and_scopes_match():
    request = P.request([
        P.span(kind=kind, parent_span_id=os.urandom(8), trace_state="a=b",
               status=(kind % 3, "why"), end_time_unix_nano=1)  # ends before it starts
        for kind in range(6)], service="one")
    request.resource_spans[0].schema_url = "https://opentelemetry.io/schemas/1.26.0"
    second = request.resource_spans.add()
    second.CopyFrom(P.request([P.span(end_time_unix_nano=2**64 - 1)], service="two")
                    .resource_spans[0])
    second.scope_spans.add().spans.add().CopyFrom(second.scope_spans[0].spans[0])  # no scope
    second.scope_spans[1].spans[0].span_id = os.urandom(8)
    request.resource_spans.add().scope_spans.add().spans.add(  # a resource with no fields
        trace_id=os.urandom(16), span_id=os.urandom(8), start_time_unix_nano=1)
    fast = both(request.SerializeToString())
    assert fast is not None and fast.table.num_rows == 9
    assert fast.table.column("ServiceName").to_pylist()[5:] == ["one", "two", "two", ""]


def varint(value: int) -> bytes:
    out = b""
    while value >= 0x80:
        out, value = out + bytes([value & 0x7F | 0x80]), value >> 7
    return out + bytes([value])


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand (protobuf would merge repeats)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def wrapped(span: bytes) -> bytes:
    """A request of one resource, scope and the span's bytes."""
    return field(1, field(2, field(2, span)))


def span_bytes(**attributes) -> bytes:
    return P.request([genai_span(**attributes)]).resource_spans[0].scope_spans[0].spans[0] \
        .SerializeToString()


def test_fields_unknown_to_this_version_are_skipped():
    unknown = varint(101 << 3) + b"\x01" + field(102, b"abc")  # fields 101 (varint) and 102 (bytes)
    assert both(wrapped(span_bytes() + unknown) + unknown) is not None


@pytest.mark.parametrize("case", [
    "events", "links", "rejected", "truncated", "openinference", "duplicate key",
    "too many attributes", "nested json", "empty finish reasons", "status twice",
    "value twice",
])
def test_what_the_fast_path_does_not_cover_goes_the_general_way(case):
    builder = BUILDER
    spans = [genai_span()]
    if case == "events":
        spans.append({**P.span(), "events": [{"time": 1, "name": "e"}]})
    elif case == "links":
        spans.append({**P.span(), "links": [{"trace_id": os.urandom(16),
                                              "span_id": os.urandom(8)}]})
    elif case == "rejected":
        spans.append({**P.span(), "trace_id": b"short"})
    elif case == "truncated":
        builder = RowBuilder(Limits(max_attribute_length=8))
    elif case == "openinference":
        spans.append(P.openinference_llm_span())
    elif case == "too many attributes":
        builder = RowBuilder(Limits(max_attributes_per_span=3))
    elif case == "nested json":
        spans.append(P.span(attributes={"deep": "[" * 65 + "]" * 65}))
    elif case == "empty finish reasons":
        spans.append(genai_span(**{A.GEN_AI_RESPONSE_FINISH_REASONS: ""}))
    body = P.protobuf_body(spans)
    if case == "duplicate key":
        request = ExportTraceServiceRequest.FromString(body)
        attributes = request.resource_spans[0].scope_spans[0].spans[0].attributes
        attributes.add(key=A.GEN_AI_REQUEST_MODEL).value.string_value = "second"
        body = request.SerializeToString()
    if case == "value twice":  # an AnyValue sent in two parts
        key_value = field(1, b"k") + field(2, b"\x0a\x01a") + field(2, b"\x18\x05")
        body = wrapped(span_bytes() + field(9, key_value))
    if case == "status twice":  # protobuf merges the two: the code of one, message of other
        body = wrapped(span_bytes() + field(15, b"\x18\x02") + field(15, b"\x12\x01x"))
    assert wire.columns(body, "proj", builder) is None
    both(body, builder)


def test_bad_utf8_and_cut_bodies_are_left_to_the_general_path_which_refuses_them():
    body = P.protobuf_body([genai_span(note="MARK")])
    assert both(body.replace(b"MARK", b"M\xffRK")) is None
    for cut in (1, 7, len(body) // 2, len(body) - 1):
        both(body[:cut])


def test_varints_longer_than_protobuf_reads_are_left_to_the_general_path():
    """A tag or a length in more than 5 bytes, an int of over 64 bits: protobuf decides."""
    span = span_bytes()
    overlong_tag = b"\x8a\x80\x80\x80\x80\x00"  # field 1, bytes, in 6 bytes
    int_past_64_bits = field(2, b"\x18" + b"\xff" * 9 + b"\x02")
    for body in (wrapped(span).replace(b"\x0a", overlong_tag, 1),
                 field(1, field(2, b"\x12\x80\x80\x80\x80\x80" + bytes([len(span)]) + span)),
                 wrapped(span + field(9, field(1, b"k") + int_past_64_bits))):
        assert wire.columns(body, "proj", BUILDER) is None
        both(body)
    assert both(wrapped(span).replace(b"\x0a", b"\x8a\x80\x80\x80\x00", 1)) is not None


@pytest.mark.parametrize("where", ["span", "resource", "scope"])
def test_values_nested_to_protobufs_limit_are_refused_as_the_general_path_refuses_them(where):
    """Protobuf stops at 100 nested messages counted from the request: the fast path parses
    values where they sit, so a nesting one path refuses the other refuses too."""
    builder = RowBuilder(Limits(max_json_depth=500))
    for depth in (20, 30, 31, 32, 46, 47, 48, 60):
        value = "x"
        for _ in range(depth):
            value = [value] if depth % 2 else {"k": value}
        request = P.request([P.span(attributes={"deep": value} if where == "span" else {})],
                            resource={"deep": value} if where == "resource" else None)
        if where == "scope":
            P.add_attributes(request.resource_spans[0].scope_spans[0].scope.attributes,
                             {"deep": value})
        both(request.SerializeToString(), builder)


def test_random_requests_match_and_take_the_fast_path():
    rng = random.Random(13)
    pool = list(EVERY_KIND.items()) + [(A.GEN_AI_OUTPUT_MESSAGES, OUTPUT),
                                       (A.GEN_AI_OUTPUT_MESSAGES, '{"finish_reason": "length"}'),
                                       (A.GEN_AI_OUTPUT_MESSAGES, "not json finish_reason")]
    for _ in range(40):
        spans = [P.span(name=rng.choice(["chat", "", "ü"]),
                        attributes=dict(rng.sample(pool, rng.randint(0, 8))))
                 for _ in range(rng.randint(1, 30))]
        assert both(P.protobuf_body(spans, resource=dict(rng.sample(pool, 3)))) is not None


def test_mutated_bodies_never_differ_from_the_general_path():
    """Seeded byte flips, cuts and insertions: either path's answer, never a third one."""
    rng = random.Random(7)
    body = P.protobuf_body([genai_span(), P.span(attributes=EVERY_KIND)])
    taken = 0
    for _ in range(1500):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(mutated))
            action = rng.random()
            if action < 0.6:
                mutated[at] = rng.randrange(256)
            elif action < 0.8:
                del mutated[at:at + rng.randint(1, 4)]
            else:
                mutated[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        taken += both(bytes(mutated)) is not None
    assert taken > 100  # flips inside values and ids leave a request the fast path takes


def test_requests_of_the_opentelemetry_sdk_take_the_fast_path():
    """The real SDK's OTLP encoder: schema URLs, scope attributes, span flags, every value
    kind an SDK attribute can have, a parent and a status."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({A.SERVICE_NAME: "sdk"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t", "1.0", schema_url="https://opentelemetry.io/schemas/1.26.0",
                                 attributes={"scope.attr": 1})
    with tracer.start_as_current_span("parent") as parent:
        parent.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT, attributes={
                "i": 1, "f": 0.25, "b": True, "s": "x", "strings": ["a", "b"], "ints": [1, 2],
                A.GEN_AI_OUTPUT_MESSAGES: OUTPUT}):
            pass
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    fast = both(body)
    assert fast is not None and fast.table.column("StatusMessage").to_pylist() == ["", "boom"]


def test_prepare_spools_the_fast_tables_once_the_fast_path_is_loaded():
    prepare._load_fast_path()
    body = P.protobuf_body([genai_span() for _ in range(3)])
    prepared = prepare.prepare(body, otlp.Encoding.PROTOBUF, "proj", BUILDER)
    general = BUILDER.convert(otlp.decode(body, otlp.Encoding.PROTOBUF), "proj").table()
    assert prepared.rows == 3 and span_columns.from_ipc(prepared.payload).equals(general)
    assert prepared.fast


def test_a_failing_fast_path_sends_the_request_the_general_way(monkeypatch):
    def broken(body, project, builder):
        raise MemoryError("no room for the walk's arrays")

    monkeypatch.setattr(prepare, "_fast_columns", broken)
    body = P.protobuf_body([genai_span()])
    prepared = prepare.prepare(body, otlp.Encoding.PROTOBUF, "proj", BUILDER)
    assert prepared.rows == 1 and not prepared.fast


@pytest.mark.parametrize("fast_path", [True, False])
def test_the_fast_path_can_be_switched_off(fast_path):
    """CANARYTRACE_INGEST_FAST_PATH=false: every request by the general path, same table."""
    prepare._load_fast_path()
    preparer = prepare.Preparer(Limits(), 0, fast_path)
    body = P.protobuf_body([genai_span()])
    prepared = asyncio.run(preparer.prepare(body, otlp.Encoding.PROTOBUF, "proj"))
    assert prepared.fast is fast_path and prepared.rows == 1


def test_a_collector_converts_protobuf_requests_by_the_fast_path(collector):
    """Its ingest worker loads the fast path in the background; from then on it serves."""
    def fast_spans() -> float:
        httpx.post(f"{collector.url}/v1/traces", content=P.protobuf_body([genai_span()]),
                   headers=P.PROTOBUF)
        return metric(httpx, collector.url, "canarytrace_spans_fast_path_total")

    assert wait_for(fast_spans, timeout=60, what="a span by the fast path") >= 1
