"""Grafana-style expansion of panel SQL, so the built-in page runs what Grafana would.

:func:`expand` does what Grafana and the ClickHouse plugin do: ``$__conditionalAll``,
template variables (``${name:singlequote}``, ``${database}``) and the plugin's macros.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from canarytrace.store.schema import quote

NICE_INTERVALS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
                    10800, 21600, 43200, 86400)


class PanelQueryError(ValueError):
    """A panel query's macros or variables are not usable."""



@dataclass(frozen=True)
class QueryContext:
    """What Grafana would supply to a query: time range, interval and variable selections.

    ``variables`` maps a variable name to its selected values, or to None for All.
    """

    start: datetime
    end: datetime
    interval_s: int
    variables: Mapping[str, Sequence[str] | None]
    database: str = "canarytrace"


def choose_interval(start: datetime, end: datetime, max_points: int = 120) -> int:
    """The smallest nice bucket width (seconds) giving at most ``max_points`` buckets."""
    span = max((end - start).total_seconds(), 1.0)
    for step in NICE_INTERVALS_S:
        if span / step <= max_points:
            return step
    return int(math.ceil(span / max_points / 86400)) * 86400


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def expand(sql: str, ctx: QueryContext) -> str:
    """Panel SQL as the ClickHouse plugin would send it for ``ctx``.

    Variables are filled in last, so a selected value stays a quoted literal: no macro in it
    is expanded (the page passes filter values from any caller).
    """
    if not _IDENTIFIER.match(ctx.database):
        raise PanelQueryError(f"invalid database name {ctx.database!r}")
    sql = _expand_conditional_alls(sql, ctx)
    sql = _expand_macros(sql, ctx)
    return _interpolate_variables(sql, ctx)


def _macro_calls(sql: str, name: str | None = None):
    """Yield ``(start, end, name, args)`` for each ``$__name(args)`` or ``$__name``."""
    for match in re.finditer(r"\$__(\w+)", sql):
        if name and match.group(1) != name:
            continue
        end, args = match.end(), None
        if end < len(sql) and sql[end] == "(":
            args, end = _split_args(sql, end)
        yield match.start(), end, match.group(1), args


def _split_args(sql: str, open_at: int) -> tuple[list[str], int]:
    """Split the parenthesised argument list at ``open_at`` on top-level commas."""
    depth, args, current = 0, [], []
    for i in range(open_at, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(current).strip())
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    raise PanelQueryError(f"unbalanced parentheses in macro at {sql[open_at:open_at + 40]!r}")


def _replace_calls(sql: str, name: str | None, render) -> str:
    out, last = [], 0
    for start, end, macro, args in _macro_calls(sql, name):
        out.append(sql[last:start])
        out.append(render(macro, args))
        last = end
    out.append(sql[last:])
    return "".join(out)


def _expand_conditional_alls(sql: str, ctx: QueryContext) -> str:
    def render(_: str, args: list[str] | None) -> str:
        if not args or len(args) != 2 or not args[1].startswith("$"):
            raise PanelQueryError("$__conditionalAll takes (condition, $variable)")
        name = args[1].lstrip("$").strip("{}")
        if name not in ctx.variables:
            raise PanelQueryError(f"unknown variable ${name}")
        return "1=1" if ctx.variables[name] is None else args[0]

    return _replace_calls(sql, "conditionalAll", render)


_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)")


def _interpolate_variables(sql: str, ctx: QueryContext) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2)
        if name == "database":
            return ctx.database
        if name not in ctx.variables:
            raise PanelQueryError(f"unknown variable ${name}")
        values = ctx.variables[name]
        if values is None or fmt != "singlequote":
            raise PanelQueryError(f"variable ${name} must be used as ${{{name}:singlequote}} "
                             "inside $__conditionalAll")
        if not values:
            raise PanelQueryError(f"variable ${name} has no value selected")
        return ",".join(quote(v) for v in values)

    return _VARIABLE.sub(fill, sql)


def _expand_macros(sql: str, ctx: QueryContext) -> str:
    def render(name: str, args: list[str] | None) -> str:
        macro = _MACROS.get(name)
        if macro is None:
            raise PanelQueryError(f"unknown macro $__{name}")
        return macro(ctx, args or [])

    return _replace_calls(sql, None, render)


def _seconds(t: datetime) -> int:
    return int(_utc(t).timestamp())


def _millis(t: datetime) -> int:
    return int(_utc(t).timestamp() * 1000)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _one_column(name: str, args: list[str]) -> str:
    if len(args) != 1:
        raise PanelQueryError(f"$__{name} takes one column, got {len(args)} arguments")
    return args[0]


def _time_filter(ctx: QueryContext, args: list[str]) -> str:
    col = _one_column("timeFilter", args)
    return (f"{col} >= toDateTime({_seconds(ctx.start)}) "
            f"AND {col} <= toDateTime({_seconds(ctx.end)})")


def _time_filter_ms(ctx: QueryContext, args: list[str]) -> str:
    col = _one_column("timeFilter_ms", args)
    return (f"{col} >= fromUnixTimestamp64Milli({_millis(ctx.start)}) "
            f"AND {col} <= fromUnixTimestamp64Milli({_millis(ctx.end)})")


def _date_filter(ctx: QueryContext, args: list[str]) -> str:
    col = _one_column("dateFilter", args)
    return (f"{col} >= toDate('{_utc(ctx.start):%Y-%m-%d}') "
            f"AND {col} <= toDate('{_utc(ctx.end):%Y-%m-%d}')")


def _time_interval(ctx: QueryContext, args: list[str]) -> str:
    col = _one_column("timeInterval", args)
    return f"toStartOfInterval(toDateTime({col}), INTERVAL {max(ctx.interval_s, 1)} second)"


def _time_interval_ms(ctx: QueryContext, args: list[str]) -> str:
    col = _one_column("timeInterval_ms", args)
    millis = max(ctx.interval_s * 1000, 1)
    return f"toStartOfInterval(toDateTime64({col}, 3), INTERVAL {millis} millisecond)"


_MACROS = {
    "timeFilter": _time_filter,
    "timeFilter_ms": _time_filter_ms,
    "dateFilter": _date_filter,
    "fromTime": lambda ctx, _: f"toDateTime({_seconds(ctx.start)})",
    "toTime": lambda ctx, _: f"toDateTime({_seconds(ctx.end)})",
    "fromTime_ms": lambda ctx, _: f"fromUnixTimestamp64Milli({_millis(ctx.start)})",
    "toTime_ms": lambda ctx, _: f"fromUnixTimestamp64Milli({_millis(ctx.end)})",
    "timeInterval": _time_interval,
    "timeInterval_ms": _time_interval_ms,
    "interval_s": lambda ctx, _: str(max(ctx.interval_s, 1)),
}
