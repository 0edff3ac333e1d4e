"""Store: one clickhouse-connect client and the canarytrace tables behind it.

``Store.from_url("chdb:///path")`` opens the embedded engine (chDB, one process per
directory); ``Store.from_url("http://user:pass@host:8123")`` a ClickHouse server or
cluster. Reads use FINAL, so they are exact even before ReplacingMergeTree merges away
retried duplicates. Rows are plain dicts keyed by column name, JSON-ready.

One Store may be shared by threads: clickhouse-connect serializes the calls on a client
(its chDB backend holds a lock per client; HTTP clients run without a session id).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
import orjson
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from canarytrace.store import schema, span_columns
from canarytrace.store.location import chdb_path, check_not_in_use, resolve_store_url
from canarytrace.store.queries import (
    EVAL_KEYSET,
    SPAN_KEYSET,
    Conditions,
    EvalFilter,
    Keyset,
    Page,
    PageRequest,
    SpanFilter,
    eval_conditions,
    span_conditions,
)
from canarytrace.store.schema import DEFAULT_PROJECT
from canarytrace.store.timestamps import format_ns, iso_ns, to_ns

DEFAULT_DATABASE = "canarytrace"
SPAN_SELECT = """toUnixTimestamp64Nano(Timestamp) AS TimestampNs, TraceId, SpanId, ParentSpanId,
    TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion,
    SpanAttributes, Duration, StatusCode, StatusMessage,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS EventsTimestampNs,
    Events.Name AS EventsName, Events.Attributes AS EventsAttributes,
    Links.TraceId AS LinksTraceId, Links.SpanId AS LinksSpanId,
    Links.TraceState AS LinksTraceState, Links.Attributes AS LinksAttributes,
    Model, Variant, Role, PairId, Route, Cohort, InputTokens, OutputTokens,
    ParserErrors, ParserRetries, Fallback, Project"""
EVAL_SELECT = """toUnixTimestamp64Nano(Timestamp) AS TimestampNs,
    toUnixTimestamp64Nano(SpanTimestamp) AS SpanTimestampNs, Project, ServiceName, TraceId,
    SpanId, Evaluator, EvaluatorVersion, Score, Passed, Label, Reason, Details,
    Model, Variant, Role, PairId, Route, Cohort"""
SPAN_COPIED_TO_EVALS = ("ServiceName", "TraceId", "Model", "Variant", "Role", "PairId", "Route",
                        "Cohort")
READ_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}
TIME_INPUT = {"date_time_input_format": "best_effort"}
MAX_DAYS_PER_INSERT = 50  # daily partitions per insert; ClickHouse refuses over 100
# A span sent twice in one insert is left for ReplacingMergeTree's merges (reads use FINAL):
# collapsing it at insert time costs about half of ClickHouse's insert CPU.
SPAN_INSERT = {"optimize_on_insert": 0}


def time_text(value: Any) -> str:
    """A timestamp for JSONEachRow input: datetime, epoch nanoseconds, or ISO-8601 text."""
    if isinstance(value, datetime):
        return format_ns(to_ns(value))
    if isinstance(value, (int, float)):
        return format_ns(int(value))
    return str(value)


def shape_span(raw: dict[str, Any]) -> dict[str, Any]:
    """A span row as the API returns it: ISO and ns timestamps, Events/Links as object lists."""
    row = {"Timestamp": iso_ns(raw["TimestampNs"]), **raw}
    row["Events"] = [{"Timestamp": iso_ns(ns), "TimestampNs": ns, "Name": name, "Attributes": attrs}
                     for ns, name, attrs in zip(row.pop("EventsTimestampNs"), row.pop("EventsName"),
                                                row.pop("EventsAttributes"), strict=True)]
    row["Links"] = [{"TraceId": t, "SpanId": s, "TraceState": st, "Attributes": a}
                    for t, s, st, a in zip(row.pop("LinksTraceId"), row.pop("LinksSpanId"),
                                           row.pop("LinksTraceState"), row.pop("LinksAttributes"),
                                           strict=True)]
    return row


def shape_eval(raw: dict[str, Any]) -> dict[str, Any]:
    return {"Timestamp": iso_ns(raw["TimestampNs"]),
            "SpanTimestamp": iso_ns(raw["SpanTimestampNs"]), **raw}


class Store:
    """The canarytrace tables in one ClickHouse database, through one client."""

    def __init__(self, client: Client, database: str = DEFAULT_DATABASE, cluster: str | None = None,
                 ttl_days: int = 0) -> None:
        self.client = client
        self.options = schema.SchemaOptions(database=database, cluster=cluster, ttl_days=ttl_days)

    @classmethod
    def from_url(cls, url: str, database: str | None = None, cluster: str | None = None,
                 ttl_days: int = 0) -> Store:
        """Connect to ``chdb:///dir`` (embedded, the default) or ``http(s)://user:pass@host:port/db``.

        The database is ``database``, else the URL's path (servers only), else ``canarytrace``.
        """
        url = resolve_store_url(url)
        if url.startswith("chdb:"):
            directory = chdb_path(url)
            if directory is not None:
                check_not_in_use(directory)  # StoreInUse, before chDB prints its own error
            client = clickhouse_connect.get_client(dsn=url)
        else:
            parsed = urlsplit(url)
            database = database or parsed.path.strip("/") or None
            client = clickhouse_connect.get_client(dsn=urlunsplit(parsed._replace(path="")),
                                                   autogenerate_session_id=False)
        return cls(client, database or DEFAULT_DATABASE, cluster, ttl_days)

    @property
    def database(self) -> str:
        return self.options.database

    def table(self, name: str) -> str:
        """The qualified name to query, e.g. ``canarytrace.otel_traces``."""
        return f"{self.database}.{name}"

    # --- schema -------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Create or upgrade the schema; returns the versions applied now ([] when current)."""
        for statement in schema.bootstrap_statements(self.options):
            self.client.command(statement)
        done = {row[0] for row in self.client.query(
            f"SELECT Version FROM {self.table(schema.MIGRATIONS_TABLE)} FINAL").result_rows}
        applied = []
        for migration in schema.MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements(self.options):
                self.client.command(statement)
            self._insert_json(schema.MIGRATIONS_TABLE,
                              [{"Version": migration.version, "Name": migration.name}])
            applied.append(migration.version)
        return applied

    # --- writes ---------------------------------------------------------------------------
    def insert_spans(self, rows: Iterable[Mapping[str, Any]],
                     dedup_token: str | None = None) -> int:
        """Insert otel_traces rows (dicts as ``rows.RowBuilder`` makes them); returns the count.

        Typed (Arrow), so nothing is parsed from text. A retried insert with the same
        ``dedup_token`` and rows is dropped by ClickHouse.
        """
        data = span_columns.table(list(rows))
        self.insert_span_table(data, dedup_token)
        return data.num_rows

    def insert_span_table(self, data: pa.Table, dedup_token: str | None = None) -> None:
        """Insert an Arrow table of otel_traces columns (``span_columns.SCHEMA``).

        Rows spread over many days go in pieces of at most MAX_DAYS_PER_INSERT partitions
        (ClickHouse refuses a block with over 100); piece ``i`` gets token ``<token>:<i>``.
        """
        pieces = span_columns.partition_chunks(data, MAX_DAYS_PER_INSERT)
        for index, piece in enumerate(pieces):
            token = dedup_token if len(pieces) == 1 or not dedup_token \
                else f"{dedup_token}:{index}"
            settings = {**SPAN_INSERT, "insert_deduplication_token": token} if token \
                else SPAN_INSERT
            self.client.raw_insert(self.table("otel_traces"), None,
                                   span_columns.to_ipc(piece), settings=settings,
                                   fmt="ArrowStream")

    def insert_span_payload(self, payload: bytes, dedup_token: str | None = None) -> None:
        """Insert otel_traces rows encoded as JSONEachRow text (spool segments of old versions)."""
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else {}
        self.client.raw_insert(self.table("otel_traces"), None, payload, settings=settings,
                               fmt="JSONEachRow")

    def insert_eval_results(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert eval_results rows keyed by column name; re-scoring a span replaces its row.

        Needs ``SpanId``, ``Evaluator`` and the result (``Score``/``Passed``/...). Columns the
        span has (SpanTimestamp, TraceId, ServiceName, Model, Variant, Role, PairId, Route,
        Cohort) are copied from the stored span when the row leaves them out.
        """
        prepared = [self._eval_row(row) for row in rows]
        self._fill_from_spans(prepared)
        return self._insert_json("eval_results", prepared)

    def insert_feedback(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert feedback rows (TraceId, Score, optional SpanId/FeedbackId/Comment/Source)."""
        prepared = []
        for row in rows:
            item = {"Timestamp": time.time_ns(), "Project": DEFAULT_PROJECT, "SpanId": "",
                    "Comment": "", "Source": "api", **row}
            item["Timestamp"] = time_text(item["Timestamp"])
            item.setdefault("FeedbackId", f"{item['TraceId']}:{item['SpanId']}:{item['Source']}")
            prepared.append(item)
        return self._insert_json("feedback", prepared)

    def insert_verdict(self, row: Mapping[str, Any]) -> None:
        """Insert one verdicts row; Reasons/Report may be given as objects (stored as JSON)."""
        item = {"Timestamp": time.time_ns(), "Project": DEFAULT_PROJECT, "Window": "",
                "Reasons": "[]", "Report": "{}", **row}
        item["Timestamp"] = time_text(item["Timestamp"])
        for key in ("Reasons", "Report"):
            if not isinstance(item[key], str):
                item[key] = json.dumps(item[key])
        self._insert_json("verdicts", [item])

    def _eval_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        item = {"Timestamp": time.time_ns(), "Project": DEFAULT_PROJECT, "EvaluatorVersion": "1",
                "Score": None, "Passed": None, "Label": "", "Reason": "", "Details": "{}", **row}
        item["Timestamp"] = time_text(item["Timestamp"])
        if not isinstance(item["Details"], str):
            item["Details"] = json.dumps(item["Details"], default=str)
        return item

    def _fill_from_spans(self, rows: list[dict[str, Any]]) -> None:
        missing = [r for r in rows if "SpanTimestamp" not in r]
        spans = self._span_facts({(r["Project"], r["SpanId"]) for r in missing})
        for row in missing:
            facts = spans.get((row["Project"], row["SpanId"]), {})
            row["SpanTimestamp"] = facts.get("TimestampNs", time.time_ns())
            for column in SPAN_COPIED_TO_EVALS:
                row.setdefault(column, facts.get(column, ""))
        for row in rows:
            row["SpanTimestamp"] = time_text(row["SpanTimestamp"])

    def _span_facts(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        if not keys:
            return {}
        columns = ", ".join(SPAN_COPIED_TO_EVALS)
        result = self.client.query(
            f"SELECT Project, SpanId, toUnixTimestamp64Nano(Timestamp) AS TimestampNs, {columns} "
            f"FROM {self.table('otel_traces')} "
            "WHERE (Project, SpanId) IN {keys:Array(Tuple(String, String))} "
            "LIMIT 1 BY Project, SpanId", parameters={"keys": sorted(keys)})
        return {(r["Project"], r["SpanId"]): r for r in result.named_results()}

    def _insert_json(self, table: str, rows: list[dict[str, Any]]) -> int:
        if rows:
            self.client.raw_insert(self.table(table), None,
                                   b"\n".join(orjson.dumps(r, default=str) for r in rows),
                                   settings=TIME_INPUT, fmt="JSONEachRow")
        return len(rows)

    # --- reads ----------------------------------------------------------------------------
    def get_trace(self, project: str, trace_id: str) -> list[dict[str, Any]]:
        """Every span of one trace in ``project``, by start time ([] when there is none)."""
        result = self.client.query(
            f"SELECT {SPAN_SELECT} FROM {self.table('otel_traces')} FINAL "
            "WHERE Project = {project:String} AND TraceId = {trace_id:String} "
            "ORDER BY Timestamp, SpanId",
            parameters={"project": project, "trace_id": trace_id.lower()}, settings=READ_SETTINGS)
        return [shape_span(r) for r in result.named_results()]

    def query_spans(self, project: str, filters: SpanFilter | None = None,
                    page: PageRequest | None = None) -> Page:
        """Spans of ``project`` matching ``filters``, by (start time, SpanId), one page at a time.

        Each row has every otel_traces column (Timestamp as ISO-8601 plus TimestampNs,
        Events/Links as lists of objects) and the materialized Model, Variant, ... Project.
        """
        conditions = span_conditions(project, filters or SpanFilter(), self.table("eval_results"))
        return self._page("otel_traces", SPAN_SELECT, SPAN_KEYSET, conditions,
                          page or PageRequest(), shape_span)

    def query_eval_results(self, project: str, filters: EvalFilter | None = None,
                           page: PageRequest | None = None) -> Page:
        """Eval results of ``project`` matching ``filters`` (the latest per span and evaluator)."""
        return self._page("eval_results", EVAL_SELECT, EVAL_KEYSET,
                          eval_conditions(project, filters or EvalFilter()),
                          page or PageRequest(), shape_eval)

    def _page(self, table: str, select: str, keyset: Keyset, conditions: Conditions,
              page: PageRequest, shape: Callable[[dict[str, Any]], dict[str, Any]]) -> Page:
        """One keyset-paged read of ``table`` (FINAL, so unmerged duplicates never show)."""
        keyset.after(conditions, page.cursor, page.order)
        result = self.client.query(
            f"SELECT {select} FROM {self.table(table)} FINAL "
            f"WHERE {conditions.sql()} ORDER BY {keyset.order_by(page.order)} "
            f"LIMIT {page.limit}", parameters=conditions.parameters, settings=READ_SETTINGS)
        rows = [shape(r) for r in result.named_results()]
        return Page(rows, keyset.next_cursor(rows, page.limit))

    def query_feedback(self, project: str, trace_id: str | None = None,
                       limit: int = 1000) -> list[dict[str, Any]]:
        """Feedback of ``project`` (of one trace when ``trace_id`` is given), newest first."""
        where = "Project = {project:String}"
        if trace_id:
            where += " AND TraceId = {trace_id:String}"
        result = self.client.query(
            "SELECT toUnixTimestamp64Nano(Timestamp) AS TimestampNs, Project, TraceId, SpanId, "
            f"FeedbackId, Score, Comment, Source FROM {self.table('feedback')} FINAL "
            f"WHERE {where} ORDER BY Timestamp DESC LIMIT {int(limit)}",
            parameters={"project": project, "trace_id": trace_id or ""})
        return [{"Timestamp": iso_ns(r["TimestampNs"]), **r} for r in result.named_results()]

    def query_verdicts(self, project: str, limit: int = 100) -> list[dict[str, Any]]:
        """The latest verdicts of ``project``, newest first."""
        result = self.client.query(
            "SELECT toUnixTimestamp64Nano(Timestamp) AS TimestampNs, Project, BaseModel, "
            "CandidateModel, Verdict, Score, Window, Reasons, Report "
            f"FROM {self.table('verdicts')} "
            f"WHERE Project = {{project:String}} ORDER BY Timestamp DESC LIMIT {int(limit)}",
            parameters={"project": project})
        return [{"Timestamp": iso_ns(r["TimestampNs"]), **r} for r in result.named_results()]

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run internal SQL (``{name:Type}`` placeholders) and return rows as dicts.

        Tables are ``store.table("otel_traces")`` etc.; add FINAL to read deduplicated rows.
        """
        return list(self.client.query(sql, parameters=dict(parameters or {})).named_results())

    def ping(self) -> bool:
        """True when the store answers a query."""
        try:
            self.client.command("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False
        return True

    def close(self) -> None:
        self.client.close()
