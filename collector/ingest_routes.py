"""OTLP/HTTP receiver: ``POST /v1/traces``, durable before acknowledged (logs and metrics:
``telemetry_routes``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from canarytrace.collector import otlp
from canarytrace.collector.keys import Unauthorized
from canarytrace.collector.spool import SpoolBroken, SpoolFull
from canarytrace.collector.state import Collector, collector_of

router = APIRouter()
RETRY_AFTER_S = 5


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body, or 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise otlp.BadRequest(413, f"request body of {declared} bytes exceeds the {limit}-byte "
                                   "limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise otlp.BadRequest(413, f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(collector: Collector, encoding: otlp.Encoding, status: int, message: str,
           headers: dict[str, str] | None = None) -> Response:
    collector.metrics.requests_refused.labels(str(status)).inc()
    code = {401: otlp.GRPC_UNAUTHENTICATED, 503: otlp.GRPC_UNAVAILABLE}.get(
        status, otlp.GRPC_INVALID_ARGUMENT)
    return Response(otlp.status_body(encoding, message, code), status_code=status,
                    media_type=encoding.value, headers=headers)


@router.post("/v1/traces")
async def export_traces(request: Request) -> Response:
    """Accept an ExportTraceServiceRequest; 200 only once its spans are fsynced to the spool."""
    collector = collector_of(request)
    encoding = otlp.Encoding.JSON
    try:
        encoding = otlp.encoding_of(request.headers.get("content-type"))
        project = collector.keys.project_for(request.headers.get("authorization"))
        return await _export(collector, request, encoding, project)
    except Unauthorized as exc:
        return _error(collector, encoding, 401, str(exc), {"WWW-Authenticate": "Bearer"})
    except otlp.BadRequest as exc:
        return _error(collector, encoding, exc.status, exc.message)
    except (SpoolFull, SpoolBroken) as exc:
        return _error(collector, encoding, 503, f"collector cannot accept spans now: {exc}",
                      {"Retry-After": str(RETRY_AFTER_S)})


async def _export(collector: Collector, request: Request, encoding: otlp.Encoding,
                  project: str) -> Response:
    if collector.spool.full():
        raise SpoolFull(f"spool is at its {collector.spool.max_bytes}-byte limit")
    limit = collector.settings.max_body_bytes
    body = otlp.decompress(await read_body(request, limit),
                           request.headers.get("content-encoding"), limit)
    prepared = await collector.preparer.prepare(body, encoding, project)
    metrics = collector.metrics
    metrics.spans_received.inc(prepared.rows + prepared.rejected)
    metrics.spans_rejected.inc(prepared.rejected)
    metrics.values_truncated.inc(prepared.truncated_values)
    if prepared.fast:
        metrics.spans_fast_path.inc(prepared.rows)
    if prepared.rejected and not prepared.rows:
        raise otlp.BadRequest(400, prepared.error)
    if prepared.rows:
        ticket = collector.spool.append(prepared.payload, prepared.rows)
        await collector.spool.wait_durable(ticket)
        metrics.spans_accepted.inc(prepared.rows)
    return Response(otlp.export_response(encoding, prepared.rejected, prepared.error),
                    media_type=encoding.value)
