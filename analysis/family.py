"""The fixed family of a comparison: how the false-ROLLBACK budget ``alpha`` is split.

ROLLBACK fires when any critical metric regresses in any slice, so its tests form one family
whose error budget is split up front (weighted Bonferroni, applied as weighted Holm):
``alpha(metric, slice) = alpha * metric_weight(metric) * slice_weight(slice)``.

- Metrics: the critical metrics the policy names (error_rate, parser_error_rate,
  fallback_rate by default) share ``NAMED_SHARE`` equally; evaluators get the rest: those
  *known* when the family is fixed share ``1 - METRIC_RESERVE`` of it equally, evaluators
  first seen later draw from the reserve by the rank of their first appearance
  (``late_weight`` with ``LATE_FLAT_METRICS``). With none known, every evaluator is "late".
- Slices of each metric: "all" gets ``ALL_SHARE``; slice values known at the start share
  ``1 - SLICE_RESERVE`` of the rest equally; values first seen later draw from the reserve by
  rank. Without slicings "all" gets everything.
- ``late_weight(k)``: the first ``LATE_FLAT`` ranks get ``0.9 / LATE_FLAT`` each, rank
  ``k > LATE_FLAT`` gets ``0.1 / ((k - LATE_FLAT) (k - LATE_FLAT + 1))``; the weights of all
  ranks sum to 1, so the whole family never spends more than alpha, however many values turn
  up.

A rollout fixes its family when it starts (known metrics and slice values come from the week
of traffic before the start) and records the rank of every later value the first time a
look sees it, so a value's weight never changes. A plain ``compare`` has no start: nothing is
known but the policy's named critical metrics, and ranks follow first appearance in the
window (valid for a window anchored at the canary's start; a sliding window changes them).

PROMOTE needs no split: it requires *every* critical (metric, slice) to rule out harm, so a
false PROMOTE needs the one truly harmful cell to be wrong, which each cell's confidence
sequence allows with probability at most alpha (the intersection-union principle).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

ALL_SHARE = 0.1
NAMED_SHARE = 0.2
METRIC_RESERVE = 0.2
SLICE_RESERVE = 0.2
LATE_FLAT = 6
LATE_FLAT_METRICS = 2
FAMILY_VERSION = 1


def late_weight(rank: int, flat: int = LATE_FLAT) -> float:
    """Share of a reserve for the ``rank``-th (1-based) value first seen late; sums to 1."""
    if rank <= flat:
        return 0.9 / flat
    k = rank - flat
    return 0.1 / (k * (k + 1))


@dataclass(frozen=True)
class Family:
    """Known and late metrics and slices, in the order their weights were fixed."""

    known_metrics: tuple[str, ...] = ()
    """Critical metrics the policy names (built-in metrics, mostly)."""
    known_evaluators: tuple[str, ...] = ()
    late_metrics: tuple[str, ...] = ()
    """Critical metrics first seen after the family was fixed (evaluators), by rank."""
    known_slices: tuple[str, ...] = ()
    late_slices: tuple[str, ...] = ()
    sliced: bool = True
    fixed: bool = False
    """True for a rollout's family (stored), False for one derived from a single window."""
    notes: dict[str, Any] = field(default_factory=dict)

    def metric_weight(self, metric: str) -> float:
        named = NAMED_SHARE if self.known_metrics else 0.0
        if metric in self.known_metrics:
            return named / len(self.known_metrics)
        reserve = METRIC_RESERVE if self.known_evaluators else 1.0
        if metric in self.known_evaluators:
            return (1.0 - named) * (1.0 - reserve) / len(self.known_evaluators)
        if metric in self.late_metrics:
            rank = self.late_metrics.index(metric) + 1
            return (1.0 - named) * reserve * late_weight(rank, LATE_FLAT_METRICS)
        return 0.0

    def slice_weight(self, slice_name: str) -> float:
        if slice_name == "all":
            return ALL_SHARE if self.sliced else 1.0
        if not self.sliced:
            return 0.0
        share = 1.0 - ALL_SHARE
        reserve = SLICE_RESERVE if self.known_slices else 1.0
        if slice_name in self.known_slices:
            return share * (1.0 - reserve) / len(self.known_slices)
        if slice_name in self.late_slices:
            return share * reserve * late_weight(self.late_slices.index(slice_name) + 1)
        return 0.0

    def weight(self, metric: str, slice_name: str) -> float:
        """The share of alpha of one critical (metric, slice) test."""
        return self.metric_weight(metric) * self.slice_weight(slice_name)

    def extended(self, metrics: Iterable[str], slices: Iterable[str]) -> Family:
        """This family with values not seen before appended as late, in the given order."""
        seen_m = set(self.known_metrics) | set(self.known_evaluators) | set(self.late_metrics)
        seen_s = set(self.known_slices) | set(self.late_slices)
        new_m = tuple(m for m in dict.fromkeys(metrics) if m not in seen_m)
        new_s = tuple(s for s in dict.fromkeys(slices) if s not in seen_s and s != "all")
        if not new_m and not new_s:
            return self
        return replace(self, late_metrics=self.late_metrics + new_m,
                       late_slices=self.late_slices + new_s)

    def to_dict(self) -> dict[str, Any]:
        return {"version": FAMILY_VERSION,
                "rule": "graphical weighted Bonferroni over critical metric x slice",
                "all_share": ALL_SHARE if self.sliced else 1.0,
                "named_share": NAMED_SHARE if self.known_metrics else 0.0,
                "metric_reserve": METRIC_RESERVE if self.known_evaluators else 1.0,
                "slice_reserve": (SLICE_RESERVE if self.known_slices else 1.0)
                if self.sliced else 0.0,
                "late_flat": LATE_FLAT, "late_flat_metrics": LATE_FLAT_METRICS,
                "fixed": self.fixed, "sliced": self.sliced,
                "known_metrics": list(self.known_metrics),
                "known_evaluators": list(self.known_evaluators),
                "late_metrics": list(self.late_metrics),
                "known_slices": list(self.known_slices), "late_slices": list(self.late_slices),
                **({"notes": self.notes} if self.notes else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Family:
        return cls(tuple(data.get("known_metrics", ())),
                   tuple(data.get("known_evaluators", ())), tuple(data.get("late_metrics", ())),
                   tuple(data.get("known_slices", ())), tuple(data.get("late_slices", ())),
                   bool(data.get("sliced", True)), bool(data.get("fixed", False)),
                   dict(data.get("notes", {})))
