"""Bad input gets one 4xx with a precise message, the server stays up, and nothing is stored."""

from __future__ import annotations

import gzip
import json
import os
import zlib

import httpx
import pytest
from google.rpc import status_pb2

from tests.collector import otlp_payloads as P
from tests.collector.conftest import spans_of, wait_for_spans

MIB = 1024 * 1024
MARKER = "malformed-input"  # every bad payload's service name; none may ever be stored


def proto(*spans: dict, **kwargs) -> bytes:
    return P.protobuf_body(list(spans), service=MARKER, **kwargs)


def bad_span(**fields) -> dict:
    return {**P.span("bad"), **fields}


def json_doc(document) -> bytes:
    return json.dumps(document).encode()


def json_span_doc(**overrides) -> bytes:
    span = {**P.json_span("bad", []), **overrides}
    return P.json_body([span], service=MARKER)


def bomb() -> bytes:
    """~100 KiB of gzip that inflates to 100 MiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(MIB)
    return b"".join([compressor.compress(chunk) for _ in range(100)] + [compressor.flush()])


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


VALID = proto(P.span())
CASES = [  # id, body, headers, status, message fragment
    ("protobuf-garbage", b"\x0a\xff\xff\xff\xff\x0f", P.PROTOBUF, 400,
     "malformed protobuf ExportTraceServiceRequest"),
    ("protobuf-truncated", VALID[: len(VALID) // 2], P.PROTOBUF, 400, "malformed protobuf"),
    ("protobuf-bad-utf8", proto(P.span(attributes={"k": "vé"})).replace("vé".encode(),
                                                                          b"v\xff\xfe"),
     P.PROTOBUF, 400, "bad UTF-8"),
    ("json-syntax", b'{"resourceSpans": [', P.JSON, 400, "malformed JSON"),
    ("json-empty-body", b"", P.JSON, 400, "malformed JSON"),
    ("json-not-an-object", b"[1, 2, 3]", P.JSON, 400, "must be an object"),
    ("json-deeply-nested", b"[" * 100_000, P.JSON, 400, "malformed JSON: nested too deeply"),
    ("json-bad-utf8", b'{"resourceSpans": [], "x": "\xff\xfe"}', P.JSON, 400,
     "not valid UTF-8"),
    ("json-wrong-field-type", json_doc({"resourceSpans": "nope"}), P.JSON, 400,
     "invalid OTLP JSON"),
    ("json-non-hex-trace-id", json_span_doc(traceId="zz" * 16), P.JSON, 400,
     "traceId is not a hex string"),
    ("json-span-not-an-object", json_doc({"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}),
     P.JSON, 400, "invalid OTLP JSON"),
    ("json-bad-int-attribute", json_span_doc(attributes=[{"key": "n", "value": {
        "intValue": "12abc"}}]), P.JSON, 400, "intValue"),
    ("json-bad-int64", json_span_doc(startTimeUnixNano="soon"), P.JSON, 400,
     "startTimeUnixNano"),
    ("json-lone-surrogate", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": '
     b'"\\ud800"}]}]}]}', P.JSON, 400, "Unpaired surrogate"),
    ("json-short-span-id", json_span_doc(spanId="abcd"), P.JSON, 400,
     "span_id must be 8 bytes, got 2"),
    ("content-type-text", VALID, {"Content-Type": "text/plain"}, 415,
     "unsupported Content-Type 'text/plain'"),
    ("content-type-missing", VALID, {}, 415, "unsupported Content-Type '(none)'"),
    ("content-encoding-brotli", VALID, {**P.PROTOBUF, "Content-Encoding": "br"}, 415,
     "unsupported Content-Encoding 'br'"),
    ("gzip-corrupt", b"\x1f\x8b\x08\x00garbage-not-deflate", {**P.PROTOBUF,
                                                             "Content-Encoding": "gzip"},
     400, "body is not valid gzip data"),
    ("gzip-truncated", gzip.compress(VALID)[:-12], {**P.PROTOBUF, "Content-Encoding": "gzip"},
     400, "gzip body is truncated"),
    ("gzip-trailing-garbage", gzip.compress(VALID) + b"not a gzip member",
     {**P.PROTOBUF, "Content-Encoding": "gzip"}, 400, "body is not valid gzip data (member 2)"),
    ("gzip-second-member-truncated", gzip.compress(VALID) + gzip.compress(VALID)[:-12],
     {**P.PROTOBUF, "Content-Encoding": "gzip"}, 400, "gzip body is truncated"),
    ("gzip-bomb", bomb(), {**P.PROTOBUF, "Content-Encoding": "gzip"}, 413,
     "decompressed body exceeds the 8388608-byte limit"),
    ("body-over-limit", proto(P.span(attributes={"blob": "x" * (9 * MIB)})), P.PROTOBUF, 413,
     "exceeds the 8388608-byte limit"),
    ("trace-id-8-bytes", proto(bad_span(trace_id=os.urandom(8))), P.PROTOBUF, 400,
     "trace_id must be 16 bytes, got 8"),
    ("trace-id-zero", proto(bad_span(trace_id=bytes(16))), P.PROTOBUF, 400,
     "trace_id is all zeros"),
    ("span-id-4-bytes", proto(bad_span(span_id=os.urandom(4))), P.PROTOBUF, 400,
     "span_id must be 8 bytes, got 4"),
    ("parent-id-3-bytes", proto(bad_span(parent_span_id=os.urandom(3))), P.PROTOBUF, 400,
     "parent_span_id must be 8 bytes or empty, got 3"),
    ("link-trace-id-short", proto(bad_span(links=[{"trace_id": os.urandom(4),
                                                   "span_id": os.urandom(8)}])),
     P.PROTOBUF, 400, "link trace_id must be 16 bytes, got 4"),
    ("no-start-time", proto(bad_span(start_time_unix_nano=0)), P.PROTOBUF, 400,
     "start_time_unix_nano 0 is outside 1970..2262"),
    ("negative-span-kind", proto(bad_span(kind=-1)), P.PROTOBUF, 400,
     "kind -1 is not a SpanKind (0..5)"),
    ("unknown-span-kind", proto(bad_span(kind=9)), P.PROTOBUF, 400, "kind 9 is not a SpanKind"),
    ("negative-status-code", proto(bad_span(status=(-2, "x"))), P.PROTOBUF, 400,
     "status code -2 is not a StatusCode (0..2)"),
    ("json-negative-span-kind", json_span_doc(kind=-3), P.JSON, 400, "kind -3 is not a SpanKind"),
    ("deeply-nested-message-json", proto(bad_span(attributes={
        "gen_ai.input.messages": "[" * 5000 + "]" * 5000})), P.PROTOBUF, 400,
     "attribute gen_ai.input.messages holds JSON nested 5000 levels deep; the limit is 64"),
    ("deeply-nested-json-in-resource", proto(P.span(), resource={"deep": " " + "{" * 99}),
     P.PROTOBUF, 400, "resource attribute deep holds JSON nested 99 levels deep"),
    ("absurd-attribute-count", proto(bad_span(attributes={f"a{i}": i for i in range(5000)})),
     P.PROTOBUF, 400, "5000 attributes; the limit is 1024"),
    ("absurd-attribute-key", proto(bad_span(attributes={"k" * 100_000: 1})), P.PROTOBUF, 400,
     "attribute key of 100000 characters; the limit is 1024"),
    ("absurd-resource-attributes", proto(P.span(), resource={f"r{i}": i for i in range(3000)}),
     P.PROTOBUF, 400, "resource 3001 attributes; the limit is 1024"),
]


def error_message(response: httpx.Response) -> str:
    """The google.rpc.Status message, in whichever encoding the server answered."""
    if response.headers["content-type"].startswith("application/x-protobuf"):
        return status_pb2.Status.FromString(response.content).message
    return response.json()["message"]


@pytest.mark.parametrize("body, headers, status, message",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_gets_a_precise_4xx(collector, body, headers, status, message):
    response = httpx.post(f"{collector.url}/v1/traces", content=body, headers=headers,
                          timeout=30)
    assert response.status_code == status
    assert message in error_message(response)
    assert httpx.get(f"{collector.url}/healthz").status_code == 200


def test_malformed_inputs_stored_nothing(collector):
    """Run after the cases above (same module collector): only the sentinel span is stored."""
    sentinel = P.protobuf_body([P.span("sentinel")], service=MARKER + "-sentinel")
    assert httpx.post(f"{collector.url}/v1/traces", content=sentinel,
                      headers=P.PROTOBUF).status_code == 200
    wait_for_spans(collector.url, 1, service=MARKER + "-sentinel")
    assert spans_of(collector.url, service=MARKER) == []
    assert [s["SpanName"] for s in spans_of(collector.url)] == ["sentinel"]
    metrics = httpx.get(f"{collector.url}/metrics").text
    assert 'canarytrace_requests_refused_total{status="415"} 3.0' in metrics


def test_headers_over_the_limit_get_431_and_the_connection_is_closed(collector):
    response = httpx.get(f"{collector.url}/healthz", headers={"X-Junk": "x" * (70 * 1024)})
    assert response.status_code == 431
    assert "request headers exceed 65536 bytes" in response.text
    assert httpx.get(f"{collector.url}/healthz").status_code == 200


def test_json_nested_within_the_limit_is_stored(collector):
    nested_ok = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "x",
                                                        "meta": nested(20)}]}])
    body = P.protobuf_body([P.span("nested-ok", attributes={"gen_ai.input.messages": nested_ok})],
                           service=MARKER + "-nested")
    assert httpx.post(f"{collector.url}/v1/traces", content=body,
                      headers=P.PROTOBUF).status_code == 200
    (span,) = wait_for_spans(collector.url, 1, service=MARKER + "-nested")
    assert httpx.get(f"{collector.url}/api/traces/{span['TraceId']}").status_code == 200
