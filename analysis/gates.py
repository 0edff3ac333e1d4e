"""Rollout gates: a rollout's verdict as Argo Rollouts and Flagger take it.

Argo Rollouts' web metric reads ``gate_body`` (2xx JSON) and applies the AnalysisTemplate's
``successCondition: result.verdict == "PROMOTE"`` / ``failureCondition: result.verdict ==
"ROLLBACK"``; HOLD meets neither (Inconclusive). Flagger's webhooks only see the HTTP status:
``hook_passes`` says, per hook type, whether the verdict passes it (HTTP 200) or fails it (a
4xx; Flagger's client retries 5xx and 429, so a verdict is never one of those):

| hook | PROMOTE | HOLD | ROLLBACK |
|---|---|---|---|
| ``rollout`` (each analysis iteration) | pass | pass | fail: halt, then roll back |
| ``confirm-promotion`` | pass: promote | fail: keep waiting | fail: keep waiting |
| ``rollback`` | fail: no rollback | fail: no rollback | pass: roll back now |

``pre-rollout`` starts the rollout (if not started) and passes; ``post-rollout`` stops it and
passes. A gate names an existing rollout by id or name, or names the two models, in which
case ``ensure_rollout`` starts the rollout on the first call: its window opens when the
canary starts taking traffic, which is what makes its verdict anytime-valid.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from canarytrace.analysis import rollouts
from canarytrace.analysis.compare import HOLD, PROMOTE, ROLLBACK

if TYPE_CHECKING:
    from canarytrace.store.client import Store

ROLLOUT_HOOK, CONFIRM_PROMOTION, ROLLBACK_HOOK = "rollout", "confirm-promotion", "rollback"
PRE_ROLLOUT, POST_ROLLOUT = "pre-rollout", "post-rollout"
VERDICT_HOOKS = {
    ROLLOUT_HOOK: frozenset({PROMOTE, HOLD}),
    CONFIRM_PROMOTION: frozenset({PROMOTE}),
    ROLLBACK_HOOK: frozenset({ROLLBACK}),
}
"""Hook type -> the verdicts that pass it."""
HOOKS = (*VERDICT_HOOKS, PRE_ROLLOUT, POST_ROLLOUT)
MAX_REASONS = 10
"""Reasons in a gate's answer: Argo keeps every measurement's value in the AnalysisRun."""
MAX_NAME = 200

_START_LOCK = threading.Lock()  # two first looks at once start one rollout, within a process


class GateError(ValueError):
    """A gate request that names no usable rollout (HTTP 400)."""


def find_rollout(store: Store, project: str, ref: str) -> dict[str, Any] | None:
    """The rollout whose id is ``ref``, else the newest one named ``ref``; None if neither."""
    try:
        return rollouts.get_rollout(store, project, ref)
    except rollouts.RolloutNotFound:
        pass
    named = rollouts.list_rollouts(store, project, name=ref, limit=1)
    return named[0] if named else None


def ensure_rollout(store: Store, project: str, ref: str, base: str | None = None,
                   candidate: str | None = None, by: str | None = None) -> tuple[dict, bool]:
    """The rollout ``ref`` names, started now as ``ref`` when there is none and both models
    are given; (rollout, started). Raises RolloutNotFound, or GateError for a bad start."""
    found = find_rollout(store, project, ref)
    if found is not None:
        return _same_models(found, base, candidate), False
    if not base or not candidate:
        raise rollouts.RolloutNotFound(
            f"no rollout {ref!r} in project {project!r} (name the base and candidate models "
            "to start one)")
    if len(ref) > MAX_NAME:
        raise GateError(f"a rollout name has at most {MAX_NAME} characters")
    with _START_LOCK:
        found = find_rollout(store, project, ref)
        if found is not None:
            return found, False
        spec = rollouts.RolloutSpec(base, candidate, by=by or "cohort", name=ref)
        try:
            return rollouts.start_rollout(store, spec, project), True
        except rollouts.RolloutError as exc:
            raise GateError(str(exc)) from exc


def _same_models(rollout: dict[str, Any], base: str | None,
                 candidate: str | None) -> dict[str, Any]:
    """``rollout``, unless the gate names other models than it compares (a stale config)."""
    for given, key in ((base, "base_model"), (candidate, "candidate_model")):
        if given and given != rollout[key]:
            raise GateError(f"rollout {rollout['name'] or rollout['id']!r} compares "
                            f"{rollout['base_model']!r} with {rollout['candidate_model']!r}, "
                            f"not {base!r} with {candidate!r}")
    return rollout


def look(store: Store, project: str, rollout: dict[str, Any]) -> dict[str, Any]:
    """A recorded look at ``rollout``'s verdict over [start, now] (final once decisive)."""
    return rollouts.rollout_status(store, project, rollout["id"])


def gate_body(status: dict[str, Any], started: bool = False) -> dict[str, Any]:
    """What a gate answers: the verdict, its evidence in brief, and which rollout it is."""
    reasons = status.get("reasons") or []
    window = status.get("window") or {}
    return {
        "verdict": status.get("verdict") or HOLD,
        "score": status.get("score"),
        "reasons": reasons[:MAX_REASONS],
        "more_reasons": max(len(reasons) - MAX_REASONS, 0),
        "pairs": status.get("pairs", 0),
        "needed_pairs": status.get("needed_pairs"),
        "since": window.get("since", status.get("started_at")),
        "until": window.get("until"),
        "final": bool(status.get("final")),
        "state": status.get("state"),
        "rollout_id": status["id"],
        "name": status.get("name", ""),
        "base_model": status.get("base_model"),
        "candidate_model": status.get("candidate_model"),
        "started": started,
        "message": summary(status),
    }


def summary(status: dict[str, Any]) -> str:
    """One line for a person reading Argo's or Flagger's events."""
    verdict = status.get("verdict") or HOLD
    head = f"canarytrace rollout {status.get('name') or status['id']}: {verdict}"
    reasons = [r.get("message", "") for r in status.get("reasons") or [] if r.get("message")]
    return f"{head}: {'; '.join(reasons[:3])}" if reasons else head


def hook_passes(hook: str, verdict: str) -> bool:
    """Whether ``verdict`` passes a Flagger hook of type ``hook`` (one of VERDICT_HOOKS)."""
    return verdict in VERDICT_HOOKS[hook]


def flagger_rollout_name(namespace: str, name: str, checksum: str) -> str:
    """The rollout a Flagger canary revision gets: a new checksum (a new revision or canary
    spec) starts a new rollout."""
    return f"flagger/{namespace}/{name}@{checksum}"[:MAX_NAME]
