"""The page's canary views: the canaries seen in the spans, one mirrored pair side by side,
and the pairs where one arm passed an evaluator and the other failed it.

``GET /api/dashboard/canaries``, ``GET /api/pairs/{pair_id}``, ``GET /api/disagreements``;
every route is scoped to the caller's project and takes the CLI's time forms.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from canarytrace.collector.dashboard_route import Range, StoreDep
from canarytrace.collector.pair_view import (
    BadSlice,
    DisagreementQuery,
    evaluators_seen,
    list_canaries,
    list_disagreements,
    load_pair,
)
from canarytrace.collector.state import project_of
from canarytrace.times import parse_time

router = APIRouter()
Project = Annotated[str, Depends(project_of)]
Model = Annotated[str, Query(min_length=1, max_length=500)]


@router.get("/api/dashboard/canaries")
def canaries(store: StoreDep, project: Project, window: Range) -> dict[str, Any]:
    """Base -> candidate model pairs seen in the range, with how many mirrored pairs each, and
    the evaluators with pass/fail results (the metrics that have disagreements to list)."""
    since, until = window
    return {"canaries": list_canaries(store, project, since, until),
            "evaluators": evaluators_seen(store, project, since, until)}


@router.get("/api/pairs/{pair_id}")
def pair(store: StoreDep, project: Project,
         pair_id: Annotated[str, Path(min_length=1, max_length=200)]) -> dict[str, Any]:
    """One mirrored pair: the input once, both arms' answers, a word diff, each arm's eval
    results, parser errors, latency and tokens; 404 when the project has no such pair."""
    found = load_pair(store, project, pair_id)
    if found is None:
        raise HTTPException(404, f"no pair {pair_id!r} in this project")
    return found


@router.get("/api/disagreements")
def disagreements(
    store: StoreDep, project: Project, base: Model, candidate: Model,
    evaluator: Annotated[str, Query(min_length=1, max_length=200)],
    slice: Annotated[str, Query(max_length=500, description="all, route=billing, "
                                                            "route=billing/cohort=pro")] = "all",
    since: Annotated[str, Query(max_length=100, description="ISO-8601 or 30m, 1h, 7d")] = "24h",
    until: Annotated[str, Query(max_length=100)] = "now",
    failed: Literal["candidate", "base"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Pairs that ``evaluator`` scored on both arms where one passed and the other failed,
    within ``slice``; the counts each way, then the pairs (candidate failures first)."""
    if base == candidate:
        raise HTTPException(400, "base and candidate name the same model")
    now = datetime.now(UTC)
    try:
        start, end = parse_time(since, now), parse_time(until, now)
        if start >= end:
            raise ValueError(f"since ({start.isoformat()}) must be before until "
                             f"({end.isoformat()})")
        query = DisagreementQuery(base, candidate, evaluator, start, end, slice, failed, limit)
        return list_disagreements(store, project, query) | {
            "window": {"since": start.isoformat(), "until": end.isoformat()}}
    except (ValueError, BadSlice) as exc:
        raise HTTPException(400, str(exc)) from exc
