"""Rollout persistence: the ``rollouts`` and ``rollout_looks`` tables (migrations 5 and 6).

A rollout row is written once at start and again, as a newer version (``UpdatedAt``), when it
is stopped or reaches its decisive verdict; reads use FINAL, so they see the latest version.
Every look at its verdict appends one ``rollout_looks`` row. Times come back as epoch
nanoseconds (``...Ns``) and ISO-8601 text; JSON columns come back as text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from canarytrace.store.timestamps import format_ns, iso_ns

ROLLOUTS = "rollouts"
LOOKS = "rollout_looks"
_TIME_INPUT = {"date_time_input_format": "best_effort"}
_ROLLOUT_TIMES = ("CreatedAt", "StartedAt", "StoppedAt", "DecidedAt", "UpdatedAt")
_ROLLOUT_SELECT = ("RolloutId, Project, Name, BaseModel, CandidateModel, Slicings, PolicyText, "
                   "PolicySource, Family, Verdict, Decision, "
                   + ", ".join(f"toUnixTimestamp64Nano({c}) AS {c}Ns" for c in _ROLLOUT_TIMES))


def _ns_text(value: int | None) -> str | None:
    return None if value is None else format_ns(int(value))


def _insert(store: Any, table: str, rows: list[dict[str, Any]]) -> None:
    payload = b"\n".join(orjson.dumps(row) for row in rows)
    store.client.raw_insert(store.table(table), None, payload, settings=_TIME_INPUT,
                            fmt="JSONEachRow")


def write_rollout(store: Any, row: Mapping[str, Any]) -> None:
    """Write one version of a rollout. ``row`` has the columns, times as epoch nanoseconds
    (``StartedAtNs`` ...; ``StoppedAtNs``/``DecidedAtNs`` may be None); UpdatedAt is now."""
    item = {key: row[key] for key in ("RolloutId", "Project", "Name", "BaseModel",
                                      "CandidateModel", "Slicings", "PolicyText",
                                      "PolicySource", "Family")}
    item["Verdict"] = row.get("Verdict", "")
    item["Decision"] = row.get("Decision", "")
    for column in _ROLLOUT_TIMES[:-1]:
        item[column] = _ns_text(row.get(f"{column}Ns"))
    # strictly increasing versions, even for two writes in one millisecond
    updated = max(time.time_ns(), int(row.get("UpdatedAtNs") or 0) + 1_000_000)
    item["UpdatedAt"] = format_ns(updated)
    _insert(store, ROLLOUTS, [item])


def get_rollout(store: Any, project: str, rollout_id: str) -> dict[str, Any] | None:
    """The latest version of one rollout of ``project``, or None."""
    rows = store.query(
        f"SELECT {_ROLLOUT_SELECT} FROM {store.table(ROLLOUTS)} FINAL "
        "WHERE Project = {project:String} AND RolloutId = {rollout_id:String}",
        {"project": project, "rollout_id": rollout_id})
    return _shape_rollout(rows[0]) if rows else None


def list_rollouts(store: Any, project: str, name: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
    """Rollouts of ``project`` (only those called ``name`` when given), newest start first."""
    where = "Project = {project:String}"
    if name is not None:
        where += " AND Name = {name:String}"
    rows = store.query(
        f"SELECT {_ROLLOUT_SELECT} FROM {store.table(ROLLOUTS)} FINAL WHERE {where} "
        f"ORDER BY StartedAt DESC, RolloutId LIMIT {int(limit)}",
        {"project": project, "name": name or ""})
    return [_shape_rollout(row) for row in rows]


def _shape_rollout(row: dict[str, Any]) -> dict[str, Any]:
    shaped = dict(row)
    for column in _ROLLOUT_TIMES:
        ns = shaped.get(f"{column}Ns")
        shaped[column] = None if ns is None else iso_ns(ns)
    return shaped


def insert_look(store: Any, row: Mapping[str, Any]) -> None:
    """Append one look: RolloutId, Project, UntilNs, Verdict, Final, Score, Pairs, Reasons
    (a list, stored as JSON); Timestamp is now unless ``TimestampNs`` is given."""
    item = {"Timestamp": format_ns(int(row.get("TimestampNs") or time.time_ns())),
            "Project": row["Project"], "RolloutId": row["RolloutId"],
            "Until": format_ns(int(row["UntilNs"])), "Verdict": row["Verdict"],
            "Final": int(bool(row.get("Final"))), "Score": float(row.get("Score") or 0.0),
            "Pairs": int(row.get("Pairs") or 0),
            "Reasons": orjson.dumps(row.get("Reasons", [])).decode()}
    _insert(store, LOOKS, [item])


def query_looks(store: Any, project: str, rollout_id: str,
                limit: int = 1000) -> list[dict[str, Any]]:
    """The looks at one rollout, oldest first (the last ``limit``)."""
    rows = store.query(
        "SELECT * FROM (SELECT toUnixTimestamp64Nano(Timestamp) AS TimestampNs, "
        "toUnixTimestamp64Nano(Until) AS UntilNs, Verdict, Final, Score, Pairs, Reasons "
        f"FROM {store.table(LOOKS)} "
        "WHERE Project = {project:String} AND RolloutId = {rollout_id:String} "
        f"ORDER BY Timestamp DESC LIMIT {int(limit)}) ORDER BY TimestampNs",
        {"project": project, "rollout_id": rollout_id})
    return [{"Timestamp": iso_ns(r["TimestampNs"]), "Until": iso_ns(r["UntilNs"]),
             "Verdict": r["Verdict"], "Final": bool(r["Final"]), "Score": r["Score"],
             "Pairs": int(r["Pairs"]), "Reasons": orjson.loads(r["Reasons"] or "[]")}
            for r in rows]


def values_seen(store: Any, project: str, models: tuple[str, str], since_ns: int, until_ns: int,
                columns: list[str], limit: int = 200) -> list[tuple[str, ...]]:
    """Distinct combinations of ``columns`` (e.g. ["Cohort"]) on spans of ``models`` in
    [since, until), most frequent first (at most ``limit``)."""
    names = ", ".join(columns)
    rows = store.client.query(
        f"SELECT {names} FROM {store.table('otel_traces')} "
        "WHERE Project = {project:String} AND Model IN ({base:String}, {candidate:String}) "
        "AND Timestamp >= fromUnixTimestamp64Nano({since:Int64}) "
        "AND Timestamp < fromUnixTimestamp64Nano({until:Int64}) "
        f"GROUP BY {names} ORDER BY count() DESC, {names} LIMIT {int(limit)}",
        parameters={"project": project, "base": models[0], "candidate": models[1],
                    "since": since_ns, "until": until_ns}).result_rows
    return [tuple(str(v) for v in row) for row in rows]


def evaluators_seen(store: Any, project: str, models: tuple[str, str], since_ns: int,
                    until_ns: int) -> list[str]:
    """Evaluators that scored spans of ``models`` in [since, until), by name."""
    rows = store.client.query(
        f"SELECT DISTINCT Evaluator FROM {store.table('eval_results')} "
        "WHERE Project = {project:String} AND Model IN ({base:String}, {candidate:String}) "
        "AND SpanTimestamp >= fromUnixTimestamp64Nano({since:Int64}) "
        "AND SpanTimestamp < fromUnixTimestamp64Nano({until:Int64}) ORDER BY Evaluator",
        parameters={"project": project, "base": models[0], "candidate": models[1],
                    "since": since_ns, "until": until_ns}).result_rows
    return [str(row[0]) for row in rows]
