"""The comparison report as a rich terminal table (``--format table``), from the JSON dict."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from canarytrace.analysis.compare import format_difference, format_value
from canarytrace.analysis.console import fit
from canarytrace.analysis.report_json import arm_text, shown_interval

VERDICT_STYLES = {"PROMOTE": "bold green", "HOLD": "bold yellow", "ROLLBACK": "bold red"}
CLASS_STYLES = {"regression": "bold red", "improvement": "green", "pass": "green",
                "inconclusive": "yellow", "insufficient": "dim", "nodata": "dim"}


WIDE = 125
"""Narrower consoles get the table without the interval and p columns."""


def render_table(report: dict[str, Any], console: Console) -> None:
    """The verdict panel and the metrics table; piped (not a terminal), both at full width:
    every column, no cell cut (see :func:`canarytrace.analysis.console.fit`)."""
    terminal = console.is_terminal
    title = _title(report)
    header = _header(report, title, expand=terminal)
    table = _metrics_table(report, wide=console.width >= WIDE or not terminal)
    fit(console, header, table, min_width=title.cell_len + 6)
    console.print(header)
    console.print(table)


def _title(report: dict[str, Any]) -> Text:
    verdict = report["verdict"]
    score = "-" if report["score"] is None else f"{report['score']:.0f}"
    return Text.assemble((verdict, VERDICT_STYLES[verdict]),
                         f"  score {score}  ({report['candidate_model']} vs "
                         f"{report['base_model']}, project {report['project']})")


def _header(report: dict[str, Any], title: Text, expand: bool = True) -> Panel:
    window = report["window"]
    lines = [Text(f"window {window['since']} .. {window['until']}; policy "
                  f"{report['policy']['source']}", style="dim")]
    guarantee = report.get("guarantee")
    if guarantee:
        lines.append(Text(guarantee["message"], style="dim" if guarantee["anytime"]
                          else "yellow"))
    lines += [Text(f"- {reason['message']}") for reason in report["reasons"]]
    return Panel(Group(*lines), title=title, title_align="left", box=box.ROUNDED,
                 expand=expand)


def _metrics_table(report: dict[str, Any], wide: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    columns = [("metric", "left"), ("slice", "left"), ("n", "right"), ("base", "right"),
               ("candidate" if wide else "cand", "right"),
               ("change (anytime CI)" if wide else "change", "right")]
    columns += [("p", "right")] if wide else []
    for column, justify in [*columns, ("result", "left")]:
        table.add_column(column, justify=justify, no_wrap=True)
    previous = None
    for row in report["metrics"]:
        name = row["metric"] + (" *" if row["critical"] else "")
        cells = [name if row["metric"] != previous else "", row["slice"], str(row["n"]),
                 _value(row, "base"), _value(row, "candidate"), _change(row, wide)]
        cells += [_p(row)] if wide else []
        table.add_row(*cells, Text(row["classification"],
                                   style=CLASS_STYLES[row["classification"]]))
        previous = row["metric"]
    table.caption = ("* critical. Rates in %, changes in points; on paired metrics the rates "
                     "are over the same n pairs as the change (an arm's own n is shown when "
                     "it differs). Latency and tokens: median or p99; the change is the "
                     "Hodges-Lehmann shift (or the p99 ratio), not the change of medians."
                     + (" CI: the confidence sequence the verdict uses (valid at every look) "
                        "for rates, scores and win rates, fixed-horizon for distributions. p: "
                        "always-valid, adjusted over the fixed family; Mann-Whitney for "
                        "distributions." if wide else ""))
    return table


def _value(row: dict[str, Any], arm: str) -> str:
    if arm == "base" and row["kind"] == "win_rate":
        return "-"
    return arm_text(row, arm, format_value(row["kind"], row["metric"], row[arm]["value"]))


def _change(row: dict[str, Any], wide: bool) -> str:
    if row["difference"] is None:
        return "-"
    change = format_difference(row["kind"], row["difference"])
    interval = shown_interval(row)
    if not interval or not wide:
        return change
    low, high = (format_difference(row["kind"], v) for v in interval)
    return f"{change} ({low} .. {high})"


def _p(row: dict[str, Any]) -> str:
    p = row["p_adjusted"] if row["p_adjusted"] is not None else row["p_anytime"]
    if p is None:
        p = row["p_value"]
    return "-" if p is None else f"{p:.2g}"
