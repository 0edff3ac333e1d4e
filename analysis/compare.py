"""The comparison engine: per-request samples -> per metric x slice results -> a verdict.

Each metric is measured in every slice ("all", then each value of each ``--by`` slicing),
tested, corrected for multiplicity over a fixed family and classified; the verdict follows:

- ROLLBACK when a critical metric regresses in any slice (its always-valid p-value clears its
  share of alpha in the fixed family, ``family.Family``, combined by a graphical weighted
  Bonferroni procedure, and the change is at least ``min_effect``), or when the Kayenta-style
  score (100 x weighted share of judged metrics with no regression in any slice) falls below
  the marginal threshold;
- PROMOTE when the score reaches the pass threshold and every critical metric is *settled*
  in "all" and in every slice that has reached ``min_samples``: the time-uniform upper bound
  of its harm (a confidence sequence, see ``statistics``) is below ``min_effect``. Slices with
  fewer pairs wait or are listed as unjudged (``unjudged_slices``);
- HOLD otherwise, with what is missing (e.g. how many more pairs).

Both directions are anytime-valid for rates, scores and win rates, so a pipeline may look
as often as it likes at a window with a fixed start (see the README's statistics section for
the conditions). Regression tests: paired pass rates use the Beta-mixture test on discordant
pairs (clustered pairs a betting test on cluster means), unpaired rates and scores a mixture
SPRT, the pairwise win rate the Beta-mixture test on wins vs losses. Latency and token
distributions are judged Kayenta-style and fixed-horizon: the interval of the relative shift
must clear the tolerance, at a level Bonferroni-corrected over the metric's slices.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import stats as sps

from canarytrace.analysis import statistics as st
from canarytrace.analysis.family import Family
from canarytrace.analysis.inputs import (
    ERROR_RATE,
    FALLBACK_RATE,
    LATENCY_P50,
    MEAN,
    PARSER_ERROR_RATE,
    QUANTILE,
    RATE,
    SHIFT,
    WIN_RATE,
    ComparisonInputs,
    MetricSamples,
)
from canarytrace.analysis.policy import UP, WAIT, MetricPolicy, Policy

PROMOTE, HOLD, ROLLBACK = "PROMOTE", "HOLD", "ROLLBACK"
EXIT_CODES = {PROMOTE: 0, HOLD: 10, ROLLBACK: 11}

REGRESSION, IMPROVEMENT, PASS = "regression", "improvement", "pass"
INCONCLUSIVE, INSUFFICIENT, NODATA = "inconclusive", "insufficient", "nodata"
_UNJUDGED = (INSUFFICIENT, NODATA)
_P_TESTED = (RATE, MEAN, WIN_RATE)


EB, EB_TWO_ARMS, NORMAL, NORMAL_TWO_ARMS = "eb", "eb_two_arms", "normal", "normal_two_arms"
RARE_EVENT_RATES = frozenset({ERROR_RATE, PARSER_ERROR_RATE, FALLBACK_RATE})
"""Rates expected near zero: their harm bound also uses the share of pairs that went the
bad way (fixed by name in advance, so the choice spends no extra alpha)."""
EB_NAME = "empirical-Bernstein confidence sequence (Waudby-Smith & Ramdas 2024)"
NORMAL_NAME = "asymptotic normal-mixture confidence sequence (Waudby-Smith et al. 2024)"


@dataclass(frozen=True)
class HarmSequence:
    """A cell's observations in arrival order, from which its time-uniform harm bounds come.

    ``EB``: harm = ``scale`` x mean(values) + ``offset`` with values in [0, 1];
    ``EB_TWO_ARMS`` / ``NORMAL_TWO_ARMS``: harm = mean(values) - mean(other), two independent
    arms (each bounded at half the level); ``NORMAL``: harm = mean(values), unbounded.
    """

    kind: str
    values: np.ndarray
    other: np.ndarray | None = None
    scale: float = 1.0
    offset: float = 0.0
    worse_only: np.ndarray | None = None
    """For a rare-event rate (errors): 1 where the pair went the bad way. Harm is at most
    the share of such pairs, which is bounded too, each bound at half the level."""

    def upper(self, alpha: float) -> float:
        """Time-uniform upper bound of the harm, valid with probability 1 - alpha."""
        if self.worse_only is not None:
            plain = replace(self, worse_only=None).upper(alpha / 2)
            return min(plain, st.eb_upper_bound(self.worse_only, alpha / 2))
        if self.kind == EB:
            bound = (st.eb_upper_bound(self.values, alpha) if self.scale > 0
                     else st.eb_lower_bound(self.values, alpha))
            return self.scale * bound + self.offset
        if self.kind == NORMAL:
            return st.normal_mixture_upper_bound(self.values, alpha)
        if self.kind == EB_TWO_ARMS:
            return (st.eb_upper_bound(self.values, alpha / 2)
                    - st.eb_lower_bound(self.other, alpha / 2))
        return (st.normal_mixture_upper_bound(self.values, alpha / 2)
                - st.normal_mixture_lower_bound(self.other, alpha / 2))

    def lower(self, alpha: float) -> float:
        """Time-uniform lower bound of the harm."""
        if self.kind == EB:
            flipped = replace(self, scale=-self.scale, offset=-self.offset, worse_only=None)
            return -flipped.upper(alpha)
        if self.kind == NORMAL:
            return st.normal_mixture_lower_bound(self.values, alpha)
        return -HarmSequence(self.kind, self.other, self.values).upper(alpha)


@dataclass(frozen=True)
class Slice:
    name: str
    dims: dict[str, str]


ALL = Slice("all", {})


@dataclass(frozen=True)
class Arm:
    """One arm's value in a slice: a rate, mean, median or quantile, with its interval."""

    n: int
    value: float | None = None
    interval: tuple[float, float] | None = None


@dataclass
class MetricResult:
    """One metric in one slice. ``difference`` is candidate - base (relative for SHIFT and
    QUANTILE, win rate - 1/2 for WIN_RATE); ``n`` counts pairs, or the smaller arm."""

    metric: str
    kind: str
    slice: Slice
    policy: MetricPolicy
    mode: str
    n: int
    base: Arm
    candidate: Arm
    difference: float | None = None
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    p_anytime: float | None = None
    p_adjusted: float | None = None
    testable: bool = False
    evaluator: bool = False
    classification: str = NODATA
    settled: bool = False
    needed: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    first_seen: float | None = None
    """Start time (epoch s) of the slice's earliest request with this metric."""
    alpha: float | None = None
    """This cell's share of alpha in the ROLLBACK family (None: not in the family)."""
    sequence: HarmSequence | None = None
    harm_upper: float | None = None
    """Time-uniform upper bound of the harm at the policy's alpha (PROMOTE needs it below
    the threshold)."""
    anytime_interval: tuple[float, float] | None = None
    """Confidence sequence of the difference: the harm side at alpha (what PROMOTE needs),
    the other side at the cell's ``alpha`` (what a ROLLBACK needs)."""

    @property
    def relative(self) -> bool:
        return self.kind in (SHIFT, QUANTILE)

    def harm(self) -> tuple[float, float, float] | None:
        """(estimate, low, high) of the difference oriented so that positive is worse."""
        if self.difference is None or self.interval is None:
            return None
        low, high = self.interval
        if self.policy.bad == UP:
            return self.difference, low, high
        return -self.difference, -high, -low

    @property
    def threshold(self) -> float:
        """The smallest harm that matters: ``tolerance`` for distributions, else min_effect."""
        return self.policy.tolerance if self.relative else self.policy.min_effect


@dataclass(frozen=True)
class Reason:
    kind: str
    message: str
    metric: str | None = None
    slice: str | None = None


@dataclass
class ComparisonReport:
    inputs: ComparisonInputs
    policy: Policy
    verdict: str
    score: float | None
    reasons: list[Reason]
    results: list[MetricResult]
    needed_pairs: int | None
    distributions: dict[str, Any]
    generated_at: datetime
    family: Family = field(default_factory=Family)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def compare(inputs: ComparisonInputs, policy: Policy,
            family: Family | None = None) -> ComparisonReport:
    """Measure, test, correct and classify every metric x slice, then decide.

    ``family`` is a rollout's fixed family; without one, it is derived from this window
    (the policy's named critical metrics known, the rest ranked by first appearance).
    """
    samples = [m for m in inputs.metrics if _policy_of(policy, m).enabled]
    slice_cache: dict[tuple[int, ...], Any] = {}
    results = [result for metric in samples for result in
               _measure_slices(metric, _policy_of(policy, metric), inputs, policy, slice_cache)]
    family = _grown_family(family or window_family(policy, inputs), results)
    _adjust(results, policy.alpha, family)
    for result in results:
        _anytime_bounds(result, policy.alpha)
        _classify(result, policy.alpha)
    verdict, score, reasons, needed = _decide(results, policy)
    return ComparisonReport(inputs, policy, verdict, score, reasons, results, needed,
                            _distributions(samples), datetime.now(UTC), family)


def window_family(policy: Policy, inputs: ComparisonInputs) -> Family:
    """The family of a comparison with no rollout: the policy's named critical metrics are
    known; evaluators and slice values are ranked by their first appearance in the window."""
    named = tuple(name for name in policy.metrics
                  if policy.for_metric(name).critical and policy.for_metric(name).enabled)
    return Family(known_metrics=named, sliced=bool(inputs.query.slicings))


def _grown_family(family: Family, results: list[MetricResult]) -> Family:
    """``family`` with the critical metrics and slice values of ``results`` it has not seen
    yet appended, in order of first appearance (then name)."""
    first: dict[tuple[str, str], float] = {}
    for result in results:
        if result.policy.critical and result.first_seen is not None:
            for key in (("m", result.metric), ("s", result.slice.name)):
                first[key] = min(first.get(key, math.inf), result.first_seen)
    ordered = sorted(first, key=lambda key: (first[key], key[1]))
    return family.extended([name for kind, name in ordered if kind == "m"],
                           [name for kind, name in ordered if kind == "s"])


def _policy_of(policy: Policy, metric: MetricSamples) -> MetricPolicy:
    return policy.for_metric(metric.name, metric.evaluator_kind)


# --- slicing ------------------------------------------------------------------------------------

def slices_of(metric: MetricSamples, slicings: tuple[tuple[str, ...], ...]
              ) -> list[tuple[Slice, np.ndarray | None]]:
    """("all", None) then, per slicing, each value combination present with its rows."""
    found: list[tuple[Slice, np.ndarray | None]] = [(ALL, None)]
    for slicing in slicings:
        dims = [metric.dims[d] for d in slicing]
        if not dims or dims[0].codes.size == 0:
            continue
        key = np.zeros(dims[0].codes.size, dtype=np.int64)
        for dim in dims:  # one integer per value combination
            key = key * len(dim.labels) + dim.codes
        combos, inverse = np.unique(key, return_inverse=True)
        found_here = []
        for index, combo in enumerate(combos):
            codes = _unravel(int(combo), [len(d.labels) for d in dims])
            values = {name: d.labels[code] for name, d, code in zip(slicing, dims, codes,
                                                                     strict=True)}
            found_here.append((Slice(slice_name(values), values),
                               np.flatnonzero(inverse == index)))
        found += sorted(found_here, key=lambda item: list(item[0].dims.values()))
    return found


def _unravel(key: int, sizes: list[int]) -> list[int]:
    codes = []
    for size in reversed(sizes):
        key, code = divmod(key, size)
        codes.append(code)
    return codes[::-1]


def slice_name(values: dict[str, str]) -> str:
    """``cohort=gold``, ``route=billing/cohort=gold``; an empty value shows as ``(none)``."""
    return "/".join(f"{dim}={value or '(none)'}" for dim, value in values.items())


@dataclass(frozen=True)
class SliceValues:
    """One metric's per-request values within one slice (NaN where an arm is absent)."""

    name: str
    base: np.ndarray
    candidate: np.ndarray
    paired: np.ndarray
    time: np.ndarray
    cluster: np.ndarray | None = None

    def clusters_of(self, rows: np.ndarray) -> np.ndarray | None:
        return None if self.cluster is None else self.cluster[rows]

    def in_time_order(self, mask: np.ndarray) -> np.ndarray:
        """Indices of the rows in ``mask``, oldest request first (the sequences' order)."""
        rows = np.flatnonzero(mask)
        times = self.time[rows]
        if times.size < 2 or bool(np.all(times[1:] >= times[:-1])):  # the SQL sorts by time
            return rows
        return rows[np.argsort(times, kind="stable")]


def _measure_slices(metric: MetricSamples, policy: MetricPolicy, inputs: ComparisonInputs,
                    settings: Policy, slice_cache: dict[tuple[int, ...], Any]
                    ) -> list[MetricResult]:
    key = tuple(id(metric.dims[d]) for slicing in inputs.query.slicings for d in slicing)
    if key not in slice_cache:  # metrics read from the same rows share their slices
        slice_cache[key] = slices_of(metric, inputs.query.slicings)
    slices = slice_cache[key]
    paired_mode = bool(metric.paired.any())
    alpha = settings.alpha / len(slices) if metric.kind in (SHIFT, QUANTILE) else settings.alpha
    results = []
    for slice_, rows in slices:
        values = SliceValues(metric.name, metric.base, metric.candidate, metric.paired,
                             metric.time, metric.cluster)
        if rows is not None:
            values = SliceValues(metric.name, metric.base[rows], metric.candidate[rows],
                                 metric.paired[rows], metric.time[rows],
                                 None if metric.cluster is None else metric.cluster[rows])
        seed = [settings.seed, zlib.crc32(f"{metric.name}|{slice_.name}".encode())]
        result = _MEASURES[metric.kind](values, slice_, policy, paired_mode, alpha, settings,
                                        seed)
        result.evaluator = metric.evaluator_kind is not None
        times = metric.time if rows is None else metric.time[rows]
        result.first_seen = float(times.min()) if times.size else None
        results.append(result)
    return results


def _values(metric: SliceValues | MetricSamples) -> tuple[np.ndarray, np.ndarray]:
    return metric.base[~np.isnan(metric.base)], metric.candidate[~np.isnan(metric.candidate)]


def _measure_rate(metric: SliceValues, slice_: Slice, policy: MetricPolicy, paired_mode: bool,
                  alpha: float, settings: Policy, seed: list[int]) -> MetricResult:
    base, candidate = _values(metric)
    if paired_mode:  # the arms' rates over the same pairs as the difference
        base, candidate = metric.base[metric.paired], metric.candidate[metric.paired]
    intervals = st.wilson_intervals([float(base.sum()), float(candidate.sum())],
                                    [base.size, candidate.size], alpha)
    arms = [Arm(v.size, float(v.mean()), interval) if v.size else Arm(0)
            for v, interval in zip((base, candidate), intervals, strict=True)]
    result = MetricResult(metric.name, RATE, slice_, policy, "paired" if paired_mode else
                          "unpaired", 0, *arms)
    if paired_mode:
        _paired_rate(result, metric, alpha, settings, seed)
    elif base.size and candidate.size:
        _unpaired_rate(result, metric, alpha)
    return result


def _paired_rate(result: MetricResult, metric: SliceValues, alpha: float, settings: Policy,
                 seed: list[int]) -> None:
    base = metric.base[metric.paired] > 0.5
    candidate = metric.candidate[metric.paired] > 0.5
    counts = (int(np.sum(base & candidate)), int(np.sum(base & ~candidate)),
              int(np.sum(~base & candidate)), int(np.sum(~base & ~candidate)))
    both, base_only, candidate_only, _ = counts
    n = sum(counts)
    result.n = n
    if n == 0:
        return
    bad, good = ((candidate_only, base_only) if result.policy.bad == UP
                 else (base_only, candidate_only))
    result.difference = (candidate_only - base_only) / n
    order = metric.in_time_order(metric.paired)
    change = metric.candidate[order] - metric.base[order]
    harm = change if result.policy.bad == UP else -change
    result.sequence = HarmSequence(EB, (harm + 1) / 2, scale=2.0, offset=-1.0,
                                   worse_only=(harm > 0).astype(float)
                                   if metric.name in RARE_EVENT_RATES else None)
    clustered = st.cluster_means(harm, metric.clusters_of(order))
    if n >= result.policy.min_samples:  # a slice too small to judge needs no interval
        result.interval = st.paired_binary_bootstrap_interval(
            counts, alpha, settings.bootstrap_resamples, seed)
    result.p_value = st.mcnemar_exact_p(base_only, candidate_only)
    result.p_anytime = st.discordant_anytime_p(bad, good)
    result.testable = bad + good > 0
    result.details = {"base_rate": (both + base_only) / n,
                      "candidate_rate": (both + candidate_only) / n,
                      "discordant_worse": bad, "discordant_better": good,
                      "unpaired_left_out": int(np.sum(~metric.paired & (
                          ~np.isnan(metric.base) | ~np.isnan(metric.candidate)))),
                      "test": "Beta-mixture sequential test on discordant pairs",
                      "fixed_horizon_test": "exact McNemar",
                      "fixed_horizon_interval": "paired bootstrap (percentile)",
                      "anytime_interval": EB_NAME}
    if clustered is not None:
        _clustered_rate(result, clustered, alpha, settings, seed)


def _clustered_rate(result: MetricResult, clustered: tuple[np.ndarray, np.ndarray],
                    alpha: float, settings: Policy, seed: list[int]) -> None:
    """Pairs in clusters (a replay prompt's trials and sweep values): each cluster's mean
    harm is one independent observation, for the test, both intervals and the sequence."""
    harm, sizes = clustered
    direction = 1.0 if result.policy.bad == UP else -1.0
    result.sequence = HarmSequence(EB, (harm + 1) / 2, scale=2.0, offset=-1.0)
    result.p_anytime = st.betting_anytime_p(harm)
    result.p_value = (float(sps.ttest_1samp(harm, 0.0).pvalue) if harm.size > 1
                      and harm.std() > 0 else None)
    if result.interval is not None:
        low, high = st.paired_bootstrap_interval(direction * harm, alpha,
                                                 settings.bootstrap_resamples, seed)
        result.interval = (low, high)
    result.testable = bool(np.any(harm != 0))
    result.details.update(clusters=int(harm.size), largest_cluster=int(sizes.max()),
                          test="betting test on cluster means (Waudby-Smith & Ramdas 2024)",
                          fixed_horizon_test="t-test on cluster means",
                          fixed_horizon_interval="cluster bootstrap (percentile)")


def _unpaired_rate(result: MetricResult, metric: SliceValues, alpha: float) -> None:
    base, candidate = _values(metric)
    arms = [metric.base[metric.in_time_order(~np.isnan(metric.base))],
            metric.candidate[metric.in_time_order(~np.isnan(metric.candidate))]]
    worse, other = arms[::-1] if result.policy.bad == UP else arms
    result.sequence = HarmSequence(EB_TWO_ARMS, worse, other)
    base_hits, candidate_hits = int(base.sum()), int(candidate.sum())
    result.n = int(min(base.size, candidate.size))
    result.difference = candidate.mean() - base.mean()
    result.interval = st.newcombe_difference_interval(base_hits, base.size, candidate_hits,
                                                      candidate.size, alpha)
    # the variance uses (x+1)/(n+2) so that a rate of exactly 0 or 1 is not taken as certain
    variance = sum(p * (1 - p) / size for p, size in (
        ((base_hits + 1) / (base.size + 2), base.size),
        ((candidate_hits + 1) / (candidate.size + 2), candidate.size)))
    result.p_anytime = st.msprt_anytime_p(result.difference, variance,
                                          _mixing_sds(result.policy, 1.0))
    result.testable = True
    result.details = {"test": "mixture SPRT on the difference of rates",
                      "interval": "Newcombe hybrid score (Wilson)",
                      "anytime_interval": EB_NAME + ", each arm at half the level"}


def _mixing_sds(policy: MetricPolicy, scale: float) -> list[float]:
    """Effect sizes the sequential test looks for: from min_effect up to ``scale``."""
    smallest = max(policy.min_effect, 1e-3 * scale)
    return st.mixing_grid(smallest, max(scale, smallest))


def _measure_mean(metric: SliceValues, slice_: Slice, policy: MetricPolicy, paired_mode: bool,
                  alpha: float, settings: Policy, seed: list[int]) -> MetricResult:
    base, candidate = _values(metric)
    if paired_mode:  # the arms' means over the same pairs as the difference
        base, candidate = metric.base[metric.paired], metric.candidate[metric.paired]
    arms = [Arm(v.size, float(v.mean()) if v.size else None, _mean_interval(v, alpha))
            for v in (base, candidate)]
    result = MetricResult(metric.name, MEAN, slice_, policy,
                          "paired" if paired_mode else "unpaired", 0, *arms)
    if paired_mode:
        order = metric.in_time_order(metric.paired)
        _paired_mean(result, metric.candidate[order] - metric.base[order], alpha, settings,
                     seed, metric.clusters_of(order))
    elif base.size >= 2 and candidate.size >= 2:
        _unpaired_mean(result, base, candidate, alpha)
        arms_in_order = [metric.base[metric.in_time_order(~np.isnan(metric.base))],
                         metric.candidate[metric.in_time_order(~np.isnan(metric.candidate))]]
        worse, other = arms_in_order[::-1] if policy.bad == UP else arms_in_order
        result.sequence = HarmSequence(NORMAL_TWO_ARMS, worse, other)
    return result


def _paired_mean(result: MetricResult, differences: np.ndarray, alpha: float,
                 settings: Policy, seed: list[int], clusters: np.ndarray | None = None) -> None:
    if differences.size < 2:
        return
    result.n = differences.size
    result.difference = float(differences.mean())
    result.interval = st.paired_bootstrap_interval(differences, alpha,
                                                   settings.bootstrap_resamples, seed)
    spread = float(differences.std(ddof=1))
    result.p_value = float(sps.ttest_1samp(differences, 0.0).pvalue)
    result.p_anytime = st.msprt_anytime_p(result.difference, spread ** 2 / differences.size,
                                          _mixing_sds(result.policy, 2 * spread))
    result.testable = True
    harm = differences if result.policy.bad == UP else -differences
    result.sequence = HarmSequence(NORMAL, harm)
    result.details = {"test": "mixture SPRT on the mean paired difference",
                      "interval": "paired bootstrap (percentile)",
                      "anytime_interval": NORMAL_NAME}
    clustered = st.cluster_means(differences, clusters)
    if clustered is not None and clustered[0].size >= 2:
        means = clustered[0]
        result.interval = st.paired_bootstrap_interval(means, alpha,
                                                       settings.bootstrap_resamples, seed)
        spread = float(means.std(ddof=1))
        result.p_value = (float(sps.ttest_1samp(means, 0.0).pvalue) if spread > 0 else None)
        result.p_anytime = st.msprt_anytime_p(float(means.mean()), spread ** 2 / means.size,
                                              _mixing_sds(result.policy, 2 * spread))
        result.sequence = HarmSequence(NORMAL, means if result.policy.bad == UP else -means)
        result.details.update(clusters=int(means.size), largest_cluster=int(clustered[1].max()),
                              test="mixture SPRT on cluster means",
                              interval="cluster bootstrap (percentile)")


def _unpaired_mean(result: MetricResult, base: np.ndarray, candidate: np.ndarray,
                   alpha: float) -> None:
    result.n = int(min(base.size, candidate.size))
    result.difference = float(candidate.mean() - base.mean())
    variance = base.var(ddof=1) / base.size + candidate.var(ddof=1) / candidate.size
    half = _z(alpha) * math.sqrt(variance)
    result.interval = (result.difference - half, result.difference + half)
    spread = float(np.concatenate([base, candidate]).std(ddof=1))
    result.p_value = float(sps.ttest_ind(candidate, base, equal_var=False).pvalue)
    result.p_anytime = st.msprt_anytime_p(result.difference, variance,
                                          _mixing_sds(result.policy, 2 * spread))
    result.testable = True
    result.details = {"test": "mixture SPRT on the difference of means",
                      "interval": "normal (Welch)",
                      "anytime_interval": NORMAL_NAME + ", each arm at half the level"}


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha / 2)


def _mean_interval(values: np.ndarray, alpha: float) -> tuple[float, float] | None:
    if values.size < 2:
        return None
    half = _z(alpha) * values.std(ddof=1) / math.sqrt(values.size)
    return (float(values.mean() - half), float(values.mean() + half))


def _sample(values: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return values if values.size <= size else rng.choice(values, size, replace=False)


def _measure_shift(metric: SliceValues, slice_: Slice, policy: MetricPolicy,
                   paired_mode: bool, alpha: float, settings: Policy,
                   seed: list[int]) -> MetricResult:
    """Kayenta's Mann-Whitney classifier: the Hodges-Lehmann shift, relative to the base
    median, and its interval (on at most ``distribution_sample`` values per arm)."""
    base, candidate = _values(metric)
    rng = np.random.default_rng(seed)
    samples = [_sample(v, settings.distribution_sample, rng) for v in (base, candidate)]
    arms = [Arm(v.size, *_quantile(s, 0.5, alpha)) for v, s in zip((base, candidate), samples,
                                                                   strict=True)]
    result = MetricResult(metric.name, SHIFT, slice_, policy, "distribution",
                          int(min(base.size, candidate.size)), *arms)
    if not (base.size and candidate.size) or not arms[0].value:
        return result
    shift = st.mann_whitney_shift(samples[0], samples[1], alpha)
    reference = float(np.median(base))
    result.difference = shift.shift / reference
    result.interval = (shift.shift_interval[0] / reference, shift.shift_interval[1] / reference)
    result.p_value = shift.p_value
    result.details = {"test": "Mann-Whitney U", "shift": shift.shift,
                      "shift_interval": list(shift.shift_interval),
                      "interval_level": 1 - alpha}
    return result


def _quantile(values: np.ndarray, q: float, alpha: float
              ) -> tuple[float | None, tuple[float, float] | None]:
    if values.size == 0:
        return None, None
    return st.quantile_interval(values, q, alpha)


def _measure_quantile(metric: SliceValues, slice_: Slice, policy: MetricPolicy,
                      paired_mode: bool, alpha: float, settings: Policy,
                      seed: list[int]) -> MetricResult:
    """The 99th percentile of each arm; the relative change's interval combines the two
    arms' distribution-free intervals (each at alpha/2), so it is conservative."""
    base, candidate = _values(metric)
    arms = [Arm(v.size, *_quantile(v, 0.99, alpha / 2)) for v in (base, candidate)]
    result = MetricResult(metric.name, QUANTILE, slice_, policy, "distribution",
                          int(min(base.size, candidate.size)), *arms)
    if not (base.size and candidate.size) or not arms[0].value or not arms[0].interval[0]:
        return result
    (base_low, base_high), (candidate_low, candidate_high) = arms[0].interval, arms[1].interval
    result.difference = arms[1].value / arms[0].value - 1
    result.interval = (candidate_low / base_high - 1, candidate_high / base_low - 1)
    result.details = {"quantile": 0.99, "interval_level": 1 - alpha}
    return result


def _measure_win_rate(metric: SliceValues, slice_: Slice, policy: MetricPolicy,
                      paired_mode: bool, alpha: float, settings: Policy,
                      seed: list[int]) -> MetricResult:
    outcomes = metric.candidate[metric.in_time_order(~np.isnan(metric.candidate))]
    wins, losses = int(np.sum(outcomes == 1.0)), int(np.sum(outcomes == 0.0))
    ties = outcomes.size - wins - losses
    rate = st.win_rate(wins, losses, ties, alpha)
    result = MetricResult(metric.name, WIN_RATE, slice_, policy, "judge", outcomes.size,
                          Arm(0), Arm(outcomes.size, rate.rate, rate.interval))
    if outcomes.size:
        result.difference = rate.rate - 0.5
        result.interval = (rate.interval[0] - 0.5, rate.interval[1] - 0.5)
        worse, better = (losses, wins) if policy.bad != UP else (wins, losses)
        result.p_anytime = st.discordant_anytime_p(worse, better)
        result.testable = worse + better > 0
        # harm = 1/2 - win rate (bad down) or win rate - 1/2: a bounded mean, like a rate
        clustered = st.cluster_means(outcomes, metric.clusters_of(
            metric.in_time_order(~np.isnan(metric.candidate))))
        observed = outcomes if clustered is None else clustered[0]
        result.sequence = (HarmSequence(EB, observed, scale=-1.0, offset=0.5)
                           if policy.bad != UP else HarmSequence(EB, observed, offset=-0.5))
        if clustered is not None:  # one cluster, one observation
            harm = (0.5 - observed if policy.bad != UP else observed - 0.5) * 2
            result.p_anytime = st.betting_anytime_p(harm)
            result.testable = bool(np.any(harm != 0))
        result.details = {"wins": wins, "losses": losses, "ties": ties,
                          "test": "Beta-mixture sequential test on wins vs losses",
                          "anytime_interval": EB_NAME}
    return result


_MEASURES = {RATE: _measure_rate, MEAN: _measure_mean, SHIFT: _measure_shift,
             QUANTILE: _measure_quantile, WIN_RATE: _measure_win_rate}


# --- multiplicity and classification -----------------------------------------------------------

def _adjust(results: list[MetricResult], alpha: float, family: Family) -> None:
    """Multiplicity over the fixed ``family``: the critical tests together by the graphical
    procedure of ``_critical_graph``, each non-critical metric's slices by weighted Holm (by
    slice weight); each cell's initial share of alpha is its ``alpha``."""
    groups: dict[str, list[tuple[MetricResult, float]]] = {}
    for result in results:
        if result.kind not in _P_TESTED:
            continue
        critical = result.policy.critical
        weight = (family.weight(result.metric, result.slice.name) if critical
                  else family.slice_weight(result.slice.name))
        result.alpha = alpha * weight
        if (result.testable and result.p_anytime is not None
                and result.n >= result.policy.min_samples):
            key = "critical" if critical else f"metric:{result.metric}"
            groups.setdefault(key, []).append((result, weight))
    for key, group in groups.items():
        p_values, weights = [r.p_anytime for r, _ in group], [w for _, w in group]
        adjusted = (st.graphical_adjust(p_values, weights, _critical_graph(
            [r for r, _ in group], family)) if key == "critical"
            else st.weighted_holm_adjust(p_values, weights))
        for (result, _), p in zip(group, adjusted, strict=True):
            result.p_adjusted = p


def _critical_graph(cells: list[MetricResult], family: Family) -> np.ndarray:
    """Where a rejected critical cell's alpha goes: to the other cells of the same metric, in
    proportion to their slice weights among all the metric's cells (seen or not), so a
    regression found in "all" hands its share to the slices, which can then say where it
    is. Nothing passes between metrics."""
    graph = np.zeros((len(cells), len(cells)))
    for i, source in enumerate(cells):
        rest = 1.0 - family.slice_weight(source.slice.name)
        if rest <= 0:
            continue
        for j, target in enumerate(cells):
            if j != i and target.metric == source.metric:
                graph[i, j] = family.slice_weight(target.slice.name) / rest
    return graph


def _anytime_bounds(result: MetricResult, alpha: float) -> None:
    """The cell's confidence sequence: the harm's upper end at ``alpha`` (PROMOTE: every
    critical cell must clear it, so no split is needed) and its lower end at the cell's own
    share (ROLLBACK), as ``anytime_interval`` in the direction of ``difference``."""
    if result.sequence is None or result.sequence.values.size == 0:
        return
    high = result.sequence.upper(alpha)
    low = result.sequence.lower(result.alpha or alpha)
    result.harm_upper = high
    result.anytime_interval = (low, high) if result.policy.bad == UP else (-high, -low)


def _classify(result: MetricResult, alpha: float) -> None:
    policy = result.policy
    harm = result.harm()
    if result.n == 0:
        result.classification, result.needed = NODATA, policy.min_samples
        return
    if result.n < policy.min_samples or harm is None:
        result.classification = INSUFFICIENT
        result.needed = max(policy.min_samples - result.n, 0) or None
        return
    estimate, low, high = harm
    if result.kind in _P_TESTED:
        significant = result.p_adjusted is not None and result.p_adjusted < alpha
        regressed = significant and estimate >= result.threshold
        high = result.harm_upper if result.harm_upper is not None else math.inf
        result.settled = high < result.threshold  # anytime: no horizon escape
    else:
        regressed = low > result.threshold
        result.settled = high < result.threshold or result.n >= policy.max_samples
    if regressed:
        result.classification = REGRESSION
    elif high < 0:
        result.classification = IMPROVEMENT
    elif result.settled:
        result.classification = PASS
    else:
        result.classification = INCONCLUSIVE
        result.needed = _more_needed(result.n, estimate, high, result.threshold,
                                     policy.max_samples)


def _more_needed(n: int, estimate: float, high: float, threshold: float, horizon: int) -> int:
    """Extra samples until the interval's bad end drops below ``threshold`` if the estimate
    holds (the half-width shrinks as 1/sqrt(n)); the horizon when it cannot."""
    margin = threshold - estimate
    if margin <= 0 or high <= estimate:
        return max(horizon - n, 0)
    wanted = n * ((high - estimate) / margin) ** 2
    return max(0, min(math.ceil(wanted) - n, horizon - n))


# --- verdict ------------------------------------------------------------------------------------

def _decide(results: list[MetricResult], policy: Policy
            ) -> tuple[str, float | None, list[Reason], int | None]:
    critical = [r for r in results if r.policy.critical and r.classification == REGRESSION]
    score = _score(results)
    if critical:
        return ROLLBACK, score, [_regression_reason(r, "critical_regression")
                                 for r in critical], None
    overall = [r for r in results if r.slice is ALL]
    judged = [r for r in overall if r.classification not in _UNJUDGED]
    if score is None or not judged:
        return HOLD, score, [Reason("no_data", "no judged metric yet: "
                                    + _missing_summary(overall))], _needed(overall)
    regressions = [_regression_reason(r, "regression") for r in results
                   if r.classification == REGRESSION]
    if score < policy.marginal_threshold:
        return ROLLBACK, score, [Reason("score", f"score {score:.0f} is below the marginal "
                                        f"threshold {policy.marginal_threshold:g}"),
                                 *regressions], None
    blockers, unjudged = _promotion_blockers(results, policy)
    if score >= policy.pass_threshold and not blockers:
        return PROMOTE, score, [Reason("score", f"score {score:.0f} reaches the pass threshold "
                                       f"{policy.pass_threshold:g}"), *regressions,
                                *_settled_reasons(overall), *unjudged], None
    if score < policy.pass_threshold:
        blockers.insert(0, Reason("score", f"score {score:.0f} is below the pass threshold "
                                  f"{policy.pass_threshold:g}"))
    return HOLD, score, [*blockers, *regressions], _needed(overall)


def _score(results: list[MetricResult]) -> float | None:
    """100 x the weighted share of judged metrics (in "all") with no regression in any slice."""
    regressed = {r.metric for r in results if r.classification == REGRESSION}
    judged = {r.metric: r.policy.weight for r in results
              if r.slice is ALL and r.classification not in _UNJUDGED}
    total = sum(judged.values())
    if not judged or total <= 0:
        return None
    return 100.0 * sum(w for m, w in judged.items() if m not in regressed) / total


def _promotion_blockers(results: list[MetricResult], policy: Policy
                        ) -> tuple[list[Reason], list[Reason]]:
    """What stops a PROMOTE, and the slices it would promote without judging.

    Every critical metric must rule out harm in "all" and in every slice that has reached
    min_samples. A slice with some data but fewer pairs is *unjudged*: with
    ``unjudged_slices: wait`` it blocks until "all" reaches the metric's max_samples, with
    ``list`` (or past that horizon) PROMOTE lists it.
    """
    overall = [r for r in results if r.slice is ALL]
    blockers, unjudged = [], []
    if policy.require_evaluators and not any(r.evaluator and r.classification not in _UNJUDGED
                                             for r in overall):
        blockers.append(Reason("no_evaluators", "no evaluator has enough results yet "
                               "(require_evaluators is on)"))
    all_n = {r.metric: r.n for r in overall}
    for result in results:
        if not result.policy.critical or result.settled or result.classification == NODATA:
            continue
        if result.slice is ALL or result.n >= result.policy.min_samples:
            blockers.append(_unsettled_reason(result))
            continue
        waiting = (policy.unjudged_slices == WAIT
                   and all_n.get(result.metric, 0) < result.policy.max_samples)
        reason = _unjudged_reason(result, waiting)
        (blockers if waiting else unjudged).append(reason)
    return blockers, unjudged


def _needed(overall: list[MetricResult]) -> int | None:
    """The most extra samples a critical metric with some data needs to settle."""
    needs = [r.needed for r in overall if r.policy.critical and r.needed is not None
             and r.classification in (INSUFFICIENT, INCONCLUSIVE)]
    return max(needs) if needs else None


def _missing_summary(overall: list[MetricResult]) -> str:
    if not overall:
        return "no spans, evaluations or feedback for these models in the window"
    waiting = [f"{r.metric} has {r.n} of {r.policy.min_samples}" for r in overall if r.n]
    return "; ".join(waiting) or "no spans, evaluations or feedback in the window"


# --- reasons ------------------------------------------------------------------------------------

def format_value(kind: str, metric: str, value: float | None) -> str:
    """A metric value as people read it: rates in %, latency in ms, other values as is."""
    if value is None:
        return "-"
    if kind in (RATE, WIN_RATE):
        return f"{100 * value:.1f}%"
    if metric.startswith("latency"):
        return f"{value:.0f} ms" if abs(value) >= 10 else f"{value:.2g} ms"  # 0.42 ms, not 0 ms
    return f"{value:.3g}"


def format_difference(kind: str, value: float | None) -> str:
    """A difference: rates in points, distribution shifts in %, scores as is."""
    if value is None:
        return "-"
    if kind in (RATE, WIN_RATE):
        return f"{100 * value:+.1f} pts"
    if kind in (SHIFT, QUANTILE):
        return f"{100 * value:+.1f}%"
    return f"{value:+.3g}"


def _regression_reason(result: MetricResult, kind: str) -> Reason:
    low, high = result.interval or (None, None)
    evidence = (f", anytime p={result.p_adjusted:.2g} (Holm)" if result.p_adjusted is not None
                else f", interval clears the {100 * result.threshold:.0f}% tolerance")
    base = format_value(result.kind, result.metric, result.base.value)
    candidate = format_value(result.kind, result.metric, result.candidate.value)
    change = [format_difference(result.kind, v) for v in (result.difference, low, high)]
    message = (f"{result.metric} regressed in {result.slice.name}: candidate {candidate} vs "
               f"base {base} ({change[0]}, CI {change[1]} to {change[2]}){evidence}")
    return Reason(kind, message, result.metric, result.slice.name)


def _unsettled_reason(result: MetricResult) -> Reason:
    unit = "pairs" if result.mode == "paired" else "samples per arm"
    if result.classification == INSUFFICIENT:
        message = (f"not enough data yet: {result.metric} has {result.n} {unit} in "
                   f"{result.slice.name}, needs {result.policy.min_samples}")
    else:
        message = (f"not enough data yet: {result.metric} cannot rule out a "
                   f"{format_difference(result.kind, result.threshold).lstrip('+')} regression in "
                   f"{result.slice.name}; about {result.needed} more {unit} needed")
    return Reason("insufficient_data", message, result.metric, result.slice.name)


def _unjudged_reason(result: MetricResult, waiting: bool) -> Reason:
    unit = "pairs" if result.mode == "paired" else "samples per arm"
    what = (f"{result.slice.name} is not judged yet: {result.metric} has {result.n} of "
            f"{result.policy.min_samples} {unit}")
    if waiting:
        return Reason("insufficient_data", f"{what}; waiting for it (unjudged_slices: wait, "
                      f"until \"all\" has {result.policy.max_samples} {unit})", result.metric,
                      result.slice.name)
    return Reason("unjudged", f"{what}; promoted without judging it", result.metric,
                  result.slice.name)


def _settled_reasons(overall: list[MetricResult]) -> list[Reason]:
    return [Reason("settled", f"{r.metric}: no regression of "
                   f"{format_difference(r.kind, r.threshold).lstrip('+')} or more "
                   f"({format_difference(r.kind, r.difference)}, n={r.n})", r.metric,
                   r.slice.name)
            for r in overall if r.policy.critical and r.settled]


# --- plots' data --------------------------------------------------------------------------------

def _distributions(samples: list[MetricSamples], bins: int = 30) -> dict[str, Any]:
    """Latency histograms of both arms on shared log-spaced bins (for the HTML report)."""
    latency = next((m for m in samples if m.name == LATENCY_P50), None)
    if latency is None:
        return {}
    base, candidate = _values(latency)
    pooled = np.concatenate([base, candidate])
    pooled = pooled[pooled > 0]
    if pooled.size == 0:
        return {}
    low, high = np.quantile(pooled, [0.001, 0.999])
    edges = np.geomspace(max(low, 1e-3), max(high, low * 1.01, 1e-3 * 1.01), bins + 1)
    counts = {arm: np.histogram(np.clip(v, edges[0], edges[-1]), edges)[0]
              for arm, v in (("base", base), ("candidate", candidate))}
    return {"latency_ms": {"edges": [float(e) for e in edges],
                           "base": [int(c) for c in counts["base"]],
                           "candidate": [int(c) for c in counts["candidate"]]}}
