"""``GET /api/compare``: the canary comparison of the caller's project, computed in the collector.

A thin adapter over ``canarytrace.analysis``: the same parameters as ``canarytrace compare``
(``base``, ``candidate``, ``since``, ``until``, ``by``, and optionally ``policy``: the text of
a policy YAML file), the same JSON report (``analysis/compare_report.schema.json``). It does
not record the verdict; the CLI does that through ``POST /api/verdicts``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from canarytrace.analysis.policy import PolicyError, default_policy, parse_policy
from canarytrace.analysis.service import ComparisonRequest, run_comparison
from canarytrace.analysis.window import parse_slicings, parse_window, window_kind
from canarytrace.collector.state import collector_of, project_of

router = APIRouter()
MAX_POLICY_CHARS = 64 * 1024


@router.get("/api/compare")
def get_compare(
    request: Request,
    project: Annotated[str, Depends(project_of)],
    base: Annotated[str, Query(min_length=1, max_length=500, description="base model")],
    candidate: Annotated[str, Query(min_length=1, max_length=500)],
    since: Annotated[str, Query(max_length=100, description="ISO-8601 or 30m, 1h, 7d")] = "24h",
    until: Annotated[str, Query(max_length=100)] = "now",
    by: Annotated[str, Query(max_length=200, description="route, cohort, service; a+b")] = "cohort",
    policy: Annotated[str | None, Query(max_length=MAX_POLICY_CHARS,
                                        description="policy YAML text")] = None,
) -> dict[str, Any]:
    """PROMOTE/HOLD/ROLLBACK with per metric x slice results; 400 on bad parameters."""
    if base == candidate:
        raise HTTPException(400, "base and candidate name the same model")
    try:
        start, end = parse_window(since, until)
        comparison = ComparisonRequest(base, candidate, start, end, parse_slicings(by),
                                       window_kind(since))
        rules = parse_policy(policy, source="policy parameter") if policy else default_policy()
    except (ValueError, PolicyError) as exc:
        raise HTTPException(400, str(exc)) from exc
    return run_comparison(collector_of(request).store, comparison, rules, project=project,
                          record=False)
