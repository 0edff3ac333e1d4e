"""/v1/logs and /v1/metrics on a real collector: exporter-shaped tables, GenAI content events
joined to their spans whichever arrives first, evaluation events in eval_results, and
``canarytrace evaluate --emit-otel`` producing those events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from canarytrace import attributes as A
from canarytrace import messages
from canarytrace.store.client import Store
from tests.collector import otlp_payloads as P
from tests.collector.conftest import spans_of, wait_for
from tests.sdk.otlp_receiver import Receiver
from tests.support.collector import running_collector

ROOT = Path(__file__).resolve().parents[2]
LOG_COLUMNS = {  # the OpenTelemetry Collector ClickHouse exporter's otel_logs
    "Timestamp": "DateTime64(9)", "TimestampTime": "DateTime", "TraceId": "String",
    "SpanId": "String", "TraceFlags": "UInt8", "SeverityText": "LowCardinality(String)",
    "SeverityNumber": "UInt8", "ServiceName": "LowCardinality(String)", "Body": "String",
    "ResourceSchemaUrl": "LowCardinality(String)",
    "ResourceAttributes": "Map(LowCardinality(String), String)",
    "ScopeSchemaUrl": "LowCardinality(String)", "ScopeName": "String",
    "ScopeVersion": "LowCardinality(String)",
    "ScopeAttributes": "Map(LowCardinality(String), String)",
    "LogAttributes": "Map(LowCardinality(String), String)"}
HISTOGRAM_COLUMNS = {
    "ResourceAttributes": "Map(LowCardinality(String), String)", "ServiceName":
    "LowCardinality(String)", "MetricName": "String", "MetricUnit": "String",
    "Attributes": "Map(LowCardinality(String), String)", "StartTimeUnix": "DateTime64(9)",
    "TimeUnix": "DateTime64(9)", "Count": "UInt64", "Sum": "Float64",
    "BucketCounts": "Array(UInt64)", "ExplicitBounds": "Array(Float64)",
    "Exemplars.TraceId": "Array(String)", "Flags": "UInt32", "Min": "Float64", "Max": "Float64",
    "AggregationTemporality": "Int32"}


def log_request(records: list[dict], service: str = "genai-app") -> bytes:
    """An ExportLogsServiceRequest: records are LogRecord fields plus ``attributes``/``body``."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    P.add_attributes(resource_logs.resource.attributes, {A.SERVICE_NAME: service})
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "opentelemetry.instrumentation.openai_v2"
    for fields in records:
        record = scope_logs.log_records.add()
        fields = dict(fields)
        P.add_attributes(record.attributes, fields.pop("attributes", {}))
        if "body" in fields:
            P.set_value(record.body, fields.pop("body"))
        for key, value in fields.items():
            setattr(record, key, value)
    return request.SerializeToString()


def event(name: str, span: dict, attributes: dict | None = None, body=None) -> dict:
    fields = {"time_unix_nano": time.time_ns(), "event_name": name,
              "trace_id": span["trace_id"], "span_id": span["span_id"],
              "attributes": attributes or {}}
    return {**fields, "body": body} if body is not None else fields


def post(url: str, path: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=body, timeout=30,
                      headers={**P.PROTOBUF, **headers})


def span_of(url: str, span: dict) -> dict | None:
    found = [s for s in spans_of(url, trace_id=span["trace_id"].hex())
             if s["SpanId"] == span["span_id"].hex()]
    return found[0] if found else None


def evals_of(url: str, span: dict) -> list[dict]:
    return httpx.get(f"{url}/api/eval_results", params={"span_id": span["span_id"].hex()},
                     timeout=30).json()["eval_results"]


CHAT = {A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT, A.GEN_AI_REQUEST_MODEL: "tuned-7b",
        A.CANARY_VARIANT: A.VARIANT_CANDIDATE, A.CANARY_ROUTE: "billing"}


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    """One collector fed: spans, their content and evaluation events (some before their
    span), a retried logs request, and metrics; yields (collector, the spans by role)."""
    with running_collector(tmp_path_factory.mktemp("telemetry")) as collector:
        url = collector.url
        spans = {name: P.span(attributes=CHAT) for name in
                 ("details", "legacy", "scored", "scored_late")}
        assert post(url, "/v1/traces", P.protobuf_body(
            [spans["details"], spans["scored"]])).status_code == 200
        wait_for(lambda: span_of(url, spans["scored"]), what="the first spans stored")
        logs = log_request([
            event(A.EVENT_INFERENCE_DETAILS, spans["details"], {
                A.GEN_AI_INPUT_MESSAGES: [{"role": "user", "parts": [
                    {"type": "text", "content": "Refund order 7?"}]}],
                A.GEN_AI_OUTPUT_MESSAGES: [{"role": "assistant", "finish_reason": "stop",
                                            "parts": [{"type": "text", "content": "Done."}]}],
                A.GEN_AI_SYSTEM_INSTRUCTIONS: [{"type": "text", "content": "Be kind."}]}),
            event(A.EVENT_USER_MESSAGE, spans["legacy"], body={"content": "Hi there"}),
            event(A.EVENT_CHOICE, spans["legacy"], body={
                "index": 0, "finish_reason": "tool_calls", "message": {"tool_calls": [
                    {"id": "c1", "type": "function", "function": {
                        "name": "lookup", "arguments": '{"order": 7}'}}]}}),
            event(A.EVENT_EVALUATION_RESULT, spans["scored"], {
                A.GEN_AI_EVALUATION_NAME: "relevance", A.GEN_AI_EVALUATION_SCORE_VALUE: 0.25,
                A.GEN_AI_EVALUATION_SCORE_LABEL: "fail",
                A.GEN_AI_EVALUATION_EXPLANATION: "off topic"}),
            event(A.EVENT_EVALUATION_RESULT, spans["scored_late"], {
                A.GEN_AI_EVALUATION_NAME: "relevance", A.GEN_AI_EVALUATION_SCORE_VALUE: 0.9,
                A.GEN_AI_EVALUATION_SCORE_LABEL: "pass"}),
        ])
        for _ in range(2):  # an exporter retrying the same request
            response = post(url, "/v1/logs", logs)
            assert response.status_code == 200, response.text
        assert post(url, "/v1/traces", P.protobuf_body(
            [spans["legacy"], spans["scored_late"]])).status_code == 200
        assert post(url, "/v1/metrics", metrics_request()).status_code == 200
        yield collector, spans


def metrics_request() -> bytes:
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    P.add_attributes(resource.resource.attributes, {A.SERVICE_NAME: "genai-app"})
    scope = resource.scope_metrics.add()
    now = time.time_ns()
    usage = scope.metrics.add(name=A.METRIC_TOKEN_USAGE, unit="{token}")
    usage.histogram.aggregation_temporality = 2
    for kind, total in ((A.TOKEN_TYPE_INPUT, 120.0), (A.TOKEN_TYPE_OUTPUT, 30.0)):
        point = usage.histogram.data_points.add(
            start_time_unix_nano=now - 60 * 10**9, time_unix_nano=now, count=3, sum=total,
            bucket_counts=[1, 2], explicit_bounds=[64.0], min=10.0, max=80.0)
        P.add_attributes(point.attributes, {A.GEN_AI_REQUEST_MODEL: "tuned-7b",
                                            A.GEN_AI_TOKEN_TYPE: kind})
    calls = scope.metrics.add(name="app.calls", unit="1")
    calls.sum.aggregation_temporality, calls.sum.is_monotonic = 1, True
    calls.sum.data_points.add(start_time_unix_nano=now - 10**9, time_unix_nano=now, as_int=3)
    scope.metrics.add(name="queue.depth").gauge.data_points.add(time_unix_nano=now,
                                                                as_double=2.5)
    return request.SerializeToString()


def test_content_events_are_joined_to_a_span_stored_before_them(sent):
    collector, spans = sent
    span = wait_for(lambda: (s := span_of(collector.url, spans["details"]))
                    and s["SpanAttributes"].get(A.GEN_AI_OUTPUT_MESSAGES) and s,
                    what="messages on the span")
    attributes = span["SpanAttributes"]
    inputs = messages.loads(attributes[A.GEN_AI_INPUT_MESSAGES])
    assert [(m["role"], messages.text_of([m])) for m in inputs] == [
        ("system", "Be kind."), ("user", "Refund order 7?")]
    assert messages.text_of(messages.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])) == "Done."
    assert json.loads(attributes[A.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert span["Model"] == "tuned-7b" and span["Variant"] == A.VARIANT_CANDIDATE  # kept


def test_legacy_message_events_are_joined_to_a_span_stored_after_them(sent):
    collector, spans = sent
    span = wait_for(lambda: (s := span_of(collector.url, spans["legacy"]))
                    and s["SpanAttributes"].get(A.GEN_AI_OUTPUT_MESSAGES) and s,
                    what="messages on the late span")
    attributes = span["SpanAttributes"]
    assert messages.text_of(messages.loads(attributes[A.GEN_AI_INPUT_MESSAGES])) == "Hi there"
    assert messages.tool_calls_of(messages.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])) == [
        {"name": "lookup", "arguments": {"order": 7}}]
    assert json.loads(attributes[A.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_calls"]
    assert len(spans_of(collector.url, trace_id=spans["legacy"]["trace_id"].hex())) == 1


def test_evaluation_events_become_eval_results_with_the_spans_facts(sent):
    collector, spans = sent
    (early,) = evals_of(collector.url, spans["scored"])
    assert (early["Evaluator"], early["Score"], early["Passed"], early["Label"],
            early["Reason"]) == ("relevance", 0.25, False, "fail", "off topic")
    assert (early["Model"], early["Variant"], early["Route"]) == (
        "tuned-7b", A.VARIANT_CANDIDATE, "billing")
    assert json.loads(early["Details"])["source"] == "otel"
    late = wait_for(lambda: [r for r in evals_of(collector.url, spans["scored_late"])
                             if r["Model"]], what="the late span's facts in its eval result")
    assert len(late) == 1 and late[0]["Passed"] is True and late[0]["Route"] == "billing"


def test_logs_and_metrics_land_in_the_exporters_tables(sent):
    collector, spans = sent
    wait_for(lambda: [r for r in evals_of(collector.url, spans["scored_late"]) if r["Model"]])
    collector.stop()
    store = collector.open_store()
    try:
        columns = {t: {r["name"]: r["type"] for r in store.query(
            f"DESCRIBE TABLE {store.table(t)}")} for t in ("otel_logs", "otel_metrics_histogram")}
        logs = store.query(f"SELECT EventName, SpanId, ServiceName, Project, Body "
                           f"FROM {store.table('otel_logs')}")
        histograms = store.query(f"SELECT * FROM {store.table('otel_metrics_histogram')}")
        sums = store.query(f"SELECT Value, IsMonotonic, AggregationTemporality "
                           f"FROM {store.table('otel_metrics_sum')}")
        gauges = store.query(f"SELECT Value FROM {store.table('otel_metrics_gauge')}")
        lookup = store.query(f"SELECT TraceId, Start, End FROM "
                             f"{store.table('otel_traces_trace_id_ts')}")
    finally:
        store.close()
        collector.start()
    for table, expected in (("otel_logs", LOG_COLUMNS),
                            ("otel_metrics_histogram", HISTOGRAM_COLUMNS)):
        assert {c: columns[table].get(c) for c in expected} == expected, table
    assert len(logs) == 5  # the retried request stored once
    assert {r["EventName"] for r in logs} == {A.EVENT_INFERENCE_DETAILS, A.EVENT_USER_MESSAGE,
                                              A.EVENT_CHOICE, A.EVENT_EVALUATION_RESULT}
    assert {(r["ServiceName"], r["Project"]) for r in logs} == {("genai-app", "default")}
    assert any(json.loads(r["Body"] or "{}").get("content") == "Hi there" for r in logs)
    assert {(h["Attributes"][A.GEN_AI_TOKEN_TYPE], h["Sum"], h["Count"]) for h in histograms} \
        == {(A.TOKEN_TYPE_INPUT, 120.0, 3), (A.TOKEN_TYPE_OUTPUT, 30.0, 3)}
    assert histograms[0]["BucketCounts"] == [1, 2] and histograms[0]["ExplicitBounds"] == [64.0]
    assert [(s["Value"], s["IsMonotonic"], s["AggregationTemporality"]) for s in sums] == [
        (3.0, True, 1)]
    assert [g["Value"] for g in gauges] == [2.5]
    traces = {s["trace_id"].hex() for s in spans.values()}
    assert {r["TraceId"] for r in lookup} >= traces  # the trace-id lookup Grafana uses


def test_bad_log_and_metric_bodies_are_refused_with_the_reason(sent):
    collector, _ = sent
    response = post(collector.url, "/v1/logs", b"\xff\x00garbage")
    assert response.status_code == 400
    response = httpx.post(f"{collector.url}/v1/metrics", content=b"{not json", timeout=30,
                          headers=P.JSON)
    assert response.status_code == 400 and "malformed JSON" in response.text
    response = httpx.post(f"{collector.url}/v1/logs", content=json.dumps({"resourceLogs": [{
        "scopeLogs": [{"logRecords": [{"timeUnixNano": "1", "spanId": "zz"}]}]}]}),
        headers=P.JSON, timeout=30)
    assert response.status_code == 400 and "not a hex string" in response.text


def test_evaluate_emit_otel_sends_evaluation_events_that_round_trip(sent):
    collector, _ = sent
    schema = {"type": "object", "required": ["answer"]}
    span = P.span(attributes={**CHAT, A.CANARY_EXPECT_JSON_SCHEMA: json.dumps(schema),
                              A.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant",
                                  "parts": [{"type": "text", "content": '{"answer": 1}'}]}])})
    receiver = Receiver().start()
    try:
        # the module's collector: its other spans have no expectations
        assert post(collector.url, "/v1/traces", P.protobuf_body([span])).status_code == 200
        wait_for(lambda: span_of(collector.url, span), what="the span stored")
        out = subprocess.run(
            [sys.executable, "-m", "canarytrace.cli", "evaluate", "--since", "1h",
             "--collector", collector.url, "--evaluators", "json_validation",
             "--emit-otel", receiver.url], cwd=ROOT, capture_output=True, text=True,
            timeout=120, env={**os.environ, "OTEL_EXPORTER_OTLP_HEADERS": "x-team=ml"})
        assert out.returncode == 0, out.stderr
        assert "1 evaluation events sent" in out.stdout
        (sent_request,) = receiver.on("/v1/logs")
        assert sent_request.headers["x-team"] == "ml"
        request = ExportLogsServiceRequest.FromString(sent_request.body)
        (record,) = request.resource_logs[0].scope_logs[0].log_records
        assert record.event_name == A.EVENT_EVALUATION_RESULT
        assert (record.span_id, record.trace_id) == (span["span_id"], span["trace_id"])
        attributes = {kv.key: kv.value for kv in record.attributes}
        assert attributes[A.GEN_AI_EVALUATION_NAME].string_value == "json_validation"
        assert attributes[A.GEN_AI_EVALUATION_SCORE_VALUE].double_value == 1.0
        assert attributes[A.GEN_AI_EVALUATION_SCORE_LABEL].string_value == "valid"
        assert attributes[A.CANARY_EVALUATION_PASSED].bool_value is True
        before = evals_of(collector.url, span)
        assert post(collector.url, "/v1/logs", sent_request.body).status_code == 200
        after = evals_of(collector.url, span)
        keep = ("Evaluator", "EvaluatorVersion", "Score", "Passed", "Model", "Route")
        assert [{k: r[k] for k in keep} for r in after] == \
            [{k: r[k] for k in keep} for r in before]
    finally:
        receiver.stop()


def test_emit_otel_to_a_dead_endpoint_is_one_clear_error(sent):
    collector, _ = sent
    span = P.span(attributes={**CHAT, A.CANARY_EXPECT_JSON_SCHEMA: '{"type": "object"}'})
    assert post(collector.url, "/v1/traces", P.protobuf_body([span])).status_code == 200
    wait_for(lambda: span_of(collector.url, span), what="the span stored")
    out = subprocess.run(
        [sys.executable, "-m", "canarytrace.cli", "evaluate", "--since", "1h", "--collector",
         collector.url, "--evaluators", "json_validation", "--emit-otel", "http://127.0.0.1:9"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "--emit-otel" in out.stderr


def test_an_empty_store_migrates_the_new_tables_once(tmp_path):
    store = Store.from_url(f"chdb://{tmp_path}/db")
    try:
        assert {7, 8, 9} <= set(store.migrate())
        assert store.migrate() == []
    finally:
        store.close()
