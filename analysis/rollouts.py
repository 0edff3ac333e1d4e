"""Rollouts: a canary with a start, a policy and a fixed family, whose verdict is final once
decisive.

``start_rollout`` records the models, the start time, the policy text (the built-in default's
text when none is given, so a later default cannot change a running rollout), the slicings
and the fixed family (``family.Family``: the metrics and slice values seen in the week before
the start). ``rollout_status`` gives the verdict over [start, now] (or [start, stop]) and
appends the look to the history; the first PROMOTE or ROLLBACK is stored with its report and
every later look returns it unchanged (``final``). The statistics are anytime-valid, so
looking as often as one likes keeps both error bounds (see ``compare``).

Used by ``canarytrace rollout --store`` and the collector's ``/api/rollouts`` routes.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from canarytrace.analysis.compare import HOLD, PROMOTE, ROLLBACK
from canarytrace.analysis.family import Family
from canarytrace.analysis.inputs import SLICE_COLUMNS
from canarytrace.analysis.policy import Policy, PolicyError, parse_policy
from canarytrace.analysis.service import ComparisonRequest, run_comparison
from canarytrace.analysis.window import parse_slicings
from canarytrace.store import rollouts as rows
from canarytrace.store.timestamps import to_ns

if TYPE_CHECKING:
    from canarytrace.store.client import Store

ACTIVE, STOPPED, DECIDED = "active", "stopped", "decided"
DECISIVE = (PROMOTE, ROLLBACK)
LOOKBACK = timedelta(days=7)
"""Traffic this long before the start names the family's known metrics and slice values."""
_DEFAULT_SOURCE = "built-in default"
_LOCK = threading.Lock()  # one look at a time decides, within a process


class RolloutError(ValueError):
    """A rollout request that cannot be accepted (bad models, slicing or policy)."""


class RolloutNotFound(LookupError):
    """No rollout with that id in the project."""


@dataclass(frozen=True)
class RolloutSpec:
    """What ``rollout start`` / ``POST /api/rollouts`` asks for."""

    base: str
    candidate: str
    by: str = "cohort"
    policy_text: str | None = None
    policy_source: str = "policy"
    name: str = ""
    started_at: datetime | None = None
    known_slices: tuple[str, ...] | None = None
    """Slice names like ``cohort=pro`` to fix up front; None: those seen before the start."""
    evaluators: tuple[str, ...] | None = None
    """Evaluators to fix up front; None: those seen before the start."""
    extra: dict[str, Any] = field(default_factory=dict)


def default_policy_text() -> str:
    return resources.files("canarytrace.analysis").joinpath("default_policy.yaml").read_text(
        encoding="utf-8")


def start_rollout(store: Store, spec: RolloutSpec, project: str = "default",
                  now: datetime | None = None) -> dict[str, Any]:
    """Validate ``spec``, fix its family and record it; the new rollout (see ``to_json``)."""
    now = now or datetime.now(UTC)
    if spec.base == spec.candidate:
        raise RolloutError("base and candidate name the same model")
    try:
        slicings = parse_slicings(spec.by)
    except ValueError as exc:
        raise RolloutError(str(exc)) from exc
    text = spec.policy_text if spec.policy_text is not None else default_policy_text()
    source = spec.policy_source if spec.policy_text is not None else _DEFAULT_SOURCE
    try:
        policy = parse_policy(text, source=source)
    except PolicyError as exc:
        raise RolloutError(str(exc)) from exc
    started = _utc(spec.started_at or now)
    if started > now + timedelta(minutes=5):
        raise RolloutError(f"the start {started.isoformat()} is in the future")
    family = initial_family(store, project, spec, slicings, policy, started)
    row = {"RolloutId": uuid.uuid4().hex[:16], "Project": project, "Name": spec.name,
           "BaseModel": spec.base, "CandidateModel": spec.candidate,
           "Slicings": json.dumps([list(s) for s in slicings]), "PolicyText": text,
           "PolicySource": source, "Family": json.dumps(family.to_dict()),
           "CreatedAtNs": to_ns(now), "StartedAtNs": to_ns(started), "StoppedAtNs": None,
           "DecidedAtNs": None, "Verdict": "", "Decision": ""}
    rows.write_rollout(store, row)
    return to_json(_reread(store, project, row["RolloutId"]))


def initial_family(store: Store, project: str, spec: RolloutSpec,
                   slicings: tuple[tuple[str, ...], ...], policy: Policy,
                   started: datetime) -> Family:
    """The family fixed at the start: the policy's critical metrics plus the evaluators, and
    the slice values, given in ``spec`` or seen in the week before ``started``."""
    models = (spec.base, spec.candidate)
    since_ns, until_ns = to_ns(started - LOOKBACK), to_ns(started)
    evaluators = spec.evaluators
    if evaluators is None:
        evaluators = tuple(rows.evaluators_seen(store, project, models, since_ns, until_ns))
    named = [name for name in policy.metrics
             if policy.for_metric(name).critical and policy.for_metric(name).enabled]
    critical_evaluators = [e for e in evaluators if e not in named
                           and policy.for_metric(e, "pass_rate").critical
                           and policy.for_metric(e, "pass_rate").enabled]
    slices = spec.known_slices
    if slices is None:
        from canarytrace.analysis.compare import slice_name

        found = []
        for slicing in slicings:
            columns = [SLICE_COLUMNS[d] for d in slicing]
            for values in rows.values_seen(store, project, models, since_ns, until_ns, columns):
                found.append(slice_name(dict(zip(slicing, values, strict=True))))
        slices = tuple(found)
    return Family(known_metrics=tuple(named),
                  known_evaluators=tuple(dict.fromkeys(critical_evaluators)),
                  known_slices=tuple(dict.fromkeys(slices)), sliced=bool(slicings), fixed=True,
                  notes={"known_from": "spec" if spec.known_slices is not None
                         else f"traffic in the {LOOKBACK.days} days before the start"})


def rollout_status(store: Store, project: str, rollout_id: str, now: datetime | None = None,
                   record: bool = True) -> dict[str, Any]:
    """The rollout's verdict over [start, now] (or [start, stop]); final once decisive."""
    with _LOCK:
        stored = _reread(store, project, rollout_id)
        if stored["Verdict"] in DECISIVE:
            return to_json(stored, json.loads(stored["Decision"]))
        until = _until(stored, now or datetime.now(UTC))
        policy = parse_policy(stored["PolicyText"], source=stored["PolicySource"])
        family = Family.from_dict(json.loads(stored["Family"]))
        request = ComparisonRequest(stored["BaseModel"], stored["CandidateModel"],
                                    _time(stored["StartedAtNs"]), until,
                                    tuple(tuple(s) for s in json.loads(stored["Slicings"])))
        report = run_comparison(store, request, policy, project=project, record=False,
                                family=family)
        report["rollout_id"] = rollout_id
        grown = Family.from_dict(report.get("family", family.to_dict()))
        decided = report["verdict"] in DECISIVE
        if record:
            if decided or grown != family:
                updated = {**stored, "Family": json.dumps(grown.to_dict())}
                if decided:
                    updated.update(Verdict=report["verdict"], DecidedAtNs=to_ns(until),
                                   Decision=json.dumps(report))
                rows.write_rollout(store, updated)
                stored = _reread(store, project, rollout_id)
            rows.insert_look(store, {"Project": project, "RolloutId": rollout_id,
                                     "UntilNs": to_ns(until), "Verdict": report["verdict"],
                                     "Final": decided, "Score": report["score"],
                                     "Pairs": pairs_of(report), "Reasons": report["reasons"]})
        return to_json(stored, report, decided=decided, until=until)


def stop_rollout(store: Store, project: str, rollout_id: str,
                 now: datetime | None = None) -> dict[str, Any]:
    """Stop looking: later looks judge [start, stop]. A decided rollout keeps its verdict."""
    with _LOCK:
        stored = _reread(store, project, rollout_id)
        if stored["StoppedAtNs"] is None:
            rows.write_rollout(store, {**stored, "StoppedAtNs": to_ns(_utc(now or datetime.now(
                UTC)))})
            stored = _reread(store, project, rollout_id)
    return to_json(stored)


def list_rollouts(store: Store, project: str, name: str | None = None,
                  state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The project's rollouts, newest start first, without computing verdicts."""
    found = [to_json(row) for row in rows.list_rollouts(store, project, name, limit)]
    return [r for r in found if state in (None, "all") or r["state"] == state]


def rollout_looks(store: Store, project: str, rollout_id: str,
                  limit: int = 1000) -> list[dict[str, Any]]:
    """The verdict history of one rollout, oldest first."""
    _reread(store, project, rollout_id)
    return [{"at": look["Timestamp"], "until": look["Until"], "verdict": look["Verdict"],
             "final": look["Final"], "score": look["Score"], "pairs": look["Pairs"],
             "reasons": look["Reasons"]}
            for look in rows.query_looks(store, project, rollout_id, limit)]


def get_rollout(store: Store, project: str, rollout_id: str) -> dict[str, Any]:
    """The stored rollout (no verdict computed): ``to_json`` without a report."""
    return to_json(_reread(store, project, rollout_id))


# --- shapes ------------------------------------------------------------------------------------

def to_json(stored: dict[str, Any], report: dict[str, Any] | None = None,
            decided: bool | None = None, until: datetime | None = None) -> dict[str, Any]:
    """A rollout as the API returns it; with ``report``, its verdict and that report."""
    slicings = json.loads(stored["Slicings"])
    final = stored["Verdict"] in DECISIVE
    state = DECIDED if final else (STOPPED if stored["StoppedAtNs"] is not None else ACTIVE)
    body: dict[str, Any] = {
        "id": stored["RolloutId"], "name": stored["Name"], "project": stored["Project"],
        "base_model": stored["BaseModel"], "candidate_model": stored["CandidateModel"],
        "by": ",".join("+".join(s) for s in slicings) or "none", "slicings": slicings,
        "created_at": stored["CreatedAt"], "started_at": stored["StartedAt"],
        "stopped_at": stored["StoppedAt"], "decided_at": stored["DecidedAt"],
        "state": state, "final": final,
        "verdict": stored["Verdict"] or None,
        "policy": {"source": stored["PolicySource"], "text": stored["PolicyText"]},
        "family": json.loads(stored["Family"]),
    }
    if report is not None:
        body.update(verdict=report["verdict"], exit_code=report["exit_code"],
                    score=report["score"], pairs=pairs_of(report), reasons=report["reasons"],
                    window=report["window"], needed_pairs=report["needed_pairs"],
                    report=report)
        if decided is not None and decided and not final:  # decided by this very look
            body.update(final=True, state=DECIDED)
    return body


def pairs_of(report: dict[str, Any]) -> int:
    """Requests judged so far: the largest n of a critical metric in the "all" slice."""
    counts = [m["n"] for m in report["metrics"] if m["slice"] == "all" and m["critical"]]
    return max(counts or [m["n"] for m in report["metrics"] if m["slice"] == "all"] or [0])


def exit_code_of(body: dict[str, Any]) -> int:
    return {PROMOTE: 0, HOLD: 10, ROLLBACK: 11}[body.get("verdict") or HOLD]


# --- helpers -----------------------------------------------------------------------------------

def _reread(store: Store, project: str, rollout_id: str) -> dict[str, Any]:
    stored = rows.get_rollout(store, project, rollout_id)
    if stored is None:
        raise RolloutNotFound(f"no rollout {rollout_id!r} in project {project!r}")
    return stored


def _until(stored: dict[str, Any], now: datetime) -> datetime:
    until = _utc(now)
    if stored["StoppedAtNs"] is not None:
        until = min(until, _time(stored["StoppedAtNs"]))
    return max(until, _time(stored["StartedAtNs"]) + timedelta(milliseconds=1))


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
