"""Typed read filters and keyset pagination, turned into parameterized ClickHouse SQL.

The same models are the query parameters of the HTTP API (``GET /api/spans``,
``GET /api/eval_results``) and the arguments of ``Store.query_spans`` /
``Store.query_eval_results``, so both paths read exactly the same rows.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from canarytrace import attributes as A
from canarytrace.store.schema import quote, span_attr
from canarytrace.store.timestamps import to_ns
from canarytrace.times import check_range, parse_time

MAX_PAGE = 10_000
EXPECTATIONS = (A.CANARY_EXPECT_INSTRUCTIONS, A.CANARY_EXPECT_JSON_SCHEMA,
                A.CANARY_EXPECT_TOOLS, A.CANARY_EXPECT_REFERENCE)


class BadQuery(ValueError):
    """A filter or cursor that cannot be used (HTTP 400)."""


def _time_form(value: Any) -> Any:
    """``now`` and ``30m``/``1h``/``7d`` as the CLI takes them; anything else pydantic parses."""
    if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "").isdigit():
        return parse_time(value, datetime.now(UTC))
    return value


Moment = Annotated[datetime, BeforeValidator(_time_form), AfterValidator(check_range)]
"""A time bound in a filter: ISO-8601, epoch seconds, ``now`` or ``1h`` back; out of range is
a validation error (a year-9999 ``since`` would overflow nanoseconds and match every row)."""


class SpanFilter(BaseModel):
    """Which spans to read; every field set narrows the result (AND)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    variant: str | None = None
    role: str | None = None
    route: str | None = None
    cohort: str | None = None
    service: str | None = None
    pair_id: str | None = None
    trace_id: str | None = None
    span_name: str | None = None
    operation: str | None = Field(None, description=f"{A.GEN_AI_OPERATION_NAME} equals this")
    llm_only: bool = Field(False, description="only chat/text_completion/generate_content spans")
    has_expectation: bool | None = Field(
        None, description="true: spans with a canary.expect.* attribute; false: without")
    unscored_by: str | None = Field(None, description="only spans this evaluator has not scored")
    since: Moment | None = Field(None, description="start time >= since (ISO-8601, or 1h "
                                                   "back, 30m, 7d, now)")
    until: Moment | None = Field(None, description="start time < until (same forms)")


class EvalFilter(BaseModel):
    """Which eval results to read; ``since``/``until`` apply to the span's start time."""

    model_config = ConfigDict(extra="forbid")

    evaluator: str | None = None
    evaluator_version: str | None = None
    model: str | None = None
    variant: str | None = None
    role: str | None = None
    route: str | None = None
    cohort: str | None = None
    pair_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    since: Moment | None = None
    until: Moment | None = None


class PageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(None, description="next_cursor of the previous page")
    order: Literal["asc", "desc"] = "asc"


@dataclass
class Page:
    """One page of rows; ``next_cursor`` is None on the last page."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


class Conditions:
    """WHERE clauses with server-side bound parameters (``{name:Type}``)."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.parameters: dict[str, Any] = {}

    def add(self, clause: str, **parameters: Any) -> None:
        self.clauses.append(clause)
        self.parameters.update(parameters)

    def equal(self, column: str, value: str | None, name: str) -> None:
        if value is not None:
            self.add(f"{column} = {{{name}:String}}", **{name: value})

    def time_range(self, column: str, since: datetime | None, until: datetime | None) -> None:
        if since is not None:
            self.add(f"{column} >= fromUnixTimestamp64Nano({{since:Int64}})", since=to_ns(since))
        if until is not None:
            self.add(f"{column} < fromUnixTimestamp64Nano({{until:Int64}})", until=to_ns(until))

    def time_range_ns(self, column: str, since_ns: int | None, until_ns: int | None) -> None:
        """``since_ns <= column < until_ns`` (nanoseconds since the epoch; None: open)."""
        if since_ns is not None:
            self.add(f"{column} >= fromUnixTimestamp64Nano({{since:Int64}})", since=since_ns)
        if until_ns is not None:
            self.add(f"{column} < fromUnixTimestamp64Nano({{until:Int64}})", until=until_ns)

    def sql(self) -> str:
        return " AND ".join(self.clauses) or "1"


def span_conditions(project: str, f: SpanFilter, eval_table: str) -> Conditions:
    c = Conditions()
    c.equal("Project", project, "project")
    for column, value, name in (
            ("Model", f.model, "model"), ("Variant", f.variant, "variant"),
            ("Role", f.role, "role"), ("Route", f.route, "route"),
            ("Cohort", f.cohort, "cohort"), ("ServiceName", f.service, "service"),
            ("PairId", f.pair_id, "pair_id"), ("TraceId", f.trace_id, "trace_id"),
            ("SpanName", f.span_name, "span_name"),
            (span_attr(A.GEN_AI_OPERATION_NAME), f.operation, "operation")):
        c.equal(column, value, name)
    if f.llm_only:
        operations = ", ".join(quote(op) for op in A.LLM_OPERATIONS)
        c.add(f"{span_attr(A.GEN_AI_OPERATION_NAME)} IN ({operations})")
    if f.has_expectation is not None:
        present = " OR ".join(f"mapContains(SpanAttributes, {quote(k)})" for k in EXPECTATIONS)
        c.add(f"({present})" if f.has_expectation else f"NOT ({present})")
    if f.unscored_by is not None:
        c.add(f"SpanId NOT IN (SELECT SpanId FROM {eval_table} FINAL "
              "WHERE Project = {project:String} AND Evaluator = {unscored_by:String})",
              unscored_by=f.unscored_by)
    c.time_range("Timestamp", f.since, f.until)
    return c


def eval_conditions(project: str, f: EvalFilter) -> Conditions:
    c = Conditions()
    c.equal("Project", project, "project")
    for column, value, name in (
            ("Evaluator", f.evaluator, "evaluator"),
            ("EvaluatorVersion", f.evaluator_version, "evaluator_version"),
            ("Model", f.model, "model"), ("Variant", f.variant, "variant"),
            ("Role", f.role, "role"), ("Route", f.route, "route"),
            ("Cohort", f.cohort, "cohort"), ("PairId", f.pair_id, "pair_id"),
            ("TraceId", f.trace_id, "trace_id"), ("SpanId", f.span_id, "span_id")):
        c.equal(column, value, name)
    c.time_range("SpanTimestamp", f.since, f.until)
    return c


@dataclass(frozen=True)
class Keyset:
    """The ORDER BY key of a paged query: SQL expressions, their types and row fields."""

    expressions: tuple[str, ...]
    types: tuple[str, ...]
    fields: tuple[str, ...]

    def order_by(self, order: str) -> str:
        direction = " DESC" if order == "desc" else ""
        return ", ".join(f"{e}{direction}" for e in self.expressions)

    def after(self, conditions: Conditions, cursor: str | None, order: str) -> None:
        """Restrict ``conditions`` to rows after ``cursor`` in ``order``."""
        if cursor is None:
            return
        values = decode_cursor(cursor, len(self.expressions))
        names = [f"cursor_{i}" for i in range(len(values))]
        placeholders = ", ".join(f"{{{n}:{t}}}" for n, t in zip(names, self.types, strict=True))
        comparison = "<" if order == "desc" else ">"
        conditions.add(f"({', '.join(self.expressions)}) {comparison} ({placeholders})",
                       **dict(zip(names, values, strict=True)))

    def next_cursor(self, rows: list[dict[str, Any]], limit: int) -> str | None:
        if len(rows) < limit:
            return None
        return encode_cursor([rows[-1][name] for name in self.fields])


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise BadQuery(f"cursor {cursor[:40]!r} is not one this API returned") from exc
    if not isinstance(values, list) or len(values) != size:
        raise BadQuery(f"cursor {cursor[:40]!r} is not one this API returned")
    return values


SPAN_KEYSET = Keyset(("toUnixTimestamp64Nano(Timestamp)", "SpanId"), ("Int64", "String"),
                     ("TimestampNs", "SpanId"))
EVAL_KEYSET = Keyset(
    ("toUnixTimestamp64Nano(SpanTimestamp)", "SpanId", "Evaluator", "EvaluatorVersion"),
    ("Int64", "String", "String", "String"),
    ("SpanTimestampNs", "SpanId", "Evaluator", "EvaluatorVersion"))
