"""Logs, metrics and the GenAI joins: inserts into ``otel_logs`` / ``otel_metrics_*`` and the
reads that join GenAI events to their spans.

Rows come from ``canarytrace.collector.signals`` (exporter shapes, timestamps as
``seconds.nanoseconds`` text). A retried request carries the same deduplication token, so
it is not stored twice. Spans are re-written whole (``otel_traces`` is a
ReplacingMergeTree keyed by span, so the newer row replaces the older one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from canarytrace import attributes as A
from canarytrace.store.client import READ_SETTINGS, TIME_INPUT, Store
from canarytrace.store.schema import span_attr

SPAN_COLUMNS = """toUnixTimestamp64Nano(Timestamp) AS Timestamp, TraceId, SpanId, ParentSpanId,
    TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion,
    SpanAttributes, Duration, StatusCode, StatusMessage,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS `Events.Timestamp`,
    Events.Name AS `Events.Name`, Events.Attributes AS `Events.Attributes`,
    Links.TraceId AS `Links.TraceId`, Links.SpanId AS `Links.SpanId`,
    Links.TraceState AS `Links.TraceState`, Links.Attributes AS `Links.Attributes`"""
"""otel_traces columns in the shape ``Store.insert_spans`` takes (timestamps in ns)."""
FACTS = ("ServiceName", "TraceId", "Model", "Variant", "Role", "PairId", "Route", "Cohort")
"""Span columns copied into eval_results rows."""
Key = tuple[str, str]
"""(Project, SpanId)"""


class Telemetry:
    """The OTel signal tables of one Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]],
               dedup_token: str | None = None) -> int:
        """Insert exporter-shaped rows into ``table`` (otel_logs or an otel_metrics_* table)."""
        if not rows:
            return 0
        settings = dict(TIME_INPUT)
        if dedup_token:
            settings["insert_deduplication_token"] = f"{dedup_token}:{table}"
        payload = b"\n".join(orjson.dumps(row, default=str) for row in rows)
        self.store.client.raw_insert(self.store.table(table), None, payload, settings=settings,
                                     fmt="JSONEachRow")
        return len(rows)

    # --- spans and their facts ------------------------------------------------------------
    def spans(self, keys: Iterable[Key]) -> list[dict[str, Any]]:
        """The stored spans with these (Project, SpanId), as ``insert_spans`` rows."""
        keys = sorted(set(keys))
        if not keys:
            return []
        return self.store.query(
            f"SELECT Project, {SPAN_COLUMNS} FROM {self.store.table('otel_traces')} FINAL "
            "WHERE (Project, SpanId) IN {keys:Array(Tuple(String, String))}",
            {"keys": keys})

    def facts(self, keys: Iterable[Key]) -> dict[Key, dict[str, Any]]:
        """What eval_results copies from each stored span, by (Project, SpanId)."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        rows = self.store.query(
            f"SELECT Project, SpanId, toUnixTimestamp64Nano(Timestamp) AS SpanTimestamp, "
            f"{', '.join(FACTS)} FROM {self.store.table('otel_traces')} "
            "WHERE (Project, SpanId) IN {keys:Array(Tuple(String, String))} "
            "LIMIT 1 BY Project, SpanId", {"keys": keys})
        return {(r["Project"], r["SpanId"]): r for r in rows}

    # --- GenAI content events -------------------------------------------------------------
    def content_events(self, keys: Iterable[Key],
                       names: Sequence[str]) -> dict[Key, list[dict[str, Any]]]:
        """The content events (``names``) of these spans, oldest first, by (Project, SpanId)."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        rows = self.store.query(
            f"SELECT Project, SpanId, EventName, LogAttributes, Body "
            f"FROM {self.store.table('otel_logs')} "
            "WHERE (Project, SpanId) IN {keys:Array(Tuple(String, String))} "
            "AND EventName IN {names:Array(String)} ORDER BY Timestamp",
            {"keys": keys, "names": list(names)})
        found: dict[Key, list[dict[str, Any]]] = {}
        for row in rows:
            found.setdefault((row["Project"], row["SpanId"]), []).append(row)
        return found

    def spans_with_content_events(self, since_ns: int, names: Sequence[str],
                                  limit: int = 10_000) -> list[Key]:
        """Spans that got content events since ``since_ns`` but have no output messages."""
        rows = self.store.query(
            f"SELECT DISTINCT Project, SpanId FROM {self.store.table('otel_logs')} "
            "WHERE Timestamp >= fromUnixTimestamp64Nano({since:Int64}) AND SpanId != '' "
            "AND EventName IN {names:Array(String)} "
            f"AND (Project, SpanId) NOT IN (SELECT Project, SpanId FROM "
            f"{self.store.table('otel_traces')} WHERE "
            f"{span_attr(A.GEN_AI_OUTPUT_MESSAGES)} != '' "
            "AND Timestamp >= fromUnixTimestamp64Nano({since:Int64}) - INTERVAL 1 DAY) "
            f"LIMIT {int(limit)}", {"since": since_ns, "names": list(names)})
        return [(r["Project"], r["SpanId"]) for r in rows]

    # --- eval results from evaluation events ----------------------------------------------
    def unjoined_results(self, keys: Iterable[Key] | None = None, since_ns: int = 0,
                         limit: int = 10_000) -> list[dict[str, Any]]:
        """eval_results rows without span facts (their span was not stored yet), either of
        these (Project, SpanId) or scored since ``since_ns``."""
        where = ["Model = ''", "Variant = ''", "Route = ''"]
        parameters: dict[str, Any] = {"since": since_ns}
        if keys is not None:
            parameters["keys"] = sorted(set(keys))
            if not parameters["keys"]:
                return []
            where.append("(Project, SpanId) IN {keys:Array(Tuple(String, String))}")
        else:
            where.append("Timestamp >= fromUnixTimestamp64Nano({since:Int64})")
        result = self.store.client.query(
            "SELECT toUnixTimestamp64Nano(Timestamp) AS Timestamp, "
            "toUnixTimestamp64Nano(SpanTimestamp) AS SpanTimestamp, Project, ServiceName, "
            "TraceId, SpanId, Evaluator, EvaluatorVersion, Score, Passed, Label, Reason, "
            f"Details FROM {self.store.table('eval_results')} FINAL WHERE {' AND '.join(where)} "
            f"LIMIT {int(limit)}", parameters=parameters, settings=READ_SETTINGS)
        return list(result.named_results())
