"""End to end: OTLP from real exporters and raw bodies into ``canarytrace serve``, read back
through its API with the canonical columns filled."""

from __future__ import annotations

import gzip
import json
import os

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace import messages
from tests.collector import otlp_payloads as P
from tests.collector.conftest import spans_of, wait_for_spans


def test_sdk_spans_arrive_with_canonical_columns(collector):
    ct.init(service_name="checkout", endpoint=collector.url)
    try:
        with ct.scoped_attributes({A.CANARY_VARIANT: A.VARIANT_CANDIDATE,
                                   A.CANARY_ROLE: A.ROLE_PRIMARY, A.CANARY_PAIR_ID: "pair-9"}), \
                ct.llm_call(model="llama-3-8b-lora", route="billing", cohort="de") as call:
            call.set_input("What do I owe?")
            call.set_output("You owe 12 EUR.", input_tokens=17, output_tokens=6)
    finally:
        ct.shutdown()  # flushes the batch processor through the OTLP/HTTP exporter
    (span,) = wait_for_spans(collector.url, 1, service="checkout")
    assert (span["Model"], span["Variant"], span["Role"], span["PairId"]) == (
        "llama-3-8b-lora", "candidate", "primary", "pair-9")
    assert (span["Route"], span["Cohort"], span["InputTokens"], span["OutputTokens"]) == (
        "billing", "de", 17, 6)
    assert (span["SpanKind"], span["ServiceName"], span["Project"]) == ("Client", "checkout",
                                                                        "default")
    output = messages.loads(span["SpanAttributes"][A.GEN_AI_OUTPUT_MESSAGES])
    assert messages.text_of(output) == "You owe 12 EUR."
    trace = httpx.get(f"{collector.url}/api/traces/{span['TraceId']}").json()
    assert [s["SpanId"] for s in trace["spans"]] == [span["SpanId"]]


def test_otlp_json_body_with_hex_ids_and_string_int64(collector):
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    body = P.json_body([P.json_span("json chat", [
        {"key": A.GEN_AI_REQUEST_MODEL, "value": {"stringValue": "json-model"}},
        {"key": A.GEN_AI_USAGE_INPUT_TOKENS, "value": {"intValue": "41"}},
        {"key": A.GEN_AI_USAGE_OUTPUT_TOKENS, "value": {"intValue": 2}},
        {"key": A.CANARY_FALLBACK, "value": {"boolValue": True}},
        {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
    ], trace_id, span_id)], service="json-svc")
    response = httpx.post(f"{collector.url}/v1/traces", content=body, headers=P.JSON)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}
    wait_for_spans(collector.url, 1, trace_id=trace_id)
    (span,) = httpx.get(f"{collector.url}/api/traces/{trace_id}").json()["spans"]
    assert (span["SpanId"], span["Model"], span["InputTokens"], span["OutputTokens"]) == (
        span_id, "json-model", 41, 2)
    assert span["Fallback"] == 1 and span["SpanAttributes"]["tags"] == '["a"]'
    assert span["StatusCode"] == "Ok" and span["Duration"] == 2_000_000


def test_gzip_bodies_in_both_encodings(collector):
    proto = P.request([P.span("gz-proto")], service="gzip-svc").SerializeToString()
    response = httpx.post(f"{collector.url}/v1/traces", content=gzip.compress(proto),
                          headers={**P.PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    json_body = P.json_body([P.json_span("gz-json", [])], service="gzip-svc")
    response = httpx.post(f"{collector.url}/v1/traces", content=gzip.compress(json_body),
                          headers={**P.JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    names = sorted(s["SpanName"] for s in wait_for_spans(collector.url, 2, service="gzip-svc"))
    assert names == ["gz-json", "gz-proto"]


def test_openinference_and_openllmetry_payloads_get_model_and_token_columns(collector):
    body = P.protobuf_body([P.openinference_llm_span(), P.openllmetry_span(),
                            P.traceai_span(), P.openllmetry_usage_span()], service="foreign")
    assert httpx.post(f"{collector.url}/v1/traces", content=body,
                      headers=P.PROTOBUF).status_code == 200
    spans = {s["Model"]: s for s in wait_for_spans(collector.url, 4, service="foreign")}
    assert {m: (s["InputTokens"], s["OutputTokens"]) for m, s in spans.items()} == {
        "gpt-4o-mini": (21, 9), "gpt-3.5-turbo": (14, 6), "gpt-4.1": (11, 4),
        "claude-instant": (7, 3)}
    phoenix = spans["gpt-4o-mini"]["SpanAttributes"]
    assert phoenix[A.OPENINFERENCE_PROMPT_TOKENS] == "21"  # the raw attribute is kept
    assert messages.text_of(messages.loads(phoenix[A.GEN_AI_INPUT_MESSAGES]), "user") == \
        "What is 2+2?"


def test_partial_success_names_the_rejected_spans(collector):
    bad = {**P.span("bad"), "span_id": b"\x01\x02"}
    body = P.protobuf_body([P.span("ok-1"), bad, P.span("ok-2")], service="partial")
    response = httpx.post(f"{collector.url}/v1/traces", content=body, headers=P.PROTOBUF)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert "span_id must be 8 bytes, got 2" in partial.error_message
    json_spans = [P.json_span("ok-json", []), P.json_span("bad-json", [], trace_id="ab" * 8)]
    response = httpx.post(f"{collector.url}/v1/traces",
                          content=P.json_body(json_spans, service="partial"), headers=P.JSON)
    assert response.status_code == 200
    body = response.json()["partialSuccess"]
    assert body["rejectedSpans"] == "1" and "trace_id must be 16 bytes, got 8" in \
        body["errorMessage"]
    names = sorted(s["SpanName"] for s in wait_for_spans(collector.url, 3, service="partial"))
    assert names == ["ok-1", "ok-2", "ok-json"]


def test_metrics_export_is_accepted_and_prometheus_metrics_count_ingest(collector):
    request = ExportMetricsServiceRequest()
    request.resource_metrics.add().scope_metrics.add()
    response = httpx.post(f"{collector.url}/v1/metrics", content=request.SerializeToString(),
                          headers=P.PROTOBUF)
    assert response.status_code == 200 and response.content == b""
    response = httpx.post(f"{collector.url}/v1/metrics",
                          content=json_format.MessageToJson(request), headers=P.JSON)
    assert response.status_code == 200 and response.json() == {}
    long_value = "z" * (200 * 1024)
    httpx.post(f"{collector.url}/v1/traces", headers=P.PROTOBUF, content=P.protobuf_body(
        [P.span("long", {A.GEN_AI_INPUT_MESSAGES: long_value})], service="long"))
    (span,) = wait_for_spans(collector.url, 1, service="long")
    stored = span["SpanAttributes"][A.GEN_AI_INPUT_MESSAGES]
    assert stored.endswith(A.TRUNCATION_MARKER) and len(stored) < len(long_value)
    text = httpx.get(f"{collector.url}/metrics").text
    for name in ("canarytrace_spans_received_total", "canarytrace_spans_accepted_total",
                 "canarytrace_spans_rejected_total", "canarytrace_spool_bytes",
                 "canarytrace_flush_seconds_bucket", "canarytrace_spans_stored_total"):
        assert name in text
    truncated = next(line for line in text.splitlines()
                     if line.startswith("canarytrace_attribute_values_truncated_total"))
    assert float(truncated.split()[-1]) >= 1


def test_feedback_and_eval_results_through_the_api(collector):
    body = P.protobuf_body([P.span("judged", {A.GEN_AI_REQUEST_MODEL: "cand-m",
                                              A.CANARY_COHORT: "vip"})], service="judged")
    httpx.post(f"{collector.url}/v1/traces", content=body, headers=P.PROTOBUF)
    (span,) = wait_for_spans(collector.url, 1, service="judged")
    url = collector.url
    feedback = {"trace_id": span["TraceId"], "score": -1, "comment": "wrong total"}
    feedback_id = httpx.post(f"{url}/v1/feedback", json=feedback).json()["feedback_id"]
    stored = httpx.get(f"{url}/api/feedback", params={"trace_id": span["TraceId"]}).json()
    assert [(f["FeedbackId"], f["Score"], f["Comment"]) for f in stored["feedback"]] == [
        (feedback_id, -1.0, "wrong total")]
    result = {"span_id": span["SpanId"], "evaluator": "json_schema", "evaluator_version": "2",
              "score": 0.0, "passed": False, "reason": "missing key", "details": {"path": "$"}}
    assert httpx.post(f"{url}/api/eval_results", json=[result]).json() == {"inserted": 1}
    assert httpx.post(f"{url}/api/eval_results",
                      json=[{**result, "score": 1.0, "passed": True}]).status_code == 200
    rows = httpx.get(f"{url}/api/eval_results", params={"evaluator": "json_schema",
                                                        "cohort": "vip"}).json()["eval_results"]
    assert [(r["Score"], r["Passed"], r["Model"], r["TraceId"]) for r in rows] == [
        (1.0, True, "cand-m", span["TraceId"])]
    assert json.loads(rows[0]["Details"]) == {"path": "$"}
    unscored = spans_of(url, service="judged", unscored_by="json_schema")
    assert unscored == []
    invalid = httpx.post(f"{url}/api/eval_results", json=[{"span_id": "xyz", "evaluator": ""}])
    assert invalid.status_code == 422
    assert {e["loc"][-1] for e in invalid.json()["detail"]} == {"span_id", "evaluator"}


def test_health_readiness_and_query_errors(collector):
    assert httpx.get(f"{collector.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{collector.url}/readyz").json()
    assert ready == {"ready": True, "store": True, "writer": True, "store_accepts_inserts": True,
                     "spool_writable": True, "spool_has_room": True}
    assert httpx.get(f"{collector.url}/api/traces/{'0' * 32}").status_code == 404
    assert httpx.get(f"{collector.url}/api/traces/not-hex").status_code == 422
    typo = httpx.get(f"{collector.url}/api/spans", params={"modle": "x"})
    assert typo.status_code == 422 and typo.json()["detail"][0]["loc"] == ["query", "modle"]
    bad_cursor = httpx.get(f"{collector.url}/api/spans", params={"cursor": "%%%"})
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["detail"]
    bad_time = httpx.get(f"{collector.url}/api/spans", params={"since": "yesterday"})
    assert bad_time.status_code == 422


def test_verdicts_through_the_api(collector):
    verdict = {"base_model": "base-m", "candidate_model": "cand-m", "verdict": "HOLD",
               "score": 0.1, "window": "last 1h", "reasons": ["too few samples"]}
    assert httpx.post(f"{collector.url}/api/verdicts", json=verdict).json() == {"inserted": 1}
    (stored,) = httpx.get(f"{collector.url}/api/verdicts").json()["verdicts"]
    assert (stored["BaseModel"], stored["CandidateModel"], stored["Verdict"], stored["Window"]) \
        == ("base-m", "cand-m", "HOLD", "last 1h")
    assert json.loads(stored["Reasons"]) == ["too few samples"]
    bad = httpx.post(f"{collector.url}/api/verdicts", json={**verdict, "verdict": "SHIP"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["verdict"]


@pytest.mark.parametrize("path, body, field", [
    ("/api/verdicts", {"base_model": "b", "candidate_model": "c", "verdict": "HOLD",
                       "score": "NaN"}, "score"),
    ("/api/verdicts", {"base_model": "b", "candidate_model": "c", "verdict": "HOLD",
                       "score": "-Infinity"}, "score"),
    ("/v1/feedback", {"trace_id": "a" * 32, "score": "NaN"}, "score"),
    ("/api/eval_results", [{"span_id": "b" * 16, "evaluator": "e", "score": "Infinity"}],
     "score"),
    ("/api/eval_results", [{"span_id": "b" * 16, "evaluator": "e", "score": 1,
                            "span_timestamp": "1900-01-01T00:00:00Z"}], "span_timestamp"),
    ("/api/eval_results", [{"span_id": "b" * 16, "evaluator": "e", "score": 1,
                            "timestamp": "9999-12-31T00:00:00Z"}], "timestamp"),
])
def test_posts_that_the_tables_cannot_hold_get_422_and_store_nothing(collector, path, body,
                                                                      field):
    raw = json.dumps(body).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity") \
        .replace('"-Infinity"', "-Infinity")
    response = httpx.post(f"{collector.url}{path}", content=raw,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert field in response.json()["detail"][0]["loc"]
