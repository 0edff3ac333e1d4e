"""Render the panels of canarytrace's built-in dashboard into a Grafana dashboard.

The panel SQL lives in dashboards/panels.yaml (with prices.yaml; packaged as
canarytrace.dashboards), so the page served by ``canarytrace serve`` and this Grafana dashboard run
the same queries. The output targets Grafana's ClickHouse data source plugin
(grafana-clickhouse-datasource), whose macros the SQL already uses.

    python dashboards/build_grafana.py                 # writes dashboards/grafana/canarytrace.json
    python dashboards/build_grafana.py --prices my-prices.yaml -o /tmp/canarytrace.json
    python dashboards/build_grafana.py --check         # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from canarytrace.dashboards.panels import Dashboard, Panel, Variable, load_dashboard

OUTPUT = Path(__file__).parent / "grafana" / "canarytrace.json"
PLUGIN_ID = "grafana-clickhouse-datasource"
PLUGIN_VERSION = "4.0.0"
"""The ClickHouse plugin version the targets are written for (``pluginVersion``: without it
the plugin treats a target as a pre-v4 query and migrates it)."""
DATASOURCE = {"type": PLUGIN_ID, "uid": "${datasource}"}
GRID_COLUMNS, PANEL_HEIGHT = 24, 8
FORMAT_TIMESERIES, FORMAT_TABLE = 0, 1
PANEL_TYPES = {"timeseries": "timeseries", "bars": "barchart", "table": "table"}
VERDICT_COLORS = {"PROMOTE": "green", "HOLD": "yellow", "ROLLBACK": "red"}


def build(prices_path: str | None = None) -> dict[str, Any]:
    """The Grafana dashboard model for the packaged panels."""
    dashboard = load_dashboard(prices_path)
    return {
        "__requires": [{"type": "datasource", "id": PLUGIN_ID, "name": "ClickHouse",
                        "version": PLUGIN_VERSION}],
        "uid": "canarytrace",
        "title": "canarytrace: canary LLM",
        "description": "Eval-fail rate per evaluator, base vs candidate, next to latency, "
                       "tokens, cost, fallbacks, mirroring and feedback.",
        "tags": ["canarytrace", "llm", "opentelemetry"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "templating": {"list": _templating(dashboard)},
        "panels": _panels(dashboard),
    }


def _templating(dashboard: Dashboard) -> list[dict[str, Any]]:
    fixed = [
        {"name": "datasource", "label": "Data source", "type": "datasource",
         "query": PLUGIN_ID, "current": {}, "hide": 0, "refresh": 1},
        {"name": "database", "label": "Database", "type": "constant", "query": "canarytrace",
         "hide": 2},
    ]
    return fixed + [_query_variable(v) for v in dashboard.variables]


def _query_variable(variable: Variable) -> dict[str, Any]:
    return {
        "name": variable.name, "label": variable.label, "type": "query",
        "datasource": DATASOURCE, "definition": variable.sql,
        "query": {"editorType": "sql", "rawSql": variable.sql},
        "multi": True, "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2, "sort": 1, "hide": 0, "options": [],
    }


def _panels(dashboard: Dashboard) -> list[dict[str, Any]]:
    out, x, y = [], 0, 0
    for number, panel in enumerate(dashboard.panels, start=1):
        width = GRID_COLUMNS if panel.width >= 2 else GRID_COLUMNS // 2
        if x + width > GRID_COLUMNS:
            x, y = 0, y + PANEL_HEIGHT
        out.append(_panel(panel, number, {"x": x, "y": y, "w": width, "h": PANEL_HEIGHT}))
        x += width
    return out


def _panel(panel: Panel, number: int, grid: dict[str, int]) -> dict[str, Any]:
    table_like = panel.kind != "timeseries"
    return {
        "id": number,
        "type": PANEL_TYPES[panel.kind],
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": _field_defaults(panel), "overrides": _overrides(panel)},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [{
            "refId": "A",
            "datasource": DATASOURCE,
            "editorType": "sql",
            "pluginVersion": PLUGIN_VERSION,
            "queryType": "table" if table_like else "timeseries",
            "format": FORMAT_TABLE if table_like else FORMAT_TIMESERIES,
            "rawSql": panel.sql,
        }],
    }


def _field_defaults(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "color": {"mode": "palette-classic"}}
    if panel.unit == "percentunit":
        defaults.update(min=0, max=1)
    if panel.kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 8,
                              "showPoints": "never", "spanNulls": True}
    if panel.axis and panel.kind != "table":
        defaults.setdefault("custom", {})["axisLabel"] = panel.axis
    return defaults


def _overrides(panel: Panel) -> list[dict[str, Any]]:
    if "Verdict" not in panel.sql:
        return []
    mappings = {verdict: {"color": color, "index": i}
                for i, (verdict, color) in enumerate(VERDICT_COLORS.items())}
    return [{"matcher": {"id": "byName", "options": "Verdict"}, "properties": [
        {"id": "mappings", "value": [{"type": "value", "options": mappings}]},
        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
    ]}]


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prices", help="prices YAML (default: the packaged prices.yaml)")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when the output file differs")
    args = parser.parse_args(argv)
    text = render(build(args.prices))
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python dashboards/build_grafana.py",
                  file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
