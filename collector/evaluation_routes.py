"""The bulk evaluation API ``canarytrace evaluate --collector`` reads and writes through.

``GET /api/evaluation/spans`` is one page of the window's LLM and agent spans in the
table's key order, as compact rows (JSON arrays in ``columns`` order, forwarded as
ClickHouse wrote them); ``POST /api/evaluation/context`` answers one page's lookups
(base arms of mirrored pairs, agent traces, results already written) in one request;
``POST /api/evaluation/results`` stores a page's results, compact too. Every route is
scoped to the project of the caller's API key, and runs the same reads as ``--store``.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.alias_generators import to_pascal
from starlette.concurrency import run_in_threadpool

from canarytrace.collector.api_routes import parse_body
from canarytrace.collector.state import collector_of, project_of
from canarytrace.evaluators.base import JUDGE_ERROR
from canarytrace.store.queries import MAX_PAGE, BadQuery
from canarytrace.store.scan import COLUMN_NAMES, SpanScan, page_context

router = APIRouter()
Project = Annotated[str, Depends(project_of)]
MAX_LOOKUPS = 2 * MAX_PAGE
HEX16 = r"^[0-9a-f]{16}$"


class SpanPageQuery(BaseModel):
    """``GET /api/evaluation/spans`` parameters; times are nanoseconds since the epoch."""

    model_config = ConfigDict(extra="forbid")

    since_ns: int | None = Field(None, ge=0)
    until_ns: int | None = Field(None, ge=0)
    cursor: str | None = Field(None, description="next_cursor of the previous page")
    limit: int = Field(2000, ge=1, le=MAX_PAGE)
    count: bool = Field(False, description="also say about how many spans the window holds")


class ContextQuery(BaseModel):
    """``POST /api/evaluation/context``: what one page of spans needs looked up."""

    model_config = ConfigDict(extra="forbid")

    since_ns: int = Field(ge=0)
    until_ns: int = Field(ge=0)
    pair_ids: list[Annotated[str, Field(max_length=1000)]] = Field([], max_length=MAX_LOOKUPS)
    trace_ids: list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]] = Field(
        [], max_length=MAX_LOOKUPS)
    span_ids: list[Annotated[str, Field(pattern=HEX16)]] = Field([], max_length=MAX_LOOKUPS)
    evaluators: list[tuple[Annotated[str, Field(min_length=1, max_length=200)],
                           Annotated[str, Field(min_length=1, max_length=100)]]] = Field(
        [], max_length=100)


class ResultRow(BaseModel):
    """One compact eval result; ``span_timestamp`` is the span's start in nanoseconds."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="forbid")

    span_timestamp: int = Field(ge=0)
    trace_id: str = Field("", pattern=r"^([0-9a-f]{32})?$")
    span_id: str = Field(pattern=HEX16)
    service_name: str = ""
    evaluator: str = Field(min_length=1, max_length=200)
    evaluator_version: str = Field("1", min_length=1, max_length=100)
    score: float | None = None
    passed: bool | None = None
    label: str = Field("", max_length=200)
    reason: str = ""
    details: str = "{}"
    model: str = ""
    variant: str = ""
    role: str = ""
    pair_id: str = ""
    route: str = ""
    cohort: str = ""

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class ResultBatch(BaseModel):
    """``POST /api/evaluation/results``: rows of values in ``columns`` order."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str] = Field(min_length=1, max_length=len(ResultRow.model_fields))
    rows: list[list[Any]] = Field(max_length=MAX_LOOKUPS)


_RESULT_COLUMNS = {to_pascal(name) for name in ResultRow.model_fields}
_CONTEXT = TypeAdapter(ContextQuery)
_BATCH = TypeAdapter(ResultBatch)
_ROWS = TypeAdapter(list[ResultRow])


def _json(parts: dict[str, bytes]) -> Response:
    """A JSON object from already-encoded values (the span rows are not re-encoded)."""
    body = b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in parts.items()) + b"}"
    return Response(body, media_type="application/json")


def _rows(lines: list[bytes]) -> bytes:
    return b"[" + b",".join(lines) + b"]"


@router.get("/api/evaluation/spans")
def span_page(request: Request, project: Project,
              query: Annotated[SpanPageQuery, Query()]) -> Response:
    """One page of the window's LLM and agent spans, in the table's key order."""
    scan = SpanScan(collector_of(request).store, project)
    try:
        page = scan.page(query.since_ns, query.until_ns, query.cursor, query.limit)
    except BadQuery as exc:
        raise HTTPException(400, str(exc)) from exc
    total = scan.count(query.since_ns, query.until_ns) if query.count else None
    return _json({"columns": orjson.dumps(COLUMN_NAMES), "spans": _rows(page.lines),
                  "next_cursor": orjson.dumps(page.next_cursor), "total": orjson.dumps(total)})


@router.post("/api/evaluation/context")
async def page_lookups(request: Request, project: Project) -> Response:
    """Base arms of ``pair_ids``, spans of ``trace_ids``, and which of ``span_ids`` each
    (evaluator, version) already scored (provisional judge_errors left out)."""
    collector = collector_of(request)
    query = await parse_body(request, collector, _CONTEXT)
    if query.until_ns <= query.since_ns:
        raise HTTPException(400, "until_ns must be after since_ns")
    rows = await run_in_threadpool(
        page_context, SpanScan(collector.store, project), query.since_ns, query.until_ns,
        pair_ids=query.pair_ids, trace_ids=query.trace_ids, span_ids=query.span_ids,
        evaluators=query.evaluators, provisional=JUDGE_ERROR)
    return _json({"columns": orjson.dumps(COLUMN_NAMES), "partners": _rows(rows.partners),
                  "traces": _rows(rows.traces), "scored": orjson.dumps(rows.scored)})


@router.post("/api/evaluation/results")
async def store_results(request: Request, project: Project) -> dict[str, int]:
    """Store compact eval results (re-scoring a span replaces its earlier result)."""
    collector = collector_of(request)
    batch = await parse_body(request, collector, _BATCH)
    unknown = [c for c in batch.columns if c not in _RESULT_COLUMNS]
    if unknown or len(set(batch.columns)) != len(batch.columns):
        raise HTTPException(422, f"columns must be distinct names among "
                                 f"{sorted(_RESULT_COLUMNS)}; got {batch.columns}")
    if any(len(row) != len(batch.columns) for row in batch.rows):
        raise HTTPException(422, f"every row needs {len(batch.columns)} values")
    try:
        results = _ROWS.validate_python([dict(zip(batch.columns, row, strict=True))
                                         for row in batch.rows])
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from exc
    scored_at = time.time_ns()
    rows = [{**result.model_dump(by_alias=True), "Project": project, "Timestamp": scored_at}
            for result in results]
    count = await run_in_threadpool(collector.store.insert_eval_results, rows)
    return {"inserted": count}
