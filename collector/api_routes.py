"""The typed query API other commands use while ``serve`` owns the store; no raw SQL.

Every route is scoped to the project of the caller's API key. Reads:
``GET /api/spans``, ``GET /api/traces/{trace_id}``, ``GET /api/eval_results``,
``GET /api/feedback``, ``GET /api/verdicts``. Writes: ``POST /api/eval_results``,
``POST /v1/feedback``, ``POST /api/verdicts``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.alias_generators import to_pascal
from starlette.concurrency import run_in_threadpool

from canarytrace.collector import otlp
from canarytrace.collector.ingest_routes import read_body
from canarytrace.collector.state import Collector, collector_of, project_of
from canarytrace.store.queries import (
    BadQuery,
    EvalFilter,
    Page,
    PageRequest,
    SpanFilter,
)
from canarytrace.store.timestamps import to_ns

router = APIRouter()
HEX32 = r"^[0-9a-f]{32}$"
HEX16 = r"^[0-9a-f]{16}$"
Project = Annotated[str, Depends(project_of)]


class SpanQuery(SpanFilter, PageRequest):
    """``GET /api/spans`` parameters: the span filter plus paging."""


class EvalQuery(EvalFilter, PageRequest):
    """``GET /api/eval_results`` parameters: the eval filter plus paging."""


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC)


def _storable_time(value: datetime | None) -> datetime | None:
    """A time the tables can hold (DateTime64: 1970-01-01 .. 2262-04-11 UTC)."""
    if value is None:
        return value
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not _EARLIEST <= moment < _LATEST:
        raise ValueError("must be between 1970-01-01 and 2262-04-11 (UTC)")
    return value


class EvalResultIn(BaseModel):
    """One evaluator verdict on one span; snake_case or the column names (PascalCase)."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="forbid")

    span_id: str = Field(pattern=HEX16)
    evaluator: str = Field(min_length=1, max_length=200)
    evaluator_version: str = Field("1", min_length=1, max_length=100)
    score: float | None = None
    passed: bool | None = None
    label: str = Field("", max_length=200)
    reason: str = ""
    details: dict[str, Any] | list[Any] | str | None = None
    timestamp: datetime | None = Field(None, description="when it was scored (default: now)")
    span_timestamp: datetime | None = Field(None, description="default: copied from the span")
    trace_id: str | None = Field(None, pattern=HEX32)
    service_name: str | None = None
    model: str | None = None
    variant: str | None = None
    role: str | None = None
    pair_id: str | None = None
    route: str | None = None
    cohort: str | None = None

    @field_validator("score")
    @classmethod
    def _score_is_finite(cls, value: float | None) -> float | None:
        return _finite(value)

    @field_validator("timestamp", "span_timestamp")
    @classmethod
    def _time_is_storable(cls, value: datetime | None) -> datetime | None:
        return _storable_time(value)

    def row(self, project: str) -> dict[str, Any]:
        row = self.model_dump(by_alias=True, exclude_none=True)
        for column in ("Timestamp", "SpanTimestamp"):
            if column in row:
                row[column] = to_ns(row[column])
        return {**row, "Project": project}


class FeedbackIn(BaseModel):
    """A user's thumbs up (+1), thumbs down (-1) or any score, on a trace or one span."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(pattern=HEX32)
    span_id: str = Field("", pattern=r"^([0-9a-f]{16})?$")
    score: float
    comment: str = Field("", max_length=10_000)
    source: str = Field("api", max_length=100)
    feedback_id: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("score")
    @classmethod
    def _score_is_finite(cls, value: float) -> float | None:
        return _finite(value)


class VerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str
    candidate_model: str
    verdict: Literal["PROMOTE", "HOLD", "ROLLBACK"]
    score: float
    window: str = ""
    reasons: list[Any] | dict[str, Any] = Field(default_factory=list)
    report: dict[str, Any] = Field(default_factory=dict)

    @field_validator("score")
    @classmethod
    def _score_is_finite(cls, value: float) -> float | None:
        return _finite(value)


_EVAL_LIST = TypeAdapter(list[EvalResultIn])
_FEEDBACK = TypeAdapter(FeedbackIn)
_VERDICT = TypeAdapter(VerdictIn)


async def parse_body(request: Request, collector: Collector, adapter: TypeAdapter[Any]) -> Any:
    """Validate a JSON body under the size limit; 413 or 422 with the exact problem."""
    try:
        body = await read_body(request, collector.settings.max_body_bytes)
    except otlp.BadRequest as exc:
        raise HTTPException(exc.status, exc.message) from exc
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False, include_context=False),
                            parse_constant=lambda _: None)  # an echoed NaN input becomes null
        raise HTTPException(422, errors) from exc


def _columns(model: BaseModel, **extra: Any) -> dict[str, Any]:
    """A body's fields as a table row (``base_model`` -> column ``BaseModel``), plus ``extra``."""
    return {**{to_pascal(k): v for k, v in model.model_dump().items()}, **extra}


def _paged(read: Callable[..., Page], project: str, query: BaseModel,
           filter_type: type[BaseModel], key: str) -> dict[str, Any]:
    """Split a query into its filter and page, read one page: ``{key: rows, next_cursor}``."""
    filters = filter_type(**query.model_dump(include=set(filter_type.model_fields)))
    page = PageRequest(**query.model_dump(include=set(PageRequest.model_fields)))
    try:
        result = read(project, filters, page)
    except BadQuery as exc:
        raise HTTPException(400, str(exc)) from exc
    return {key: result.rows, "next_cursor": result.next_cursor}


@router.get("/api/spans")
def list_spans(request: Request, project: Project,
               query: Annotated[SpanQuery, Query()]) -> dict[str, Any]:
    """Spans of your project, filtered, oldest first (``order=desc`` for newest first)."""
    return _paged(collector_of(request).store.query_spans, project, query, SpanFilter, "spans")


@router.get("/api/traces/{trace_id}")
def get_trace(request: Request, project: Project,
              trace_id: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{32}$")]) -> dict[str, Any]:
    """All spans of one trace of your project; 404 when it has none."""
    spans = collector_of(request).store.get_trace(project, trace_id.lower())
    if not spans:
        raise HTTPException(404, f"trace {trace_id} not found")
    return {"trace_id": trace_id.lower(), "spans": spans}


@router.get("/api/eval_results")
def list_eval_results(request: Request, project: Project,
                      query: Annotated[EvalQuery, Query()]) -> dict[str, Any]:
    return _paged(collector_of(request).store.query_eval_results, project, query, EvalFilter,
                  "eval_results")


@router.post("/api/eval_results")
async def post_eval_results(request: Request, project: Project) -> dict[str, Any]:
    """Store a JSON list of eval results (re-scoring a span replaces its earlier result)."""
    collector = collector_of(request)
    results = await parse_body(request, collector, _EVAL_LIST)
    rows = [result.row(project) for result in results]
    count = await run_in_threadpool(collector.store.insert_eval_results, rows)
    return {"inserted": count}


@router.post("/v1/feedback")
async def post_feedback(request: Request, project: Project) -> dict[str, Any]:
    collector = collector_of(request)
    feedback = await parse_body(request, collector, _FEEDBACK)
    row = _columns(feedback, Project=project,
                   FeedbackId=feedback.feedback_id or uuid.uuid4().hex)
    await run_in_threadpool(collector.store.insert_feedback, [row])
    return {"feedback_id": row["FeedbackId"]}


@router.get("/api/feedback")
def list_feedback(request: Request, project: Project,
                  trace_id: Annotated[str | None, Query(pattern=HEX32)] = None,
                  limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
    return {"feedback": collector_of(request).store.query_feedback(project, trace_id, limit)}


@router.post("/api/verdicts")
async def post_verdict(request: Request, project: Project) -> dict[str, Any]:
    collector = collector_of(request)
    verdict = await parse_body(request, collector, _VERDICT)
    await run_in_threadpool(collector.store.insert_verdict, _columns(verdict, Project=project))
    return {"inserted": 1}


@router.get("/api/verdicts")
def list_verdicts(request: Request, project: Project,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"verdicts": collector_of(request).store.query_verdicts(project, limit)}
