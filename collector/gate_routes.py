"""Rollout gates for Argo Rollouts and Flagger, on the caller's project.

- ``GET /api/rollouts/{ref}/verdict`` [base, candidate, by] -> 200 ``gates.gate_body``: the
  Argo Rollouts web metric. ``ref`` is a rollout id or name; with ``base`` and ``candidate``,
  the first call starts a rollout named ``ref``. 404 when none and no models are given.
- ``POST /api/flagger`` Flagger's webhook payload ``{name, namespace, phase, checksum,
  metadata}``; ``metadata.hook`` is the hook type (Flagger does not send it) and
  ``metadata.rollout`` names the rollout, or ``metadata.base``/``candidate`` name the models
  (a rollout per canary revision is started). 200 passes the hook; a verdict that fails it is
  409 with the reasons in the body. Flagger cannot send headers, so the API key may come as
  ``metadata.api_key``.

Thin adapters over ``canarytrace.analysis.gates``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from canarytrace.analysis import gates, rollouts
from canarytrace.collector.keys import Unauthorized
from canarytrace.collector.state import collector_of, project_of

router = APIRouter()
Project = Annotated[str, Depends(project_of)]
GATE_FAILED = 409
Model = Annotated[str | None, Query(min_length=1, max_length=500)]


@router.get("/api/rollouts/{ref}/verdict")
async def get_verdict(request: Request, project: Project,
                      ref: Annotated[str, Path(pattern=r"^[0-9A-Za-z_.\-]{1,200}$")],
                      base: Model = None, candidate: Model = None,
                      by: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """The rollout's verdict for an Argo Rollouts web metric (always 2xx with a verdict)."""
    store = collector_of(request).store

    def answer() -> dict[str, Any]:
        rollout, started = gates.ensure_rollout(store, project, ref, base, candidate, by)
        return gates.gate_body(gates.look(store, project, rollout), started)

    try:
        return await run_in_threadpool(answer)
    except rollouts.RolloutNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except gates.GateError as exc:
        raise HTTPException(400, str(exc)) from exc


class FlaggerPayload(BaseModel):
    """What Flagger POSTs to a webhook (``CanaryWebhookPayload``)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=253)
    namespace: str = Field(min_length=1, max_length=253)
    phase: str = Field("", max_length=100)
    checksum: str = Field("", max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=100)


def _flagger_project(request: Request, payload: FlaggerPayload) -> str:
    """The key's project: the Authorization header, else ``metadata.api_key``; 401 without."""
    header = request.headers.get("authorization")
    if not header and payload.metadata.get("api_key"):
        header = f"Bearer {payload.metadata['api_key']}"
    try:
        return collector_of(request).keys.project_for(header)
    except Unauthorized as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


def _hook(payload: FlaggerPayload) -> str:
    hook = payload.metadata.get("hook", "").strip()
    if hook not in gates.HOOKS:
        raise HTTPException(400, f"metadata.hook must be one of {', '.join(gates.HOOKS)} "
                                 f"(the webhook's type), got {hook!r}")
    return hook


def _rollout_ref(payload: FlaggerPayload) -> tuple[str, str | None, str | None]:
    meta = payload.metadata
    if meta.get("rollout"):
        return meta["rollout"], None, None
    if not meta.get("base") or not meta.get("candidate"):
        raise HTTPException(400, "metadata must name the rollout (rollout: ID or name) or the "
                                 "models (base: MODEL, candidate: MODEL)")
    name = gates.flagger_rollout_name(payload.namespace, payload.name, payload.checksum)
    return name, meta["base"], meta["candidate"]


@router.post("/api/flagger")
async def post_flagger(request: Request, payload: FlaggerPayload) -> JSONResponse:
    """A Flagger webhook: 200 passes it, 409 fails it (with the verdict's reasons)."""
    project = _flagger_project(request, payload)
    hook = _hook(payload)
    ref, base, candidate = _rollout_ref(payload)
    store = collector_of(request).store
    by = payload.metadata.get("by")

    def answer() -> tuple[int, dict[str, Any]]:
        rollout, started = gates.ensure_rollout(store, project, ref, base, candidate, by)
        if hook == gates.PRE_ROLLOUT:
            return 200, {"hook": hook, "passed": True, "started": started,
                         "rollout_id": rollout["id"], "name": rollout["name"]}
        if hook == gates.POST_ROLLOUT:
            stopped = rollouts.stop_rollout(store, project, rollout["id"])
            return 200, {"hook": hook, "passed": True, "rollout_id": stopped["id"],
                         "state": stopped["state"], "verdict": stopped["verdict"]}
        body = gates.gate_body(gates.look(store, project, rollout), started)
        passed = gates.hook_passes(hook, body["verdict"])
        body = {"detail": body["message"], "hook": hook, "passed": passed, **body}
        return (200 if passed else GATE_FAILED), body

    try:
        status, body = await run_in_threadpool(answer)
    except rollouts.RolloutNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except gates.GateError as exc:
        raise HTTPException(400, str(exc)) from exc
    return JSONResponse(body, status_code=status)
