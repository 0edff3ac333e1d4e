"""The statistics the comparison uses: intervals, tests, the sequential test and Holm.

Every function takes plain counts or numpy arrays and returns plain numbers, so each one can
be checked against scipy/statsmodels on the same data. Conventions: differences are
``candidate - base``; ``alpha`` is two-sided unless a name says otherwise; bootstraps are
seeded and vectorized.

Always-valid (anytime) p-values come from test martingales: ``p = min(1, 1/M)`` where ``M`` is
a nonnegative martingale under the null, so by Ville's inequality the chance that ``p <= alpha``
at *any* look is at most ``alpha`` however often the comparison is re-run.

Confidence sequences (time-uniform bounds on a mean, valid at every look at once):

- ``eb_upper_bound``: the predictable plug-in empirical-Bernstein confidence sequence of
  Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting", JRSS-B
  86(1), 2024 (arXiv:2010.09686), Theorem 2 with the one-sided boundary, for values in
  [0, 1] in arrival order. It needs no distributional assumption beyond boundedness and a
  constant conditional mean, adapts to the variance (rarely-disagreeing pairs get tight
  bounds fast) and is intersected over all past looks, so it only ever tightens.
- ``normal_mixture_upper_bound``: the asymptotic confidence sequence of Waudby-Smith, Arnold,
  Wu, Wang & Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences",
  Ann. Statist. 2024 (arXiv:2103.06476), Theorem 2.2 (Robbins' normal mixture with the
  running variance) for unbounded scores: valid as the sample grows, not at every n.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

Interval = tuple[float, float]

DISCORDANT_PRIOR = 2.0
"""Shape ``a`` of the Beta(a, a) prior, truncated to [1/2, 1], of the one-sided mixture test."""

MAX_BOOTSTRAP_VALUES = 20_000
"""Continuous paired bootstraps resample at most this many pairs (then rescale, m-out-of-n)."""


# --- intervals --------------------------------------------------------------------------------

def wilson_interval(successes: float, n: int, alpha: float = 0.05) -> Interval:
    """Wilson score interval of a proportion (statsmodels ``proportion_confint``)."""
    if n <= 0:
        return (0.0, 1.0)
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return (float(low), float(high))


def wilson_intervals(successes: list[float], totals: list[int], alpha: float = 0.05
                     ) -> list[Interval]:
    """``wilson_interval`` of several proportions at once: the score interval's closed form
    (the same numbers as statsmodels ``proportion_confint(method="wilson")``, without its
    per-call overhead, which dominated comparisons of many slices)."""
    n = np.maximum(np.asarray(totals, dtype=float), 1.0)
    p = np.asarray(successes, dtype=float) / n
    z = NormalDist().inv_cdf(1 - alpha / 2)
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [(float(c - h), float(c + h)) if size > 0 else (0.0, 1.0)
            for c, h, size in zip(center, half, totals, strict=True)]


def newcombe_difference_interval(base_successes: int, base_n: int, candidate_successes: int,
                                 candidate_n: int, alpha: float = 0.05) -> Interval:
    """Newcombe's hybrid score interval for ``p_candidate - p_base`` (two Wilson intervals)."""
    low, high = confint_proportions_2indep(candidate_successes, candidate_n, base_successes,
                                           base_n, method="newcomb", compare="diff",
                                           alpha=alpha)
    return (float(low), float(high))


def paired_binary_bootstrap_interval(counts: tuple[int, int, int, int], alpha: float = 0.05,
                                     resamples: int = 2000, seed: Any = 0) -> Interval:
    """Percentile bootstrap interval of ``p_candidate - p_base`` over paired binary outcomes.

    ``counts`` are the pairs (base, candidate) = (1,1), (1,0), (0,1), (0,0). Resampling n
    requests with replacement only changes how many fall in each cell (a multinomial draw),
    and the difference only needs the two discordant cells: (1,0) ~ Binomial(n, p10), then
    (0,1) ~ Binomial(n - (1,0), p01 / (1 - p10)). That is the same bootstrap as resampling
    the requests themselves, vectorized over resamples.
    """
    _, base_only, candidate_only, _ = counts
    n = sum(counts)
    if n == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    p_base_only = base_only / n
    drawn_base_only = rng.binomial(n, p_base_only, size=resamples)
    rest = 1.0 - p_base_only
    p_candidate_only = min(candidate_only / n / rest, 1.0) if rest > 0 else 0.0
    drawn_candidate_only = rng.binomial(n - drawn_base_only, p_candidate_only)
    return _percentiles((drawn_candidate_only - drawn_base_only) / n, alpha)


def paired_bootstrap_interval(differences: np.ndarray, alpha: float = 0.05,
                              resamples: int = 2000, seed: Any = 0) -> Interval:
    """Percentile bootstrap interval of the mean of per-request differences.

    Above ``MAX_BOOTSTRAP_VALUES`` pairs a seeded subsample is resampled and the spread is
    rescaled by sqrt(m/n) around the full-data mean (the m-out-of-n bootstrap).
    """
    values = np.asarray(differences, dtype=float)
    n = values.size
    if n == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    sample = values if n <= MAX_BOOTSTRAP_VALUES else rng.choice(values, MAX_BOOTSTRAP_VALUES)
    means = _bootstrap_means(sample, resamples, rng)
    low, high = _percentiles(means, alpha)
    scale = math.sqrt(sample.size / n)
    center = float(sample.mean())
    full_mean = float(values.mean())
    return (full_mean + (low - center) * scale, full_mean + (high - center) * scale)


def _bootstrap_means(sample: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` resamples, drawn in chunks of about 4M indices."""
    chunk = max(1, 4_000_000 // sample.size)
    means = [sample[rng.integers(0, sample.size, size=(min(chunk, resamples - start),
                                                       sample.size))].mean(axis=1)
             for start in range(0, resamples, chunk)]
    return np.concatenate(means)


def _percentiles(values: np.ndarray, alpha: float) -> Interval:
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return (float(low), float(high))


def quantile_interval(values: np.ndarray, q: float, alpha: float = 0.05) -> tuple[float, Interval]:
    """The ``q`` quantile and its distribution-free interval from binomial order statistics
    (ranks from Binomial(n, q); found with np.partition, no full sort)."""
    data = np.asarray(values, dtype=float)
    n = data.size
    lower = max(int(sps.binom.ppf(alpha / 2, n, q)) - 1, 0)
    upper = min(int(sps.binom.ppf(1 - alpha / 2, n, q)), n - 1)
    low, high = np.partition(data, [lower, upper])[[lower, upper]]
    return float(np.quantile(data, q)), (float(low), float(high))


# --- fixed-horizon tests ----------------------------------------------------------------------

def mcnemar_exact_p(base_only: int, candidate_only: int) -> float:
    """Exact McNemar p-value: two-sided binomial test of the discordant pairs at 1/2, i.e.
    twice the smaller tail, capped at 1 (as statsmodels ``mcnemar(exact=True)``)."""
    discordant = base_only + candidate_only
    if discordant == 0:
        return 1.0
    return float(min(1.0, 2.0 * special.bdtr(min(base_only, candidate_only), discordant, 0.5)))


@dataclass(frozen=True)
class ShiftResult:
    """Mann-Whitney U test and the Hodges-Lehmann shift ``candidate - base`` with its interval."""

    u_statistic: float
    p_value: float
    shift: float
    shift_interval: Interval


def mann_whitney_shift(base: np.ndarray, candidate: np.ndarray,
                       alpha: float = 0.05) -> ShiftResult:
    """Two-sided Mann-Whitney U (scipy) plus the Hodges-Lehmann estimate and its interval.

    The interval is the pair of order statistics of all ``candidate_j - base_i`` differences
    that inverts the U test (normal approximation), found by bisection without materializing
    the n*m differences.
    """
    x = np.sort(np.asarray(base, dtype=float))
    y = np.sort(np.asarray(candidate, dtype=float))
    test = sps.mannwhitneyu(y, x, alternative="two-sided", method="asymptotic")
    total = x.size * y.size
    z = sps.norm.ppf(1 - alpha / 2)
    k = math.floor(total / 2 - z * math.sqrt(total * (x.size + y.size + 1) / 12))
    k = min(max(k, 1), total)
    middle = [(total + 1) // 2, total // 2 + 1]
    low, high, *centre = _difference_order_statistics(x, y, [k, total - k + 1, *middle])
    return ShiftResult(float(test.statistic), float(test.pvalue), (centre[0] + centre[1]) / 2,
                       (low, high))


def _difference_order_statistics(x: np.ndarray, y: np.ndarray, ranks: list[int],
                                 iterations: int = 36) -> list[float]:
    """The ``ranks``-th smallest values (1-based) of ``y_j - x_i`` over all pairs, by bisection.

    ``count(d)`` = #{(i, j): y_j - x_i <= d} is found with one searchsorted per step for all
    ranks at once; each bracket shrinks to the smallest difference with count >= rank.
    """
    target = np.asarray(ranks, dtype=float)[:, None]
    low = np.full((len(ranks), 1), y[0] - x[-1])
    high = np.full((len(ranks), 1), y[-1] - x[0])
    for _ in range(iterations):
        middle = (low + high) / 2
        below = np.searchsorted(x, y[None, :] - middle, side="left")
        counts = (x.size - below).sum(axis=1, keepdims=True)
        enough = counts >= target
        high = np.where(enough, middle, high)
        low = np.where(enough, low, middle)
    return [float(v) for v in _snap_to_differences(x, y, high[:, 0])]


def _snap_to_differences(x: np.ndarray, y: np.ndarray, approx: np.ndarray) -> np.ndarray:
    """Replace each bisection result by the nearest actual difference at or below it."""
    snapped = []
    for value in approx:
        positions = np.searchsorted(x, y - value, side="left")
        candidates = y[positions < x.size] - x[positions[positions < x.size]]
        snapped.append(candidates.max() if candidates.size else value)
    return np.asarray(snapped)


# --- always-valid (sequential) tests -----------------------------------------------------------

def discordant_log_evalue(bad: int, good: int, prior: float = DISCORDANT_PRIOR) -> float:
    """Log of the one-sided Beta-mixture martingale on discordant pairs.

    Under the null a discordant pair is ``bad`` (the regression direction) with probability
    1/2. The alternative mixes theta over Beta(prior, prior) truncated to [1/2, 1]; the
    martingale is the mixture likelihood over (1/2)^n and depends only on the counts.
    """
    n = bad + good
    if n == 0:
        return 0.0
    tail = special.betaincc(prior + bad, prior + good, 0.5)
    if tail <= 0.0:
        return -math.inf
    return (n * math.log(2.0) + special.betaln(prior + bad, prior + good)
            - special.betaln(prior, prior) + math.log(tail) + math.log(2.0))


def discordant_anytime_p(bad: int, good: int, prior: float = DISCORDANT_PRIOR) -> float:
    """Always-valid one-sided p-value that discordant pairs lean towards ``bad``."""
    return float(min(1.0, math.exp(-discordant_log_evalue(bad, good, prior))))


def msprt_anytime_p(estimate: float, variance: float, mixing_sds: Sequence[float]) -> float:
    """Always-valid two-sided p-value of a normal-mixture SPRT (Johari et al., 2017).

    ``estimate`` is approximately N(theta, variance). For each mixing sd tau the mixture over
    theta ~ N(0, tau^2) gives a likelihood ratio against theta = 0; their average over the
    given taus (a mixture of test martingales is one) adapts to the size of the effect.
    """
    if variance <= 0.0:
        return 1.0 if estimate == 0.0 else 0.0
    ratios = [math.sqrt(variance / (variance + tau ** 2))
              * math.exp(min(tau ** 2 * estimate ** 2 / (2 * variance * (variance + tau ** 2)),
                             700.0))
              for tau in mixing_sds]
    return float(min(1.0, len(ratios) / sum(ratios)))


def mixing_grid(smallest: float, largest: float) -> list[float]:
    """Mixing sds from ``smallest`` doubling up to ``largest``: effects of every size."""
    taus = [max(smallest, 1e-9)]
    while taus[-1] * 2 <= largest:
        taus.append(taus[-1] * 2)
    return taus


# --- confidence sequences ---------------------------------------------------------------------

EB_CAP = 0.75
"""Largest bet ``lambda`` of the empirical-Bernstein sequence (Waudby-Smith & Ramdas use 1/2
or 3/4): larger reacts faster to near-constant data, smaller is steadier under noise."""


def eb_upper_bound(values: np.ndarray, alpha: float, cap: float = EB_CAP) -> float:
    """Time-uniform upper confidence bound of the mean of ``values`` in [0, 1], in arrival
    order: with probability at least 1 - alpha it holds at every prefix at once.

    Predictable plug-in empirical Bernstein (Waudby-Smith & Ramdas 2024, Theorem 2, one-sided):
    bets ``lambda_i = min(sqrt(2 log(1/alpha) / (sigma2_{i-1} i log(1 + i))), cap)`` from the
    past only; the bound at time t is ``(sum lambda_i x_i + log(1/alpha) + sum v_i psi(lambda_i))
    / sum lambda_i`` with ``v_i = 4 (x_i - mu_{i-1})^2`` and ``psi(l) = (-log(1-l) - l) / 4``,
    and the result is the smallest bound over all t (the running intersection).
    """
    x = np.asarray(values, dtype=float)
    n = x.size
    if n == 0:
        return 1.0
    t_plus_1, t_log_t = _eb_times(n)
    mean = np.cumsum(x)
    mean += 0.5
    mean /= t_plus_1
    spread = x - mean
    spread *= spread
    variance = np.cumsum(spread)
    variance += 0.25
    variance /= t_plus_1
    previous_mean = np.empty(n)
    previous_mean[0], previous_mean[1:] = 0.5, mean[:-1]
    previous_variance = np.empty(n)
    previous_variance[0], previous_variance[1:] = 0.25, variance[:-1]
    log_alpha = math.log(1.0 / alpha)
    previous_variance *= t_log_t
    bets = np.sqrt(2 * log_alpha / previous_variance)
    np.minimum(bets, cap, out=bets)
    penalty = x - previous_mean
    penalty *= penalty  # v_i / 4 ...
    penalty *= -np.log1p(-bets) - bets  # ... times 4 psi(lambda_i)
    upper = np.cumsum(bets * x)
    upper += np.cumsum(penalty)
    upper += log_alpha
    upper /= np.cumsum(bets)
    return float(min(1.0, upper.min()))


@functools.lru_cache(maxsize=8)
def _eb_cached_times(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(1, n + 1, dtype=float)
    return t + 1, t * np.log1p(t)


def _eb_times(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``t + 1`` and ``t log(1 + t)`` for t = 1..n (cached by powers of two, then cut)."""
    size = 1 << max(10, (n - 1).bit_length())
    t_plus_1, t_log_t = _eb_cached_times(size)
    return t_plus_1[:n], t_log_t[:n]


def eb_lower_bound(values: np.ndarray, alpha: float, cap: float = EB_CAP) -> float:
    """Time-uniform lower confidence bound of the mean of ``values`` in [0, 1]."""
    return 1.0 - eb_upper_bound(1.0 - np.asarray(values, dtype=float), alpha, cap)


def normal_mixture_upper_bound(values: np.ndarray, alpha: float, target_n: int = 500) -> float:
    """Asymptotic time-uniform upper bound of the mean (Waudby-Smith et al. 2024, Thm 2.2):
    ``mean_t + sd_t sqrt(2 (t r^2 + 1) / (t^2 r^2) log(sqrt(t r^2 + 1) / alpha))``, tightest
    near ``target_n`` values, intersected over every t >= 2."""
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2:
        return math.inf
    t = np.arange(1, n + 1, dtype=float)
    mean = np.cumsum(x) / t
    spread = np.sqrt(np.maximum(np.cumsum(x * x) / t - mean ** 2, 0.0) * t / np.maximum(t - 1,
                                                                                         1))
    log_alpha = -2 * math.log(alpha)
    r2 = (log_alpha + math.log(log_alpha + 1)) / target_n
    half = spread * np.sqrt(2 * (t * r2 + 1) / (t * t * r2)
                            * np.log(np.sqrt(t * r2 + 1) / alpha))
    return float((mean + half)[1:].min())


def normal_mixture_lower_bound(values: np.ndarray, alpha: float, target_n: int = 500) -> float:
    return -normal_mixture_upper_bound(-np.asarray(values, dtype=float), alpha, target_n)


def betting_anytime_p(values: np.ndarray, cap: float = 0.5) -> float:
    """Always-valid p-value that the mean of ``values`` in [-1, 1] is above 0, in arrival
    order: ``1 / max_t K_t`` for the capital ``K_t = prod (1 + lambda_i x_i)`` of the
    aGRAPA bets ``lambda_i = clip(mu_{i-1} / (sigma2_{i-1} + mu_{i-1}^2), 0, cap)`` of
    Waudby-Smith & Ramdas (2024, section 5.3); under the null K is a nonnegative
    supermartingale, so Ville's inequality makes the p-value valid at every look."""
    x = np.clip(np.asarray(values, dtype=float), -1.0, 1.0)
    if x.size == 0:
        return 1.0
    t = np.arange(1, x.size + 1, dtype=float)
    mean = np.cumsum(x) / (t + 1)
    variance = (0.25 + np.cumsum((x - mean) ** 2)) / (t + 1)
    previous_mean = np.concatenate(([0.0], mean[:-1]))
    previous_variance = np.concatenate(([0.25], variance[:-1]))
    bets = np.clip(previous_mean / (previous_variance + previous_mean ** 2), 0.0, cap)
    log_capital = np.cumsum(np.log1p(bets * x))
    return float(min(1.0, math.exp(-max(0.0, float(log_capital.max())))))


def cluster_means(values: np.ndarray, clusters: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-cluster means of ``values`` (in arrival order), clusters in order of their first
    value, and the cluster sizes; None when no cluster holds more than one value."""
    if clusters is None or values.size == 0:
        return None
    _, first, inverse, counts = np.unique(clusters, return_index=True, return_inverse=True,
                                          return_counts=True)
    if counts.max() <= 1:
        return None
    means = np.bincount(inverse, weights=np.asarray(values, dtype=float)) / counts
    order = np.argsort(first, kind="stable")
    return means[order], counts[order]


# --- multiplicity -----------------------------------------------------------------------------

def graphical_adjust(p_values: list[float], weights: list[float],
                     transitions: np.ndarray) -> list[float]:
    """Adjusted p-values of the sequentially rejective graphical procedure of Bretz, Maurer,
    Brannath & Posch, "A graphical approach to sequentially rejective multiple test
    procedures", Stat. Med. 28(4), 2009 (Algorithm 1): reject the hypothesis with the smallest
    ``p / w``, pass its weight along its row of ``transitions`` (rows sum to at most 1) and
    update the graph. Weighted Bonferroni at every step, so it holds under any dependence;
    with time-uniform p-values and fixed weights it holds over every look. ``weights`` may
    sum to less than 1 (the rest belongs to hypotheses not tested yet)."""
    p = np.asarray(p_values, dtype=float)
    w = np.asarray(weights, dtype=float).copy()
    graph = np.asarray(transitions, dtype=float).copy()
    adjusted = np.ones(p.size)
    active = np.ones(p.size, dtype=bool)
    level = 0.0
    for _ in range(p.size):
        ratio = np.where(active & (w > 0), p / np.where(w > 0, w, 1.0), np.inf)
        j = int(np.argmin(ratio))
        if not math.isfinite(ratio[j]):
            break
        level = max(level, float(ratio[j]))
        adjusted[j] = min(level, 1.0)
        active[j] = False
        w = np.where(active, w + w[j] * graph[j], 0.0)
        into, out, back = graph[:, j][:, None], graph[j][None, :], graph[j][:, None]
        denominator = np.broadcast_to(1.0 - into * back, graph.shape)
        updated = np.where(denominator > 0, (graph + into * out)
                           / np.where(denominator > 0, denominator, 1.0), 0.0)
        np.fill_diagonal(updated, 0.0)
        updated[~active, :] = 0.0
        updated[:, ~active] = 0.0
        graph = updated
    return [float(v) for v in adjusted]


def weighted_holm_adjust(p_values: list[float], weights: list[float],
                         total: float = 1.0) -> list[float]:
    """Weighted Holm (Holm 1979) adjusted p-values for a family whose weights sum to ``total``,
    including members not tested (yet): step k compares ``p / w`` with
    ``alpha / (total - weights already rejected)``. Weight 0 never rejects. With equal weights
    and ``total`` their sum this is ``holm_adjust``."""
    p = np.asarray(p_values, dtype=float)
    w = np.asarray(weights, dtype=float)
    if p.size == 0:
        return []
    ratio = np.where(w > 0, p / np.where(w > 0, w, 1.0), np.inf)
    order = np.argsort(ratio, kind="stable")
    remaining = total - np.concatenate(([0.0], np.cumsum(w[order])[:-1]))
    stepped = np.maximum.accumulate(ratio[order] * np.maximum(remaining, 0.0))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.nan_to_num(stepped, nan=1.0, posinf=1.0), 1.0)
    return [float(v) for v in adjusted]


def holm_adjust(p_values: list[float], alpha: float = 0.05) -> list[float]:
    """Holm step-down adjusted p-values: the k-th smallest p times (m - k + 1), made monotone
    and capped at 1. Same numbers as statsmodels ``multipletests(method="holm")``, which is
    not used here because it runs a full ``gc.collect()`` on every call."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (p.size - np.arange(p.size)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(v) for v in adjusted]


# --- pairwise judge ----------------------------------------------------------------------------

@dataclass(frozen=True)
class WinRate:
    """Candidate win rate with ties counted as half, its Wilson interval and a sequential test."""

    rate: float
    interval: Interval
    anytime_p_losing: float
    """Always-valid p-value that losses outnumber wins (ties carry no information)."""


def win_rate(wins: int, losses: int, ties: int, alpha: float = 0.05) -> WinRate:
    n = wins + losses + ties
    if n == 0:
        return WinRate(0.5, (0.0, 1.0), 1.0)
    score = wins + ties / 2
    return WinRate(score / n, wilson_interval(score, n, alpha),
                   discordant_anytime_p(losses, wins))
