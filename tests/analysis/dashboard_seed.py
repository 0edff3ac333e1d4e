"""Realistic canary traffic for dashboard tests, written into a Store.

Two models (a base and a LoRA candidate) serve three routes and three cohorts over the
last hours: mirrored pairs (primary base + shadow candidate, some shadows dropped), a
canary share served by the candidate (some falling back to the base), agent runs with
steps and tool calls, parser errors and retries, eval results, user feedback and a
verdict history. Attribute names come from canarytrace.attributes only.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from canarytrace import attributes as A
from canarytrace import messages
from canarytrace.store.client import Store
from canarytrace.store.timestamps import format_ns

BASE_MODEL = "llama-3-8b-instruct"
CANDIDATE_MODEL = "llama-3-8b-lora-r16"
ROUTES = ("billing", "refunds", "tech-support")
COHORTS = ("free", "pro", "enterprise")
EVALUATORS = ("json_validation", "instruction_adherence")
NS = 1_000_000_000


@dataclass
class Traffic:
    """What was seeded, for assertions."""

    project: str
    base_model: str
    candidate_model: str
    routes: tuple[str, ...]
    cohorts: tuple[str, ...]
    services: tuple[str, ...]
    evaluators: tuple[str, ...]
    trace_ids: list[str] = field(default_factory=list)
    agent_trace_ids: list[str] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """otel_metrics_histogram rows: the GenAI client metrics of the same calls."""


class _Generator:
    def __init__(self, traffic: Traffic, rng: random.Random) -> None:
        self.t = traffic
        self.rng = rng

    def hex_id(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def span(self, trace_id: str, parent: str, name: str, start_ns: int, duration_ns: int,
             service: str, attributes: dict[str, str], kind: str = "Internal",
             status: str = "Unset", status_message: str = "") -> dict[str, Any]:
        row = {
            "Timestamp": format_ns(start_ns), "TraceId": trace_id, "SpanId": self.hex_id(16),
            "ParentSpanId": parent, "TraceState": "", "SpanName": name, "SpanKind": kind,
            "ServiceName": service, "ScopeName": "canarytrace", "ScopeVersion": "0.1.0",
            "ResourceAttributes": {A.SERVICE_NAME: service, A.CANARY_PROJECT: self.t.project},
            "SpanAttributes": attributes, "Duration": duration_ns, "StatusCode": status,
            "StatusMessage": status_message,
        }
        self.t.spans.append(row)
        return row

    def llm_span(self, trace_id: str, parent: str, start_ns: int, service: str,
                 request: dict[str, Any], variant: str, role: str, **extra: str) -> dict[str, Any]:
        model = self.t.base_model if variant == A.VARIANT_BASE else self.t.candidate_model
        slow = 1.0 if variant == A.VARIANT_BASE else 0.8
        duration = int(self.rng.lognormvariate(-0.6, 0.35) * slow * NS)
        reply = f"Here is help with {request['topic']}."
        answer = json.dumps({"intent": request["route"], "reply": reply})
        input_tokens, output_tokens = self.rng.randint(120, 900), self.rng.randint(30, 260)
        attributes = {
            A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT, A.GEN_AI_PROVIDER_NAME: "vllm",
            A.GEN_AI_REQUEST_MODEL: model, A.GEN_AI_RESPONSE_MODEL: model,
            A.GEN_AI_USAGE_INPUT_TOKENS: str(input_tokens),
            A.GEN_AI_USAGE_OUTPUT_TOKENS: str(output_tokens),
            A.GEN_AI_RESPONSE_FINISH_REASONS: '["stop"]',
            A.GEN_AI_INPUT_MESSAGES: json.dumps(messages.normalize([
                {"role": "system", "content": "You are a support assistant. Answer in JSON."},
                {"role": "user", "content": request["question"]}])),
            A.GEN_AI_OUTPUT_MESSAGES: json.dumps(messages.normalize(
                {"role": "assistant", "content": answer, "finish_reason": "stop"},
                default_role="assistant")),
            A.CANARY_VARIANT: variant, A.CANARY_ROLE: role, A.CANARY_PAIR_ID: request["pair_id"],
            A.CANARY_ROUTE: request["route"], A.CANARY_COHORT: request["cohort"],
            A.CANARY_EXPECT_JSON_SCHEMA: json.dumps({"type": "object", "required": ["reply"]}),
            **extra,
        }
        if self.rng.random() < 0.12:
            attributes[A.CANARY_PARSER_ERRORS] = "1"
            attributes[A.CANARY_PARSER_RETRIES] = "1" if self.rng.random() < 0.7 else "0"
        return self.span(trace_id, parent, f"{A.OPERATION_CHAT} {model}", start_ns, duration,
                         service, attributes, kind="Client")

    def request(self, index: int, start_ns: int) -> None:
        rng = self.rng
        trace_id = self.hex_id(32)
        self.t.trace_ids.append(trace_id)
        request = {
            "pair_id": self.hex_id(16), "route": rng.choice(self.t.routes),
            "cohort": rng.choice(self.t.cohorts), "topic": rng.choice(("an invoice", "a refund")),
        }
        request["question"] = f"Request {index}: I need help with {request['topic']}."
        if index % 2 == 0:
            self.agent_request(trace_id, start_ns, request)
        else:
            self.served_calls(trace_id, "", start_ns, self.t.services[1], request)

    def agent_request(self, trace_id: str, start_ns: int, request: dict[str, Any]) -> None:
        service = self.t.services[0]
        self.t.agent_trace_ids.append(trace_id)
        root = self.span(trace_id, "", f"{A.OPERATION_INVOKE_AGENT} support-agent", start_ns,
                         3 * NS, service, {A.GEN_AI_OPERATION_NAME: A.OPERATION_INVOKE_AGENT,
                                           A.GEN_AI_AGENT_NAME: "support-agent"})
        at = start_ns
        for step, kind in enumerate(("plan", "tool", "respond")):
            step_span = self.span(trace_id, root["SpanId"], f"step {kind}", at + 1_000_000,
                                  int(0.9 * NS), service,
                                  {A.AGENT_TRAJECTORY_STEP: str(step),
                                   A.AGENT_TRAJECTORY_STEP_KIND: kind})
            if kind == "tool":
                self.tool_span(trace_id, step_span["SpanId"], at + 2_000_000, service)
            if kind == "respond":
                self.served_calls(trace_id, step_span["SpanId"], at + 3_000_000, service, request)
            at += NS

    def tool_span(self, trace_id: str, parent: str, start_ns: int, service: str) -> None:
        self.span(trace_id, parent, f"{A.OPERATION_EXECUTE_TOOL} lookup_invoice", start_ns,
                  int(0.2 * NS), service, {
                      A.GEN_AI_OPERATION_NAME: A.OPERATION_EXECUTE_TOOL,
                      A.GEN_AI_TOOL_NAME: "lookup_invoice",
                      A.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"invoice": "INV-1042"}),
                      A.GEN_AI_TOOL_CALL_RESULT: json.dumps({"status": "paid", "amount": 42})})

    def served_calls(self, trace_id: str, parent: str, start_ns: int, service: str,
                     request: dict[str, Any]) -> None:
        rng = self.rng
        if rng.random() < 0.2:  # canary split: the candidate is picked to answer
            span = self.llm_span(trace_id, parent, start_ns, service, request, A.VARIANT_CANDIDATE,
                                 A.ROLE_PRIMARY, **{A.CANARY_MIRROR: A.MIRROR_NONE})
            if rng.random() < 0.15:  # it times out: the base answers, as ct.Canary records it
                span["StatusCode"], span["StatusMessage"] = "Error", "candidate timed out"
                span["SpanAttributes"][A.ERROR_TYPE] = "TimeoutError"
                span = self.llm_span(trace_id, parent, start_ns + span["Duration"], service,
                                     request, A.VARIANT_BASE, A.ROLE_PRIMARY, **{
                                         A.CANARY_MIRROR: A.MIRROR_NONE,
                                         A.CANARY_FALLBACK: "true", A.ERROR_TYPE: "TimeoutError",
                                         A.CANARY_CANDIDATE_MODEL: self.t.candidate_model})
            self.evaluate(span, request)
            return
        mirror = A.MIRROR_NONE
        if rng.random() < 0.6:
            mirror = A.MIRROR_DROPPED if rng.random() < 0.1 else A.MIRROR_SENT
        primary = self.llm_span(trace_id, parent, start_ns, service, request, A.VARIANT_BASE,
                                A.ROLE_PRIMARY, **{A.CANARY_MIRROR: mirror})
        self.evaluate(primary, request)
        if mirror == A.MIRROR_SENT:
            shadow = self.llm_span(trace_id, parent, start_ns + 2_000_000, service, request,
                                   A.VARIANT_CANDIDATE, A.ROLE_SHADOW)
            self.evaluate(shadow, request)

    def evaluate(self, span: dict[str, Any], request: dict[str, Any]) -> None:
        attrs = span["SpanAttributes"]
        variant = attrs[A.CANARY_VARIANT]
        worse = variant == A.VARIANT_CANDIDATE and request["cohort"] == self.t.cohorts[-1]
        common = {
            "Project": self.t.project, "SpanTimestamp": span["Timestamp"],
            "ServiceName": span["ServiceName"], "TraceId": span["TraceId"],
            "SpanId": span["SpanId"], "Model": attrs[A.GEN_AI_REQUEST_MODEL], "Variant": variant,
            "Role": attrs[A.CANARY_ROLE], "PairId": attrs[A.CANARY_PAIR_ID],
            "Route": attrs[A.CANARY_ROUTE], "Cohort": attrs[A.CANARY_COHORT],
        }
        failure = "output is missing the required key 'reply'"
        for evaluator in self.t.evaluators:
            passed = self.rng.random() < (0.72 if worse else 0.93)
            self.t.evals.append({**common, "Evaluator": evaluator, "Passed": passed,
                                 "Score": 1.0 if passed else 0.0,
                                 "Label": "pass" if passed else "fail",
                                 "Reason": "" if passed else failure})
        self.t.evals.append({**common, "Evaluator": "reward_score", "Passed": None,
                             "Score": round(self.rng.uniform(-1.5, 2.5), 3)})

    def feedback(self, now: datetime) -> None:
        served = {}
        for span in self.t.spans:  # the primary call that answered (a fallback's base)
            if (span["SpanAttributes"].get(A.CANARY_ROLE) == A.ROLE_PRIMARY
                    and span["StatusCode"] != "Error"):
                served[span["TraceId"]] = span
        for trace_id, span in served.items():
            if self.rng.random() > 0.35:
                continue
            candidate = span["SpanAttributes"][A.CANARY_VARIANT] == A.VARIANT_CANDIDATE
            down = self.rng.random() < (0.4 if candidate else 0.2)
            seconds = float(span["Timestamp"]) + 20
            self.t.feedback.append({
                "Timestamp": datetime.fromtimestamp(min(seconds, now.timestamp()), UTC),
                "Project": self.t.project, "TraceId": trace_id, "SpanId": "",
                "FeedbackId": self.hex_id(16), "Score": -1.0 if down else 1.0,
                "Comment": "wrong invoice amount" if down else "thanks!", "Source": "app"})

    def verdicts(self, now: datetime) -> None:
        history = (("HOLD", 81.0, ["not enough pairs yet: 180 more needed"]),
                   ("HOLD", 88.5, ["instruction_adherence in cohort=enterprise: inconclusive"]),
                   ("ROLLBACK", 62.0, ["json_validation regressed in cohort=enterprise: "
                                       "-18.4 points (critical)"]))
        for i, (verdict, score, reasons) in enumerate(history):
            self.t.verdicts.append({
                "Timestamp": now - timedelta(hours=3 - i), "Project": self.t.project,
                "BaseModel": self.t.base_model, "CandidateModel": self.t.candidate_model,
                "Verdict": verdict, "Score": score, "Window": "1h", "Reasons": reasons,
                "Report": {"verdict": verdict, "score": score}})


def make_traffic(project: str = "default", requests: int = 240, hours: float = 6.0,
                 seed: int = 7, now: datetime | None = None, base_model: str = BASE_MODEL,
                 candidate_model: str = CANDIDATE_MODEL, routes: tuple[str, ...] = ROUTES,
                 cohorts: tuple[str, ...] = COHORTS,
                 services: tuple[str, ...] = ("support-bot", "billing-api"),
                 evaluators: tuple[str, ...] = EVALUATORS) -> Traffic:
    """Generate ``requests`` requests spread evenly over the ``hours`` before ``now``."""
    now = now or datetime.now(UTC)
    traffic = Traffic(project, base_model, candidate_model, routes, cohorts, services, evaluators)
    generator = _Generator(traffic, random.Random(seed))
    first_ns = int((now - timedelta(hours=hours)).timestamp() * NS)
    step_ns = int(hours * 3600 * NS / requests)
    for index in range(requests):
        generator.request(index, first_ns + index * step_ns + generator.rng.randrange(step_ns // 2))
    generator.feedback(now)
    generator.verdicts(now)
    traffic.metrics = genai_metrics(traffic)
    return traffic


def genai_metrics(traffic: Traffic, every_s: int = 300) -> list[dict[str, Any]]:
    """The traffic's LLM calls as cumulative gen_ai.client.token.usage and
    gen_ai.client.operation.duration histograms, one point per model and ``every_s``."""
    calls = sorted((int(round(float(s["Timestamp"]) * NS)), s) for s in traffic.spans
                   if s["SpanAttributes"].get(A.GEN_AI_REQUEST_MODEL))
    if not calls:
        return []
    start, step = calls[0][0], every_s * NS
    totals: dict[tuple[str, str, str], list[float]] = {}
    rows = []
    for bucket in range(start, calls[-1][0] + step, step):
        for _ns, span in [c for c in calls if bucket <= c[0] < bucket + step]:
            attrs = span["SpanAttributes"]
            model = attrs[A.GEN_AI_REQUEST_MODEL]
            for metric, kind, value in (
                    (A.METRIC_TOKEN_USAGE, A.TOKEN_TYPE_INPUT,
                     float(attrs.get(A.GEN_AI_USAGE_INPUT_TOKENS, 0))),
                    (A.METRIC_TOKEN_USAGE, A.TOKEN_TYPE_OUTPUT,
                     float(attrs.get(A.GEN_AI_USAGE_OUTPUT_TOKENS, 0))),
                    (A.METRIC_OPERATION_DURATION, "", span["Duration"] / NS)):
                total = totals.setdefault((span["ServiceName"], model, metric + kind), [0.0, 0])
                total[0] += value
                total[1] += 1
        for (service, model, key), (total, count) in totals.items():
            metric = A.METRIC_TOKEN_USAGE if key.startswith(A.METRIC_TOKEN_USAGE) \
                else A.METRIC_OPERATION_DURATION
            attributes = {A.GEN_AI_REQUEST_MODEL: model, A.GEN_AI_OPERATION_NAME: "chat"}
            if metric == A.METRIC_TOKEN_USAGE:
                attributes[A.GEN_AI_TOKEN_TYPE] = key[len(metric):]
            rows.append({
                "ResourceAttributes": {A.SERVICE_NAME: service, A.CANARY_PROJECT: traffic.project},
                "ServiceName": service, "MetricName": metric,
                "MetricUnit": "{token}" if metric == A.METRIC_TOKEN_USAGE else "s",
                "Attributes": attributes, "StartTimeUnix": format_ns(start),
                "TimeUnix": format_ns(bucket + step), "Count": count, "Sum": total,
                "AggregationTemporality": 2})
    return rows


def metrics_request(traffic: Traffic) -> Any:
    """The traffic's metric rows as an OTLP ExportMetricsServiceRequest."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def pairs(mapping: dict[str, str]) -> list[Any]:
        return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in mapping.items()]

    request = ExportMetricsServiceRequest()
    for row in traffic.metrics:
        resource = request.resource_metrics.add()
        resource.resource.attributes.extend(pairs({A.SERVICE_NAME: row["ServiceName"]}))
        metric = resource.scope_metrics.add().metrics.add()
        metric.name, metric.unit = row["MetricName"], row["MetricUnit"]
        metric.histogram.aggregation_temporality = row["AggregationTemporality"]
        point = metric.histogram.data_points.add()
        point.attributes.extend(pairs(row["Attributes"]))
        point.start_time_unix_nano = int(round(float(row["StartTimeUnix"]) * NS))
        point.time_unix_nano = int(round(float(row["TimeUnix"]) * NS))
        point.count, point.sum = row["Count"], row["Sum"]
    return request


def seed_store(store: Store, traffic: Traffic) -> Traffic:
    """Write ``traffic`` through the Store's public insert methods."""
    from canarytrace.store.telemetry import Telemetry

    store.insert_spans(traffic.spans)
    store.insert_eval_results(traffic.evals)
    Telemetry(store).insert("otel_metrics_histogram", traffic.metrics)
    store.insert_feedback(traffic.feedback)
    for verdict in traffic.verdicts:
        store.insert_verdict(verdict)
    return traffic


# --- the same traffic through a running collector ------------------------------------

_KINDS = {"Internal": "INTERNAL", "Client": "CLIENT", "Server": "SERVER"}


def readable_spans(traffic: Traffic) -> list[Any]:
    """The traffic's spans as OpenTelemetry SDK spans, ready for a real span exporter."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    scope = InstrumentationScope("canarytrace", "0.1.0")
    out = []
    for row in traffic.spans:
        trace_id = int(row["TraceId"], 16)
        context = SpanContext(trace_id, int(row["SpanId"], 16), False, TraceFlags(1))
        parent = (SpanContext(trace_id, int(row["ParentSpanId"], 16), False, TraceFlags(1))
                  if row["ParentSpanId"] else None)
        start = int(round(float(row["Timestamp"]) * NS))
        status = (Status(StatusCode.ERROR, row["StatusMessage"]) if row["StatusCode"] == "Error"
                  else Status(StatusCode.UNSET))
        out.append(ReadableSpan(
            name=row["SpanName"], context=context, parent=parent,
            resource=Resource({A.SERVICE_NAME: row["ServiceName"]}),
            attributes=dict(row["SpanAttributes"]), kind=SpanKind[_KINDS[row["SpanKind"]]],
            start_time=start, end_time=start + row["Duration"], status=status,
            instrumentation_scope=scope))
    return out


def export_spans(traffic: Traffic, collector_url: str, api_key: str | None = None) -> None:
    """Send the spans with the OpenTelemetry OTLP/HTTP exporter, in batches of 512, and the
    GenAI client metrics to /v1/metrics."""
    import httpx
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    exporter = OTLPSpanExporter(endpoint=f"{collector_url}/v1/traces", headers=headers)
    spans = readable_spans(traffic)
    try:
        for i in range(0, len(spans), 512):
            assert exporter.export(spans[i:i + 512]) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    httpx.post(f"{collector_url}/v1/metrics", content=metrics_request(traffic).SerializeToString(),
               headers={**headers, "Content-Type": "application/x-protobuf"},
               timeout=30).raise_for_status()


def post_evals_and_verdicts(traffic: Traffic, collector_url: str,
                            api_key: str | None = None) -> None:
    """Eval results and verdicts through the collector's API, as the evaluator and compare do."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    keys = {"Project"}
    evals = [{k: v for k, v in row.items() if k not in keys} for row in traffic.evals]
    for row in evals:
        row["SpanTimestamp"] = datetime.fromtimestamp(float(row["SpanTimestamp"]), UTC).isoformat()
    with httpx.Client(base_url=collector_url, headers=headers, timeout=30) as client:
        for i in range(0, len(evals), 500):
            client.post("/api/eval_results", json=evals[i:i + 500]).raise_for_status()
        for verdict in traffic.verdicts:
            client.post("/api/verdicts", json={
                "base_model": verdict["BaseModel"], "candidate_model": verdict["CandidateModel"],
                "verdict": verdict["Verdict"], "score": verdict["Score"],
                "window": verdict["Window"], "reasons": verdict["Reasons"],
                "report": verdict["Report"]}).raise_for_status()


def wait_until_stored(traffic: Traffic, collector_url: str, api_key: str | None = None) -> None:
    """Spans are acknowledged once spooled; wait until the writer has put every trace in the
    store, so that what a test reads next is the whole traffic."""
    import time

    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    since = min(float(span["Timestamp"]) for span in traffic.spans) - 1
    params = {"limit": 1000, "since": datetime.fromtimestamp(since, UTC).isoformat()}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = httpx.get(f"{collector_url}/api/dashboard/traces", params=params,
                         headers=headers, timeout=30).json()
        if len(body["traces"]) >= len(set(traffic.trace_ids)):
            return
        time.sleep(0.2)
    raise AssertionError("the collector did not store the traffic in time")


def require_dashboard(collector_url: str, api_key: str | None = None) -> None:
    """Fail with what to do when the collector does not serve the built-in dashboard."""
    import httpx
    import pytest

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.get(f"{collector_url}/api/dashboard/config", headers=headers, timeout=30)
    if response.status_code == 404:
        pytest.fail("canarytrace serve does not serve the dashboard: collector/app.py must "
                    "include canarytrace.collector.dashboard_route.router")
