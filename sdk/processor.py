"""The span processor ``init()`` puts in front of the OTLP exporter.

It is the OpenTelemetry SDK's BatchSpanProcessor, sized for LLM services. With the stock sizes
(2,048-span queue, 512-span batches, 5 s delay) a burst of calls fills the queue while one
batch is being encoded and sent, and spans are dropped (17% of a 20,000-call tight loop here).
An 8x queue absorbs bursts; batches stay at 512 spans so that one request stays well under
the collector's body limit even with long prompts; a 0.5 s delay shows spans sooner. See
``benchmarks/sdk_sustained.py``. The standard ``OTEL_BSP_*`` variables still override.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

MAX_QUEUE_SIZE = 16_384
"""Spans held while the exporter is busy: 8 s of a 2,000 calls/s service (about 55 MB at
3.3 kB per span with short prompts)."""
MAX_EXPORT_BATCH_SIZE = 512
SCHEDULE_DELAY_MILLIS = 500


def _unless_env(name: str, value: int) -> int | None:
    """``value``, or None so that BatchSpanProcessor reads the standard variable ``name``."""
    return None if os.environ.get(name) else value


def export_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    """A BatchSpanProcessor feeding ``exporter`` with canarytrace's queue and batch sizes."""
    return BatchSpanProcessor(
        exporter,
        max_queue_size=_unless_env(OTEL_BSP_MAX_QUEUE_SIZE, MAX_QUEUE_SIZE),
        schedule_delay_millis=_unless_env(OTEL_BSP_SCHEDULE_DELAY, SCHEDULE_DELAY_MILLIS),
        max_export_batch_size=_unless_env(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, MAX_EXPORT_BATCH_SIZE),
    )
