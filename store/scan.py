"""The evaluation scan: evaluable spans page by page in the table's key order, and the
lookups one page needs (mirrored partners, agent traces, results already written).

``otel_traces`` is ordered by (Project, ServiceName, SpanName, toDateTime(Timestamp),
SpanId). A page that follows that order is the next range of the primary key, so reading
a window costs about one pass over it whatever its size; a page ordered by time would
re-sort the whole window each time. Every lookup is one query for a whole page.

Rows come back as ClickHouse ``JSONCompactEachRow`` lines (JSON arrays in ``COLUMNS``
order), which the collector forwards as they are. Reads skip FINAL: the copies a retried
insert leaves share the whole sorting key, so they are adjacent in key order and readers
drop them (``canarytrace.evaluators.sources``); lookups are keyed by SpanId.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from canarytrace import attributes as A
from canarytrace.store.queries import BadQuery, Conditions, decode_cursor, encode_cursor
from canarytrace.store.schema import span_attr
from canarytrace.store.timestamps import NS_PER_S

if TYPE_CHECKING:
    from canarytrace.store.client import Store

COLUMNS: tuple[tuple[str, str], ...] = (
    ("TimestampNs", "toUnixTimestamp64Nano(Timestamp)"), ("TraceId", "TraceId"),
    ("SpanId", "SpanId"), ("ParentSpanId", "ParentSpanId"), ("SpanName", "SpanName"),
    ("ServiceName", "ServiceName"), ("SpanAttributes", "SpanAttributes"),
    ("Duration", "Duration"), ("StatusCode", "StatusCode"), ("Project", "Project"),
    ("Model", "Model"), ("Variant", "Variant"), ("Role", "Role"), ("PairId", "PairId"),
    ("Route", "Route"), ("Cohort", "Cohort"),
)
"""What an evaluator reads of a span (no Events, Links or resource attributes)."""
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
_AT = {name: i for i, name in enumerate(COLUMN_NAMES)}
_SELECT = ", ".join(expr if expr == name else f"{expr} AS {name}" for name, expr in COLUMNS)
_KEY = ("ServiceName", "SpanName", "toDateTime(Timestamp)", "SpanId")
_KEY_TYPES = ("String", "String", "UInt32", "String")
EVALUATED_OPERATIONS = (*A.LLM_OPERATIONS, A.OPERATION_INVOKE_AGENT)
"""The spans an evaluation run reads: LLM calls and agent runs."""
JSON_OUT = {"output_format_json_quote_64bit_integers": 0,
            "output_format_json_validate_utf8": 1}


def key_of(row: Sequence[Any]) -> tuple[str, str, int, str]:
    """A scanned row's place in the table's sort order (duplicates share it)."""
    return (row[_AT["ServiceName"]], row[_AT["SpanName"]],
            row[_AT["TimestampNs"]] // NS_PER_S, row[_AT["SpanId"]])


def _key_after(conditions: Conditions, cursor: str) -> None:
    """Rows after ``cursor`` in key order, as nested ORs the primary index can use (a tuple
    comparison would be read as a filter only)."""
    values = decode_cursor(cursor, len(_KEY))
    if not (all(isinstance(v, str) for v in (values[0], values[1], values[3]))
            and isinstance(values[2], int) and 0 <= values[2] < 2**32):
        raise BadQuery(f"cursor {cursor[:40]!r} is not one this API returned")
    names = [f"key_{i}" for i in range(len(_KEY))]
    params = [f"{{{n}:{t}}}" for n, t in zip(names, _KEY_TYPES, strict=True)]
    params[2] = f"toDateTime({params[2]})"
    clause = f"{_KEY[-1]} > {params[-1]}"
    for column, value in zip(reversed(_KEY[:-1]), reversed(params[:-1]), strict=True):
        clause = f"({column} > {value} OR ({column} = {value} AND {clause}))"
    conditions.add(clause, **dict(zip(names, values, strict=True)))


@dataclass
class ScanPage:
    """One page of the scan: JSON-array lines in COLUMNS order; ``next_cursor`` None last."""

    lines: list[bytes]
    next_cursor: str | None


class SpanScan:
    """The evaluation reads of one project of a Store, each one query."""

    def __init__(self, store: Store, project: str) -> None:
        self.store, self.project = store, project
        self.table = store.table("otel_traces")

    def _conditions(self, since_ns: int | None, until_ns: int | None,
                    operations: Sequence[str] = EVALUATED_OPERATIONS) -> Conditions:
        c = Conditions()
        c.add("Project = {project:String}", project=self.project)
        c.add(f"{span_attr(A.GEN_AI_OPERATION_NAME)} IN {{operations:Array(String)}}",
              operations=list(operations))
        c.time_range_ns("Timestamp", since_ns, until_ns)
        return c

    def _lines(self, sql: str, conditions: Conditions) -> list[bytes]:
        raw = self.store.client.raw_query(sql, parameters=conditions.parameters,
                                          settings=JSON_OUT, fmt="JSONCompactEachRow")
        return [line for line in raw.split(b"\n") if line]

    def page(self, since_ns: int | None, until_ns: int | None, cursor: str | None,
             limit: int) -> ScanPage:
        """Up to ``limit`` LLM and agent spans of the window after ``cursor``, in key order."""
        c = self._conditions(since_ns, until_ns)
        if cursor is not None:
            _key_after(c, cursor)
        lines = self._lines(f"SELECT {_SELECT} FROM {self.table} WHERE {c.sql()} "
                            f"ORDER BY Project, {', '.join(_KEY)} LIMIT {int(limit)}", c)
        if len(lines) < limit:
            return ScanPage(lines, None)
        return ScanPage(lines, encode_cursor(list(key_of(orjson.loads(lines[-1])))))

    def count(self, since_ns: int | None, until_ns: int | None) -> int:
        """About how many spans the scan of the window reads (unmerged copies included)."""
        c = self._conditions(since_ns, until_ns)
        rows = self.store.client.query(f"SELECT count() FROM {self.table} WHERE {c.sql()}",
                                       parameters=c.parameters).result_rows
        return int(rows[0][0])

    def partners(self, pair_ids: Sequence[str], since_ns: int,
                 until_ns: int) -> list[bytes]:
        """The base arms (LLM spans) of these mirrored pairs that started in the window."""
        if not pair_ids:
            return []
        c = self._conditions(since_ns, until_ns, A.LLM_OPERATIONS)
        c.add("PairId IN {pair_ids:Array(String)}", pair_ids=list(pair_ids))
        c.add("Variant = {base:String}", base=A.VARIANT_BASE)
        return self._lines(f"SELECT {_SELECT} FROM {self.table} WHERE {c.sql()}", c)

    def traces(self, trace_ids: Sequence[str], since_ns: int, until_ns: int) -> list[bytes]:
        """Every span of these traces that started in the window."""
        if not trace_ids:
            return []
        c = Conditions()
        c.add("Project = {project:String}", project=self.project)
        c.add("TraceId IN {trace_ids:Array(String)}", trace_ids=list(trace_ids))
        c.time_range_ns("Timestamp", since_ns, until_ns)
        return self._lines(f"SELECT {_SELECT} FROM {self.table} WHERE {c.sql()}", c)

    def scored(self, evaluators: Sequence[tuple[str, str]], span_ids: Sequence[str],
               since_ns: int, until_ns: int, provisional: str) -> list[tuple[str, str, str]]:
        """(evaluator, version, span id) of the results these evaluator versions wrote for
        these spans, leaving out provisional ones (label ``provisional``)."""
        if not evaluators or not span_ids:
            return []
        c = Conditions()
        c.add("Project = {project:String}", project=self.project)
        c.add("(Evaluator, EvaluatorVersion) IN {evaluators:Array(Tuple(String, String))}",
              evaluators=[tuple(e) for e in evaluators])
        c.add("SpanId IN {span_ids:Array(String)}", span_ids=list(span_ids))
        c.time_range_ns("SpanTimestamp", since_ns, until_ns)
        c.add("Label != {provisional:String}", provisional=provisional)
        result = self.store.client.query(
            f"SELECT DISTINCT Evaluator, EvaluatorVersion, SpanId "
            f"FROM {self.store.table('eval_results')} WHERE {c.sql()}", parameters=c.parameters)
        return [tuple(row) for row in result.result_rows]


LOOKAROUND_NS = 3600 * NS_PER_S
"""How far from a page's spans their partners and trace spans are looked for."""


@dataclass
class ContextRows:
    """What one page needs besides its spans: lines in COLUMNS order, and scored keys."""

    partners: list[bytes]
    traces: list[bytes]
    scored: list[tuple[str, str, str]]


def page_context(scan: SpanScan, since_ns: int, until_ns: int, *, pair_ids: Sequence[str] = (),
                 trace_ids: Sequence[str] = (), span_ids: Sequence[str] = (),
                 evaluators: Sequence[tuple[str, str]] = (),
                 provisional: str = "") -> ContextRows:
    """The base arms of ``pair_ids``, the spans of ``trace_ids`` (both within LOOKAROUND_NS
    of [since_ns, until_ns)) and which of ``span_ids`` the evaluators already scored: at
    most three queries for a whole page."""
    wide = (since_ns - LOOKAROUND_NS, until_ns + LOOKAROUND_NS)
    return ContextRows(scan.partners(pair_ids, *wide), scan.traces(trace_ids, *wide),
                       scan.scored(evaluators, span_ids, since_ns, until_ns, provisional))
