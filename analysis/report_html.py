"""The comparison report as one self-contained HTML file (``--format html -o report.html``).

Rendered from the JSON report dict, so a report fetched from a collector renders the same.
Plots are inline SVG written here (no scripts, fonts or CDN): a forest plot of each metric's
per-slice differences with intervals, and the two arms' latency histograms.
"""

from __future__ import annotations

import math
from html import escape
from importlib import resources
from string import Template
from typing import Any

from canarytrace.analysis.compare import format_difference, format_value
from canarytrace.analysis.report_json import arm_text, shown_interval

WIDTH = 760
ROW_HEIGHT = 22
LABEL_WIDTH = 220
VALUE_WIDTH = 190
COLORS = {"regression": "#cf222e", "improvement": "#1a7f37", "pass": "#1a7f37",
          "inconclusive": "#9a6700", "insufficient": "#8c959f", "nodata": "#8c959f"}


def render_html(report: dict[str, Any]) -> str:
    template = Template(resources.files("canarytrace.analysis").joinpath(
        "report_template.html").read_text(encoding="utf-8"))
    window = report["window"]
    score = "-" if report["score"] is None else f"{report['score']:.0f}"
    meta = (f"score {score} / 100 (pass {report['policy']['pass_threshold']:g}, marginal "
            f"{report['policy']['marginal_threshold']:g}); project {report['project']}; "
            f"window {window['since']} to {window['until']}"
            + (f". {report['guarantee']['message']}" if report.get("guarantee") else ""))
    return template.substitute(
        title=escape(f"{report['verdict']}: {report['candidate_model']} vs "
                     f"{report['base_model']}"),
        verdict=escape(report["verdict"]),
        candidate=escape(report["candidate_model"]),
        base=escape(report["base_model"]),
        meta=escape(meta),
        reasons="\n".join(f"<li>{escape(r['message'])}</li>" for r in report["reasons"])
                or "<li>no reasons given</li>",
        forest=_forest_plots(report["metrics"]),
        latency=_latency_plot(report["distributions"].get("latency_ms")),
        table=_table(report["metrics"]),
        generated=escape(report["generated_at"]),
        policy=escape(str(report["policy"]["source"])),
    )


# --- forest plots -------------------------------------------------------------------------------

def _forest_plots(metrics: list[dict[str, Any]]) -> str:
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for row in metrics:
        if row["difference"] is not None and shown_interval(row):
            by_metric.setdefault(row["metric"], []).append(row)
    if not by_metric:
        return '<p class="meta">No metric has enough data for an interval yet.</p>'
    return "\n".join(f"<h3>{escape(name)}{' (critical)' if rows[0]['critical'] else ''}</h3>"
                     + forest_svg(rows) for name, rows in by_metric.items())


def forest_svg(rows: list[dict[str, Any]]) -> str:
    """One metric: a row per slice with the difference, its interval and the threshold."""
    threshold = _signed_threshold(rows[0])
    ends = [v for row in rows for v in shown_interval(row) if v is not None]
    span = max([abs(v) for v in ends] + [abs(threshold), 1e-9]) * 1.1
    plot_width = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = ROW_HEIGHT * (len(rows) + 1)

    def x(value: float) -> float:
        return LABEL_WIDTH + (value + span) / (2 * span) * plot_width

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'role="img" aria-label="{escape(rows[0]["metric"])} differences by slice">',
             _vline(x(0), height, "#57606a", ""),
             _vline(x(threshold), height, "#cf222e", ' stroke-dasharray="4 3"')]
    for index, row in enumerate(rows):
        parts.append(_forest_row(row, index, x))
    axis_y = height - 6
    for value in (-span / 1.1, 0.0, span / 1.1):
        parts.append(f'<text x="{x(value):.1f}" y="{axis_y}" text-anchor="middle">'
                     f'{escape(format_difference(rows[0]["kind"], value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _forest_row(row: dict[str, Any], index: int, x: Any) -> str:
    y = ROW_HEIGHT * index + ROW_HEIGHT / 2 + 2
    low, high = (v if v is not None else row["difference"] for v in shown_interval(row))
    color = COLORS[row["classification"]]
    label = escape(f"{row['slice']} (n={row['n']})")
    value = escape(f"{format_difference(row['kind'], row['difference'])} "
                   f"[{format_difference(row['kind'], low)}, "
                   f"{format_difference(row['kind'], high)}]")
    return (f'<text x="{LABEL_WIDTH - 8}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
            f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="2"/>'
            f'<circle cx="{x(row["difference"]):.1f}" cy="{y:.1f}" r="4" fill="{color}">'
            f'<title>{escape(row["classification"])}</title></circle>'
            f'<text x="{WIDTH - VALUE_WIDTH + 8}" y="{y + 4:.1f}">{value}</text>')


def _signed_threshold(row: dict[str, Any]) -> float:
    """Where a regression starts, on the side of the bad direction."""
    return row["threshold"] if row["bad_direction"] == "up" else -row["threshold"]


def _vline(x: float, height: int, color: str, extra: str) -> str:
    return (f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - ROW_HEIGHT:.1f}" '
            f'stroke="{color}" stroke-width="1"{extra}/>')


# --- latency histogram --------------------------------------------------------------------------

def _latency_plot(histogram: dict[str, Any] | None) -> str:
    if not histogram:
        return '<p class="meta">No latency data.</p>'
    return ('<div class="legend"><span><i class="swatch" style="background:#57606a"></i>base'
            '</span><span><i class="swatch" style="background:#d4761b"></i>candidate</span>'
            '</div>' + latency_svg(histogram))


def latency_svg(histogram: dict[str, Any], height: int = 220) -> str:
    """Both arms' latency histograms (share of calls per bin) on a log-scaled ms axis."""
    edges = histogram["edges"]
    left, right, top, bottom = 50, WIDTH - 10, 10, height - 30
    shares = {arm: _shares(histogram[arm]) for arm in ("base", "candidate")}
    peak = max([max(v, default=0.0) for v in shares.values()] + [1e-9])
    log_low, log_high = math.log10(edges[0]), math.log10(edges[-1])

    def x(ms: float) -> float:
        return left + (math.log10(ms) - log_low) / max(log_high - log_low, 1e-9) * (right - left)

    def y(share: float) -> float:
        return bottom - share / peak * (bottom - top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             'role="img" aria-label="latency distribution of base and candidate">',
             f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#57606a"/>']
    for arm, color in (("base", "#57606a"), ("candidate", "#d4761b")):
        points = [f"{x(edges[0]):.1f},{bottom}"]
        for i, share in enumerate(shares[arm]):
            points += [f"{x(edges[i]):.1f},{y(share):.1f}", f"{x(edges[i + 1]):.1f},{y(share):.1f}"]
        points.append(f"{x(edges[-1]):.1f},{bottom}")
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{" ".join(points)}"><title>{arm}</title></polyline>')
    for tick in _log_ticks(edges[0], edges[-1]):
        parts.append(f'<text x="{x(tick):.1f}" y="{height - 12}" text-anchor="middle">'
                     f'{tick:g} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0 for _ in counts]


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0 ** exponent
            if low <= value <= high:
                ticks.append(value)
    return ticks or [low, high]


# --- table --------------------------------------------------------------------------------------

def _table(metrics: list[dict[str, Any]]) -> str:
    header = ("<tr><th>metric</th><th>slice</th><th>n</th><th>base</th><th>candidate</th>"
              "<th>change</th><th>interval (anytime for rates and scores)</th><th>p</th>"
              "<th>result</th></tr>")
    rows = [header]
    for row in metrics:
        interval = shown_interval(row) or [None, None]
        p = next((row[k] for k in ("p_adjusted", "p_anytime", "p_value") if row[k] is not None),
                 None)
        cells = [escape(row["metric"] + (" *" if row["critical"] else "")), escape(row["slice"]),
                 str(row["n"]), _value(row, "base"), _value(row, "candidate"),
                 escape(format_difference(row["kind"], row["difference"])),
                 escape(" .. ".join(format_difference(row["kind"], v) for v in interval)),
                 "-" if p is None else f"{p:.2g}"]
        rows.append("<tr>" + "".join(
            f'<td class="num">{c}</td>' if i in (2, 3, 4, 5, 7) else f"<td>{c}</td>"
            for i, c in enumerate(cells))
            + f'<td class="{row["classification"]}">{row["classification"]}</td></tr>')
    return "<table>" + "\n".join(rows) + "</table>"


def _value(row: dict[str, Any], arm: str) -> str:
    if arm == "base" and row["kind"] == "win_rate":
        return "-"
    return escape(arm_text(row, arm, format_value(row["kind"], row["metric"],
                                                  row[arm]["value"])))
