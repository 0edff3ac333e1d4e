"""``evaluate --emit-otel ENDPOINT``: our eval results as GenAI ``gen_ai.evaluation.result`` events.

Each result becomes one OTLP log record parented to the evaluated span (its trace and span
id), with ``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``,
``gen_ai.evaluation.score.label`` and ``gen_ai.evaluation.explanation``, plus
``canary.evaluation.passed`` and ``canary.evaluator.version`` so that a canarytrace
collector reading them back stores the same rows. They are POSTed as OTLP/HTTP protobuf to
``ENDPOINT/v1/logs`` with the headers in ``OTEL_EXPORTER_OTLP_LOGS_HEADERS`` /
``OTEL_EXPORTER_OTLP_HEADERS`` (``Authorization=Bearer ...`` for a collector with keys).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_INFO, LogRecord

from canarytrace import __version__
from canarytrace import attributes as A
from canarytrace.evaluators.sources import Source, SourceError

SCOPE = "canarytrace.evaluators"
BATCH = 500
TIMEOUT_S = 30.0


def otlp_headers(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Headers from ``OTEL_EXPORTER_OTLP_LOGS_HEADERS`` (else ``OTEL_EXPORTER_OTLP_HEADERS``):
    comma-separated ``key=value`` pairs, URL-encoded, as the OTLP exporters read them."""
    raw = env.get("OTEL_EXPORTER_OTLP_LOGS_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS", "")
    headers = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def logs_url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/logs") else f"{endpoint}/v1/logs"


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def event_record(row: Mapping[str, Any]) -> LogRecord:
    """One eval_results row as a ``gen_ai.evaluation.result`` log record."""
    attributes: dict[str, Any] = {A.EVENT_NAME: A.EVENT_EVALUATION_RESULT,
                                  A.GEN_AI_EVALUATION_NAME: row["Evaluator"],
                                  A.CANARY_EVALUATOR_VERSION: str(row.get("EvaluatorVersion", 1))}
    if row.get("Score") is not None:
        attributes[A.GEN_AI_EVALUATION_SCORE_VALUE] = float(row["Score"])
    passed = row.get("Passed")
    label = row.get("Label") or ("" if passed is None else "pass" if passed else "fail")
    if label:
        attributes[A.GEN_AI_EVALUATION_SCORE_LABEL] = label
    if passed is not None:
        attributes[A.CANARY_EVALUATION_PASSED] = bool(passed)
    if row.get("Reason"):
        attributes[A.GEN_AI_EVALUATION_EXPLANATION] = row["Reason"]
    scored = int(row.get("Timestamp") or time.time_ns())
    return LogRecord(
        time_unix_nano=scored, observed_time_unix_nano=scored,
        severity_number=SEVERITY_NUMBER_INFO, severity_text="INFO",
        trace_id=bytes.fromhex(row.get("TraceId") or ""), span_id=bytes.fromhex(row["SpanId"]),
        event_name=A.EVENT_EVALUATION_RESULT,
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in attributes.items()])


def export_request(rows: Sequence[Mapping[str, Any]]) -> ExportLogsServiceRequest:
    """The rows' events, one ResourceLogs per service (its ``service.name``)."""
    request = ExportLogsServiceRequest()
    by_service: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_service.setdefault(row.get("ServiceName") or "", []).append(row)
    for service, items in by_service.items():
        resource_logs = request.resource_logs.add()
        if service:
            resource_logs.resource.attributes.append(
                KeyValue(key=A.SERVICE_NAME, value=AnyValue(string_value=service)))
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name, scope_logs.scope.version = SCOPE, __version__
        scope_logs.log_records.extend(event_record(row) for row in items)
    return request


class EventEmitter:
    """POSTs eval results as evaluation events to one OTLP/HTTP endpoint."""

    def __init__(self, endpoint: str, headers: Mapping[str, str] | None = None) -> None:
        self.url = logs_url(endpoint)
        self.client = httpx.Client(timeout=TIMEOUT_S, headers={
            "Content-Type": "application/x-protobuf", **(headers or otlp_headers())})
        self.sent = 0

    def emit(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Send ``rows`` (in batches); SourceError with one line when the endpoint refuses."""
        rows = [r for r in rows if r.get("SpanId")]
        for start in range(0, len(rows), BATCH):
            batch = rows[start:start + BATCH]
            body = export_request(batch).SerializeToString()
            try:
                response = self.client.post(self.url, content=body)
            except httpx.HTTPError as exc:
                raise SourceError(f"--emit-otel {self.url}: {exc}") from None
            if response.status_code >= 300:
                raise SourceError(f"--emit-otel {self.url} answered {response.status_code}: "
                                  f"{response.text[:200]}")
            self.sent += len(batch)

    def close(self) -> None:
        self.client.close()


class EmittingSource:
    """A Source whose written results are also emitted as evaluation events."""

    def __init__(self, source: Source, emitter: EventEmitter) -> None:
        self._source, self._emitter = source, emitter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self._source.write(rows)
        self._emitter.emit(rows)


def emitting(sources: list[Source], emitter: EventEmitter | None) -> Iterator[Source]:
    """``sources`` as they are, or each wrapped to emit what it writes."""
    for source in sources:
        yield source if emitter is None else EmittingSource(source, emitter)  # type: ignore[misc]
