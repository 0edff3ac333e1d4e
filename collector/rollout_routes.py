"""``/api/rollouts``: start, list, look at and stop rollouts of the caller's project.

- ``POST /api/rollouts`` {base_model, candidate_model, by, policy, name, started_at,
  known_slices, evaluators} -> 201 and the rollout.
- ``GET /api/rollouts`` [state, name, limit] -> {"rollouts": [...]} (no verdicts computed).
- ``GET /api/rollouts/{id}`` [report] -> the rollout with its verdict over [start, now]; the
  look is recorded; a decisive verdict is final and returned with its evidence.
- ``GET /api/rollouts/{id}/looks`` -> {"looks": [...]}, the verdict history, oldest first.
- ``POST /api/rollouts/{id}/stop`` -> the rollout, stopped (later looks judge [start, stop]).

Shapes: ``canarytrace.analysis.rollouts.to_json``. A thin adapter: the logic is in analysis.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from canarytrace.analysis import rollouts
from canarytrace.collector.compare_route import MAX_POLICY_CHARS
from canarytrace.collector.state import collector_of, project_of

router = APIRouter()
Project = Annotated[str, Depends(project_of)]
RolloutId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_.-]{1,64}$")]


class RolloutIn(BaseModel):
    """``POST /api/rollouts`` body."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(min_length=1, max_length=500)
    candidate_model: str = Field(min_length=1, max_length=500)
    by: str = Field("cohort", max_length=200, description="route, cohort, service; a+b")
    policy: str | None = Field(None, max_length=MAX_POLICY_CHARS, description="policy YAML")
    name: str = Field("", max_length=200)
    started_at: datetime | None = Field(None, description="default: now")
    known_slices: list[str] | None = Field(None, max_length=1000)
    evaluators: list[str] | None = Field(None, max_length=200)

    def spec(self) -> rollouts.RolloutSpec:
        return rollouts.RolloutSpec(
            self.base_model, self.candidate_model, self.by, self.policy, "policy parameter",
            self.name, self.started_at,
            None if self.known_slices is None else tuple(self.known_slices),
            None if self.evaluators is None else tuple(self.evaluators))


def _not_found(exc: rollouts.RolloutNotFound) -> HTTPException:
    return HTTPException(404, str(exc))


@router.post("/api/rollouts", status_code=201)
async def post_rollout(request: Request, project: Project, body: RolloutIn) -> dict[str, Any]:
    """Start a rollout: 201 and the rollout; 400 on a bad slicing or policy."""
    store = collector_of(request).store
    try:
        return await run_in_threadpool(rollouts.start_rollout, store, body.spec(), project)
    except rollouts.RolloutError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/api/rollouts")
def list_rollouts(request: Request, project: Project,
                  state: Literal["active", "stopped", "decided", "all"] = "all",
                  name: Annotated[str | None, Query(max_length=200)] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """The project's rollouts, newest start first (stored state; no verdict computed)."""
    found = rollouts.list_rollouts(collector_of(request).store, project, name, state, limit)
    return {"rollouts": found}


@router.get("/api/rollouts/{rollout_id}")
def get_rollout(request: Request, project: Project, rollout_id: RolloutId,
                report: bool = True) -> dict[str, Any]:
    """The verdict over [start, now]; final once decisive. ``report=false`` drops the full
    comparison report from the answer."""
    try:
        body = rollouts.rollout_status(collector_of(request).store, project, rollout_id)
    except rollouts.RolloutNotFound as exc:
        raise _not_found(exc) from exc
    if not report:
        body.pop("report", None)
    return body


@router.get("/api/rollouts/{rollout_id}/looks")
def get_looks(request: Request, project: Project, rollout_id: RolloutId,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
    try:
        looks = rollouts.rollout_looks(collector_of(request).store, project, rollout_id, limit)
    except rollouts.RolloutNotFound as exc:
        raise _not_found(exc) from exc
    return {"rollout_id": rollout_id, "looks": looks}


@router.post("/api/rollouts/{rollout_id}/stop")
def post_stop(request: Request, project: Project, rollout_id: RolloutId) -> dict[str, Any]:
    """Stop the rollout; a decided one keeps its verdict."""
    try:
        return rollouts.stop_rollout(collector_of(request).store, project, rollout_id)
    except rollouts.RolloutNotFound as exc:
        raise _not_found(exc) from exc
