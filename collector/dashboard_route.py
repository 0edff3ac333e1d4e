"""The built-in dashboard: the page at ``/`` and the JSON it reads under ``/api/dashboard``.

Panels run the same SQL as the Grafana dashboard (panels.yaml), expanded here with the
caller's project fixed, so an API key only ever sees its own project's data.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse

from canarytrace.collector.state import collector_of, project_of
from canarytrace.collector.trace_view import Outcome, TraceQuery, list_traces, load_trace
from canarytrace.dashboards import panels
from canarytrace.store import panel_sql
from canarytrace.store.client import Store
from canarytrace.times import parse_time

router = APIRouter()
DEFAULT_RANGE = timedelta(hours=6)
MAX_RANGE = timedelta(days=400)
MAX_POINTS = 60
STATIC_DIR = Path(str(resources.files("canarytrace.collector").joinpath("static")))
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".md": "text/markdown; charset=utf-8"}

Project = Annotated[str, Depends(project_of)]
FILTERS = ("service", "route", "cohort", "model")
"""The page's filters: the dashboard's variables other than the project."""
Filter = Annotated[list[str] | None, Query()]


def store_of(request: Request) -> Store:
    return collector_of(request).store


StoreDep = Annotated[Store, Depends(store_of)]


# --- the page ----------------------------------------------------------------------

@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return _static_file("index.html")


@router.get("/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    return _static_file(path)


def _static_file(path: str) -> FileResponse:
    root = STATIC_DIR.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, f"no such file: {path}")
    return FileResponse(target, media_type=MEDIA_TYPES.get(target.suffix),
                        headers={"Cache-Control": "no-cache"})


# --- time range --------------------------------------------------------------------

TimeText = Annotated[str | None, Query(max_length=100,
                                        description="ISO-8601, now, or back: 30m, 1h, 7d")]


def time_range(since: TimeText = None, until: TimeText = None) -> tuple[datetime, datetime]:
    """``[since, until]`` in UTC, in the CLI's time forms: until defaults to now, since to 6
    hours before until; 400 for a bad or out-of-range time."""
    now = datetime.now(UTC)
    try:
        end = _whole_second_after(parse_time(until, now) if until else now)
        start = parse_time(since, now) if since else end - DEFAULT_RANGE
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    if start >= end:
        raise HTTPException(400, f"since ({start.isoformat()}) must be before until "
                                 f"({end.isoformat()})")
    if end - start > MAX_RANGE:
        raise HTTPException(400, f"time range is longer than {MAX_RANGE.days} days")
    return start, end


def _whole_second_after(moment: datetime) -> datetime:
    """Round up: the plugin's macros cut times to whole seconds, which would drop the last one."""
    if moment.microsecond == 0:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Range = Annotated[tuple[datetime, datetime], Depends(time_range)]


# --- panels ------------------------------------------------------------------------

@router.get("/api/dashboard/config")
def config(_: Project) -> dict[str, Any]:
    """The panels and filters the page draws (no SQL)."""
    dashboard = panels.load_dashboard()
    return {
        "panels": [{"id": p.id, "title": p.title, "description": p.description, "kind": p.kind,
                    "unit": p.unit, "axis": p.axis, "width": p.width} for p in dashboard.panels],
        "variables": [{"name": v.name, "label": v.label} for v in dashboard.variables
                      if v.name != "project"],
    }


def query_context(store: Store, project: str, window: tuple[datetime, datetime],
                  selections: dict[str, list[str] | None]) -> panel_sql.QueryContext:
    """Grafana's inputs for one query: the project is always the caller's, never All."""
    since, until = window
    variables = {"project": [project], **{k: (v or None) for k, v in selections.items()}}
    return panel_sql.QueryContext(start=since, end=until,
                               interval_s=panel_sql.choose_interval(since, until, MAX_POINTS),
                               variables=variables, database=store.database)


@router.get("/api/dashboard/filters")
def filters(store: StoreDep, project: Project, window: Range) -> dict[str, Any]:
    """The values each filter can take in the range, and the models seen per variant."""
    ctx = query_context(store, project, window, dict.fromkeys(FILTERS))
    values = {}
    for variable in panels.load_dashboard().variables:
        if variable.name == "project":
            continue
        rows = store.query(panel_sql.expand(variable.sql, ctx))
        values[variable.name] = [str(next(iter(r.values()))) for r in rows]
    return {"values": values, "models": _models(store, project, window)}


MODELS_SQL = """
SELECT Model AS model, Variant AS variant, count() AS calls
FROM {table} FINAL
WHERE Project = {{project:String}} AND Model != ''
  AND Timestamp >= fromUnixTimestamp64Milli({{since:Int64}})
  AND Timestamp <= fromUnixTimestamp64Milli({{until:Int64}})
GROUP BY Model, Variant
ORDER BY calls DESC
"""


def _models(store: Store, project: str, window: tuple[datetime, datetime]) -> list[dict]:
    since, until = window
    return store.query(MODELS_SQL.format(table=store.table("otel_traces")),
                       {"project": project, "since": int(since.timestamp() * 1000),
                        "until": int(until.timestamp() * 1000)})


@router.get("/api/dashboard/panels/{panel_id}")
def panel_data(panel_id: str, store: StoreDep, project: Project, window: Range,
               service: Filter = None, route: Filter = None, cohort: Filter = None,
               model: Filter = None) -> dict[str, Any]:
    """One panel's rows for the range and filters: ``columns``, ``types`` and ``rows``."""
    try:
        panel = panels.load_dashboard().panel(panel_id)
    except KeyError as exc:
        raise HTTPException(404, f"no panel {panel_id!r}") from exc
    ctx = query_context(store, project, window,
                        {"service": service, "route": route, "cohort": cohort, "model": model})
    rows = store.query(panel_sql.expand(panel.sql, ctx))
    return {"id": panel.id, "interval_s": ctx.interval_s, "from_ms": json_value(ctx.start),
            "to_ms": json_value(ctx.end), **table_json(rows)}


def table_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows as columns + JSON-safe value lists; times become epoch milliseconds."""
    columns = list(rows[0]) if rows else []
    values = [[json_value(row[c]) for c in columns] for row in rows]
    types = [_column_type([row[c] for row in rows]) for c in columns]
    return {"columns": columns, "types": types, "rows": values}


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(_utc(value).timestamp() * 1000)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column_type(values: list[Any]) -> str:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, (datetime, date)):
        return "time"
    if isinstance(sample, (int, float)) and not isinstance(sample, bool):
        return "number"
    return "string"


# --- traces ------------------------------------------------------------------------

@router.get("/api/dashboard/traces")
def traces(store: StoreDep, project: Project, window: Range,
           service: str | None = None, route: str | None = None, model: str | None = None,
           variant: str | None = None, outcome: Outcome | None = None,
           trace_id: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F]{1,32}$")] = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """The newest traces in the range matching the filters, one summary row each."""
    since, until = window
    query = TraceQuery(since=since, until=until, service=service, route=route, model=model,
                       variant=variant, outcome=outcome, trace_id_prefix=trace_id, limit=limit)
    return {"traces": list_traces(store, project, query)}


@router.get("/api/dashboard/traces/{trace_id}")
def trace(trace_id: str, store: StoreDep, project: Project) -> dict[str, Any]:
    """One trace's span tree with messages, tool calls, eval results and feedback."""
    if len(trace_id) != 32 or any(c not in "0123456789abcdefABCDEF" for c in trace_id):
        raise HTTPException(400, f"trace id must be 32 hex digits, got {trace_id!r}")
    found = load_trace(store, project, trace_id)
    if found is None:
        raise HTTPException(404, f"no trace {trace_id} in this project")
    return found
