"""The replay report: per configuration x model, accuracies and reward across trials.

For each trial the prompt-level strict accuracy is the share of answers that followed every
instruction (``instruction_adherence`` passed), the instruction-level strict accuracy the
share of scored instructions followed strictly (from the evaluator's details), the reward
the mean ``reward_score``; other evaluators give their pass rate. A row shows mean +- sample
standard deviation (ddof=1) of those per-trial values. Also: a tradeoff plot (adherence
against reward) and a per-instruction-type heatmap (matplotlib, Agg, PNG), the paired
verdict of the comparison engine, a rich table, and one self-contained HTML file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from canarytrace import attributes as A
from canarytrace.analysis.replay import Answer, ReplayResult

INSTRUCTION_ADHERENCE = "instruction_adherence"
REWARD_SCORE = "reward_score"
PROMPT_STRICT = "prompt_strict"
INSTRUCTION_STRICT = "instruction_strict"
REWARD = "reward"
TITLES = {PROMPT_STRICT: "prompt-level strict", INSTRUCTION_STRICT: "instruction-level strict",
          REWARD: "mean reward"}
VARIANTS = (A.VARIANT_BASE, A.VARIANT_CANDIDATE)


@dataclass(frozen=True)
class Stat:
    """A metric across trials: the per-trial values, their mean and sample std."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        if not self.values:
            return None
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def text(self) -> str:
        if self.mean is None:
            return "-"
        return f"{self.mean:.3f} ± {self.std:.3f}"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "trials": list(self.values)}


@dataclass(frozen=True)
class ArmSummary:
    """One configuration x model: its metrics across trials and per-instruction counts."""

    configuration: str
    variant: str
    model: str
    answers: int
    metrics: dict[str, Stat]
    instructions: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Instruction id -> (followed strictly, scored), over every trial."""

    def to_dict(self) -> dict[str, Any]:
        return {"configuration": self.configuration, "variant": self.variant,
                "model": self.model, "answers": self.answers,
                "metrics": {name: stat.to_dict() for name, stat in self.metrics.items()},
                "instructions": {k: {"followed": f, "scored": n}
                                 for k, (f, n) in self.instructions.items()}}


@dataclass(frozen=True)
class ReplayReport:
    dataset: str
    base_model: str
    candidate_model: str
    trials: int
    configurations: list[str]
    arms: list[ArmSummary]
    verdict: Mapping[str, Any] | None
    generated: int
    resumed: int

    @property
    def metric_names(self) -> list[str]:
        """Metrics present in any arm, the three headline ones first."""
        names = dict.fromkeys([PROMPT_STRICT, INSTRUCTION_STRICT, REWARD])
        for arm in self.arms:
            names.update(dict.fromkeys(arm.metrics))
        return [n for n in names if any(n in arm.metrics for arm in self.arms)]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "base_model": self.base_model,
                "candidate_model": self.candidate_model, "trials": self.trials,
                "configurations": self.configurations, "generated": self.generated,
                "resumed": self.resumed, "arms": [arm.to_dict() for arm in self.arms],
                "verdict": self.verdict}


# --- numbers ------------------------------------------------------------------------------

def _details(row: Mapping[str, Any]) -> dict[str, Any]:
    details = row.get("Details") or {}
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return {}
    return details if isinstance(details, dict) else {}


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def trial_metrics(answers: Sequence[Answer], scores: Mapping[str, Mapping[str, Any]]
                  ) -> dict[str, float | None]:
    """One trial's metrics from the eval rows of its answers (``scores[span_id][evaluator]``)."""
    by_evaluator: dict[str, list[Mapping[str, Any]]] = {}
    for answer in answers:
        for evaluator, row in scores.get(answer.span_id, {}).items():
            by_evaluator.setdefault(evaluator, []).append(row)
    adherence = by_evaluator.pop(INSTRUCTION_ADHERENCE, [])
    rewards = by_evaluator.pop(REWARD_SCORE, [])
    followed = [bool(item["strict"]) for row in adherence
                for item in _details(row).get("instructions", []) if item.get("strict") is not None]
    metrics = {
        PROMPT_STRICT: _mean([float(r["Passed"]) for r in adherence if r["Passed"] is not None]),
        INSTRUCTION_STRICT: _mean([float(f) for f in followed]),
        REWARD: _mean([float(r["Score"]) for r in rewards if r["Score"] is not None]),
    }
    for evaluator, rows in by_evaluator.items():
        verdicts = [float(r["Passed"]) for r in rows if r["Passed"] is not None]
        values = verdicts or [float(r["Score"]) for r in rows if r["Score"] is not None]
        metrics[evaluator] = _mean(values)
    return metrics


def instruction_counts(answers: Iterable[Answer], scores: Mapping[str, Mapping[str, Any]]
                       ) -> dict[str, tuple[int, int]]:
    """Instruction id -> (followed strictly, scored) over ``answers``."""
    counts: dict[str, list[int]] = {}
    for answer in answers:
        row = scores.get(answer.span_id, {}).get(INSTRUCTION_ADHERENCE)
        for item in _details(row).get("instructions", []) if row else []:
            if item.get("strict") is not None:
                tally = counts.setdefault(item["id"], [0, 0])
                tally[0] += bool(item["strict"])
                tally[1] += 1
    return {key: (f, n) for key, (f, n) in sorted(counts.items())}


def summarize(result: ReplayResult, eval_rows: Iterable[Mapping[str, Any]]) -> list[ArmSummary]:
    """Per configuration x model: metrics across trials from the stored eval results."""
    scores: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in eval_rows:
        scores.setdefault(row["SpanId"], {})[row["Evaluator"]] = row
    plan = result.plan
    arms = []
    for configuration in plan.configurations:
        for spec in plan.models:
            mine = [a for a in result.answers
                    if a.configuration == configuration.name and a.variant == spec.variant]
            per_trial = [trial_metrics([a for a in mine if a.trial == t], scores)
                         for t in range(plan.trials)]
            names = dict.fromkeys(name for metrics in per_trial for name in metrics)
            stats = {name: Stat(tuple(m[name] for m in per_trial if m.get(name) is not None))
                     for name in names}
            stats = {name: stat for name, stat in stats.items() if stat.values}
            arms.append(ArmSummary(configuration.name, spec.variant, spec.label, len(mine),
                                   stats, instruction_counts(mine, scores)))
    return arms


def build_report(result: ReplayResult, eval_rows: Iterable[Mapping[str, Any]],
                 verdict: Mapping[str, Any] | None) -> ReplayReport:
    plan = result.plan
    return ReplayReport(plan.dataset.name, plan.base.label, plan.candidate.label, plan.trials,
                        [c.name for c in plan.configurations], summarize(result, eval_rows),
                        verdict, result.generated, result.resumed)


# --- terminal -----------------------------------------------------------------------------

def summary_table(report: ReplayReport) -> Table:
    names = report.metric_names
    table = Table(title=f"replay of {report.dataset}: mean ± std over {report.trials} trial(s)")
    for column in ("configuration", "model", "variant", "answers",
                   *(TITLES.get(n, f"{n} pass rate") for n in names)):
        table.add_column(column, justify="right" if column == "answers" else "left")
    for arm in report.arms:
        table.add_row(arm.configuration, arm.model, arm.variant, str(arm.answers),
                      *(arm.metrics.get(n, Stat(())).text() for n in names))
    return table


def verdict_lines(verdict: Mapping[str, Any] | None) -> list[str]:
    if not verdict:
        return ["no verdict (the comparison did not run)"]
    score = verdict.get("score")
    lines = [f"verdict: {verdict['verdict']} (score {'-' if score is None else f'{score:.0f}'})"]
    lines += [f"  - {reason['message']}" for reason in verdict.get("reasons", [])]
    return lines


# --- plots --------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def tradeoff_png(report: ReplayReport) -> bytes | None:
    """Prompt-level strict accuracy against mean reward, one point per configuration x model
    with std error bars; None without both numbers."""
    points = [(arm, arm.metrics.get(REWARD), arm.metrics.get(PROMPT_STRICT)) for arm in report.arms]
    points = [(arm, x, y) for arm, x, y in points if x and y and x.values and y.values]
    if not points:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for variant, marker in zip(VARIANTS, ("o", "s"), strict=True):
        mine = [(arm, x, y) for arm, x, y in points if arm.variant == variant]
        if not mine:
            continue
        axes.errorbar([x.mean for _, x, _ in mine], [y.mean for _, _, y in mine],
                      xerr=[x.std for _, x, _ in mine], yerr=[y.std for _, _, y in mine],
                      fmt=marker, capsize=3, label=f"{variant}: {mine[0][0].model}")
        for arm, x, y in mine:
            axes.annotate(arm.configuration, (x.mean, y.mean), textcoords="offset points",
                          xytext=(5, 5), fontsize=8)
    axes.set_xlabel("mean reward")
    axes.set_ylabel("prompt-level strict accuracy")
    axes.set_title("adherence against reward (mean ± std over trials)")
    axes.legend(fontsize=8)
    return _png(figure)


def heatmap_png(report: ReplayReport) -> bytes | None:
    """Strict accuracy per instruction type (rows) and configuration x model (columns)."""
    ids = sorted({key for arm in report.arms for key in arm.instructions})
    if not ids:
        return None
    import numpy as np

    plt = _pyplot()
    values = np.full((len(ids), len(report.arms)), np.nan)
    for column, arm in enumerate(report.arms):
        for row, key in enumerate(ids):
            followed, scored = arm.instructions.get(key, (0, 0))
            if scored:
                values[row, column] = followed / scored
    figure, axes = plt.subplots(figsize=(2.5 + 1.2 * len(report.arms), 1.2 + 0.32 * len(ids)))
    image = axes.imshow(values, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    for (row, column), value in np.ndenumerate(values):
        if not np.isnan(value):
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7)
    axes.set_yticks(range(len(ids)), ids, fontsize=7)
    axes.set_xticks(range(len(report.arms)),
                    [f"{arm.configuration}\n{arm.variant}" for arm in report.arms], fontsize=7)
    axes.set_title("strict accuracy per instruction type")
    figure.colorbar(image, ax=axes, fraction=0.04)
    return _png(figure)


# --- HTML -------------------------------------------------------------------------------------

_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3}.PROMOTE{color:#16794c}.HOLD{color:#a66b00}.ROLLBACK{color:#b3261e}
img{max-width:100%;display:block;margin:1rem 0}"""


def _cells(values: Iterable[Any], tag: str = "td") -> str:
    return "".join(f"<{tag}>{html.escape(str(v))}</{tag}>" for v in values)


def _summary_html(report: ReplayReport) -> str:
    names = report.metric_names
    head = _cells(["configuration", "model", "variant", "answers",
                   *(TITLES.get(n, f"{n} pass rate") for n in names)], "th")
    rows = "".join(f"<tr>{_cells([arm.configuration, arm.model, arm.variant, arm.answers, *(arm.metrics.get(n, Stat(())).text() for n in names)])}</tr>"  # noqa: E501
                   for arm in report.arms)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _verdict_html(verdict: Mapping[str, Any] | None) -> str:
    if not verdict:
        return "<p>No verdict: the comparison did not run.</p>"
    reasons = "".join(f"<li>{html.escape(r['message'])}</li>" for r in verdict.get("reasons", []))
    head = _cells(["metric", "slice", "n", "base", "candidate", "difference", "interval",
                   "classification"], "th")
    rows = "".join(
        "<tr>" + _cells([m["metric"], m["slice"], m["n"], _number(m["base"]["value"]),
                         _number(m["candidate"]["value"]), _number(m["difference"]),
                         "-" if not m["difference_interval"] else
                         f"[{_number(m['difference_interval'][0])}, "
                         f"{_number(m['difference_interval'][1])}]",
                         m["classification"]]) + "</tr>"
        for m in verdict.get("metrics", []))
    score = verdict.get("score")
    return (f"<h2 class=\"{html.escape(verdict['verdict'])}\">Verdict: "
            f"{html.escape(verdict['verdict'])} (score {_number(score)})</h2>"
            f"<ul>{reasons}</ul><table><tr>{head}</tr>{rows}</table>")


def _image_html(title: str, png: bytes | None, missing: str) -> str:
    if png is None:
        return f"<h2>{html.escape(title)}</h2><p>{html.escape(missing)}</p>"
    data = base64.b64encode(png).decode("ascii")
    return (f"<h2>{html.escape(title)}</h2>"
            f"<img alt=\"{html.escape(title)}\" src=\"data:image/png;base64,{data}\">")


def render_html(report: ReplayReport, tradeoff: bytes | None, heatmap: bytes | None) -> str:
    """One self-contained page: summary table, verdict, and the two plots inline."""
    title = (f"canarytrace replay: {report.candidate_model} against {report.base_model} "
             f"on {report.dataset}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{report.trials} trial(s) x {len(report.configurations)} configuration(s); "
            f"{report.generated} answers generated in this run, {report.resumed} resumed.</p>"
            f"<h2>Accuracy and reward (mean ± std over trials)</h2>{_summary_html(report)}"
            f"{_verdict_html(report.verdict)}"
            f"{_image_html('Adherence against reward', tradeoff, 'No reward scores: pass --reward hf:PATH to plot adherence against reward.')}"  # noqa: E501
            f"{_image_html('Strict accuracy per instruction type', heatmap, 'No instruction-adherence results to plot.')}"  # noqa: E501
            "</body></html>")


def write_html(report: ReplayReport, path: Path) -> list[Path]:
    """Write the HTML report and its two PNGs next to it; returns the files written."""
    tradeoff, heatmap = tradeoff_png(report), heatmap_png(report)
    written = []
    for suffix, png in (("tradeoff", tradeoff), ("heatmap", heatmap)):
        if png is not None:
            image = path.with_name(f"{path.stem}-{suffix}.png")
            image.write_bytes(png)
            written.append(image)
    path.write_text(render_html(report, tradeoff, heatmap), encoding="utf-8")
    return [path, *written]


def write_json(report: ReplayReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8")

