"""Dashboard panels: their SQL, loaded from panels.yaml, with placeholders rendered.

panels.yaml is the one source of panel SQL. Grafana's ClickHouse plugin runs it as
rendered into dashboards/grafana/canarytrace.json; the built-in page expands its macros
with :mod:`canarytrace.store.panel_sql` and runs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from clickhouse_connect.driver.binding import format_str as quote

from canarytrace import attributes as A

PANELS_FILE = "panels.yaml"
PRICES_FILE = "prices.yaml"
KINDS = ("timeseries", "bars", "table")


class PanelError(ValueError):
    """A panel definition or a query's variables are not usable."""


@dataclass(frozen=True)
class Panel:
    """One chart: ``sql`` has its placeholders rendered and its Grafana macros still in."""

    id: str
    title: str
    description: str
    kind: str
    unit: str
    width: int
    sql: str
    axis: str = ""
    """The y-axis title, naming the unit: ``latency (ms)``."""


@dataclass(frozen=True)
class Variable:
    """A dashboard filter (Grafana template variable) and the query listing its values."""

    name: str
    label: str
    sql: str


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens by model; ``default`` prices models not listed."""

    models: Mapping[str, tuple[float, float]]
    default: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Dashboard:
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]

    def panel(self, panel_id: str) -> Panel:
        for panel in self.panels:
            if panel.id == panel_id:
                return panel
        raise KeyError(panel_id)


def _package_text(name: str) -> str:
    return resources.files("canarytrace.dashboards").joinpath(name).read_text(encoding="utf-8")


def load_prices(path: str | Path | None = None) -> Prices:
    """Read a prices file (the packaged prices.yaml when ``path`` is None)."""
    raw = yaml.safe_load(Path(path).read_text() if path else _package_text(PRICES_FILE)) or {}

    def pair(entry: Mapping[str, Any]) -> tuple[float, float]:
        return float(entry.get("input", 0.0)), float(entry.get("output", 0.0))

    models = {str(name): pair(entry) for name, entry in (raw.get("models") or {}).items()}
    return Prices(models=models, default=pair(raw.get("default") or {}))


def token_cost_sql(prices: Prices) -> str:
    """SQL for one span's token cost in USD, from the InputTokens/OutputTokens/Model columns."""
    names = ", ".join(quote(name) for name in prices.models)

    def price_of(index: int) -> str:
        values = ", ".join(repr(p[index]) for p in prices.models.values())
        return f"transform(Model, [{names}], [{values}], {prices.default[index]!r})"

    if not prices.models:
        return (f"(InputTokens * {prices.default[0]!r} "
                f"+ OutputTokens * {prices.default[1]!r}) / 1000000")
    return f"(InputTokens * {price_of(0)} + OutputTokens * {price_of(1)}) / 1000000"


_PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def render_placeholders(sql: str, prices: Prices) -> str:
    """Fill ``{{A.NAME}}`` with the quoted attribute constant and ``{{token_cost}}``."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "token_cost":
            return token_cost_sql(prices)
        if name.startswith("A.") and isinstance(getattr(A, name[2:], None), str):
            return quote(getattr(A, name[2:]))
        raise PanelError(f"unknown placeholder {{{{{name}}}}}")

    return _PLACEHOLDER.sub(fill, sql)


def parse_dashboard(text: str, prices: Prices) -> Dashboard:
    """Build the dashboard from panels.yaml text, rendering placeholders with ``prices``."""
    raw = yaml.safe_load(text)
    variables = tuple(Variable(v["name"], v.get("label", v["name"]),
                               render_placeholders(v["sql"], prices))
                      for v in raw.get("variables", []))
    panels = tuple(_panel(entry, prices) for entry in raw["panels"])
    ids = [p.id for p in panels]
    if len(set(ids)) != len(ids):
        raise PanelError(f"duplicate panel ids in {ids}")
    return Dashboard(variables=variables, panels=panels)


def _panel(entry: Mapping[str, Any], prices: Prices) -> Panel:
    if entry.get("kind") not in KINDS:
        raise PanelError(f"panel {entry.get('id')!r}: kind must be one of {KINDS}")
    return Panel(id=entry["id"], title=entry["title"],
                 description=" ".join(str(entry.get("description", "")).split()),
                 kind=entry["kind"], unit=entry.get("unit", "none"),
                 width=int(entry.get("width", 1)),
                 sql=render_placeholders(entry["sql"], prices).strip(),
                 axis=str(entry.get("axis", "")))


@lru_cache(maxsize=4)
def load_dashboard(prices_path: str | None = None) -> Dashboard:
    """The packaged panels, with prices from ``prices_path`` (or the packaged prices.yaml)."""
    return parse_dashboard(_package_text(PANELS_FILE), load_prices(prices_path))
