"""OTLP/HTTP ``POST /v1/logs`` and ``POST /v1/metrics``: stored before they are acknowledged.

Logs go to ``otel_logs`` and metrics to the ``otel_metrics_*`` tables, inserted straight
into ClickHouse (with a deduplication token, so a retried request is stored once); the
request is answered 200 only after the insert, and 503 with Retry-After while the store is
unavailable, so exporters retry. GenAI events are then handed on: evaluation results are
written to ``eval_results`` and content events are joined to their spans (``Joiner``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from starlette.concurrency import run_in_threadpool

from canarytrace import attributes as A
from canarytrace.collector import otlp, signals
from canarytrace.collector.genai_events import CONTENT_EVENTS, evaluation_row
from canarytrace.collector.ingest_routes import RETRY_AFTER_S, _error, read_body
from canarytrace.collector.keys import Unauthorized
from canarytrace.collector.rows import Limits
from canarytrace.collector.state import Collector, collector_of
from canarytrace.collector.telemetry_join import Joiner
from canarytrace.store.errors import Fault, classify, first_line
from canarytrace.store.telemetry import Key, Telemetry

router = APIRouter()


def _limits(collector: Collector) -> Limits:
    s = collector.settings
    return Limits(s.max_attribute_length, s.max_attributes_per_span, s.max_attribute_key_length)


def _token(project: str, body: bytes) -> str:
    return "otlp-" + hashlib.sha256(project.encode() + b"\0" + body).hexdigest()


def joiner_of(request: Request) -> Joiner | None:
    return getattr(request.app.state, "joiner", None)


async def _receive(request: Request, message: type, convert: Any, respond: Any,
                   store: Any) -> Response:
    collector = collector_of(request)
    encoding = otlp.Encoding.JSON
    try:
        encoding = otlp.encoding_of(request.headers.get("content-type"))
        project = collector.keys.project_for(request.headers.get("authorization"))
        limit = collector.settings.max_body_bytes
        body = otlp.decompress(await read_body(request, limit),
                               request.headers.get("content-encoding"), limit)
        signal = convert(signals.SignalBuilder(_limits(collector)),
                         signals.decode(body, encoding, message), project)
        if signal.rejected and not signal.rows:
            raise otlp.BadRequest(400, signal.error_message("records"))
    except Unauthorized as exc:
        return _error(collector, encoding, 401, str(exc), {"WWW-Authenticate": "Bearer"})
    except otlp.BadRequest as exc:
        return _error(collector, encoding, exc.status, exc.message)
    try:
        await run_in_threadpool(store, collector, signal, _token(project, body), request)
    except Exception as exc:  # noqa: BLE001 - not stored: refused (4xx) or retry later (503)
        if classify(exc) is Fault.REFUSED:
            return _error(collector, encoding, 400, f"the store refused this: {first_line(exc)}")
        return _error(collector, encoding, 503, "collector cannot store this now: "
                      f"{first_line(exc)}", {"Retry-After": str(RETRY_AFTER_S)})
    return Response(respond(encoding, signal.rejected, signal.error_message("records")),
                    media_type=encoding.value)


def _store_logs(collector: Collector, signal: signals.Signal, token: str,
                request: Request) -> None:
    telemetry = Telemetry(collector.store)
    telemetry.insert("otel_logs", signal.tables["otel_logs"], token)
    content: set[Key] = set()
    results = []
    for row, _ in signal.records:
        project = row["ResourceAttributes"][A.CANARY_PROJECT]
        if row["EventName"] in CONTENT_EVENTS and row["SpanId"]:
            content.add((project, row["SpanId"]))
        result = evaluation_row(row)
        if result is not None:
            results.append(result)
    unjoined = _store_results(telemetry, results)
    joiner = joiner_of(request)
    if joiner is not None and (content or unjoined):
        joiner.submit(content, unjoined)


def _store_results(telemetry: Telemetry, rows: list[dict[str, Any]]) -> set[Key]:
    """Write eval results from evaluation events with their span's facts; returns the keys
    whose span is not stored yet (written without them, filled in later)."""
    if not rows:
        return set()
    facts = telemetry.facts((r["Project"], r["SpanId"]) for r in rows)
    unjoined = set()
    for row in rows:
        key = (row["Project"], row["SpanId"])
        if key in facts:
            row.update({c: v for c, v in facts[key].items() if c not in ("Project", "SpanId")})
        else:
            row["SpanTimestamp"] = row["Timestamp"]
            unjoined.add(key)
    telemetry.store.insert_eval_results(rows)
    return unjoined


def _store_metrics(collector: Collector, signal: signals.Signal, token: str,
                   request: Request) -> None:
    telemetry = Telemetry(collector.store)
    for table, rows in signal.tables.items():
        telemetry.insert(table, rows, token)


@router.post("/v1/logs")
async def export_logs(request: Request) -> Response:
    """Accept an ExportLogsServiceRequest into otel_logs (GenAI events handed on)."""
    return await _receive(request, ExportLogsServiceRequest, signals.SignalBuilder.logs,
                          signals.logs_response, _store_logs)


@router.post("/v1/metrics")
async def export_metrics(request: Request) -> Response:
    """Accept an ExportMetricsServiceRequest into the otel_metrics_* tables."""
    return await _receive(request, ExportMetricsServiceRequest, signals.SignalBuilder.metrics,
                          signals.metrics_response, _store_metrics)
