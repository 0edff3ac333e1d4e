"""The comparison's statistics, cross-checked against scipy and statsmodels on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from canarytrace.analysis import statistics as st


@pytest.mark.parametrize("table", [
    [[50, 3], [9, 38]], [[10, 0], [0, 10]], [[0, 25], [7, 0]], [[400, 31], [12, 57]],
    [[1, 1], [1, 1]], [[90, 40], [40, 90]],
])
def test_mcnemar_matches_statsmodels_exact(table):
    expected = mcnemar(np.array(table), exact=True).pvalue
    assert st.mcnemar_exact_p(table[0][1], table[1][0]) == pytest.approx(expected, rel=1e-9)


def test_mann_whitney_matches_scipy_and_hodges_lehmann_matches_brute_force():
    rng = np.random.default_rng(7)
    base = rng.lognormal(5.0, 0.5, 300)
    candidate = rng.lognormal(5.1, 0.5, 240)
    result = st.mann_whitney_shift(base, candidate)
    reference = stats.mannwhitneyu(candidate, base, alternative="two-sided")
    assert result.u_statistic == reference.statistic
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)

    differences = np.sort(np.subtract.outer(candidate, base).ravel())
    assert result.shift == pytest.approx(np.median(differences), rel=1e-12)
    total, z = differences.size, stats.norm.ppf(0.975)
    k = math.floor(total / 2 - z * math.sqrt(total * (base.size + candidate.size + 1) / 12))
    assert result.shift_interval == pytest.approx((differences[k - 1], differences[total - k]),
                                                  rel=1e-12)


def test_mann_whitney_interval_covers_a_known_shift():
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(200):
        base = rng.exponential(100.0, 80)
        candidate = rng.exponential(100.0, 70) + 25.0
        low, high = st.mann_whitney_shift(base, candidate).shift_interval
        covered += low <= 25.0 <= high
    assert covered >= 180  # 95% nominal


def test_wilson_matches_statsmodels_one_by_one_and_vectorized():
    counts, totals = [0, 3, 57, 100, 42.5], [10, 10, 100, 100, 90]
    vectorized = st.wilson_intervals(counts, totals, alpha=0.1)
    for count, total, interval in zip(counts, totals, vectorized, strict=True):
        expected = proportion_confint(count, total, alpha=0.1, method="wilson")
        assert interval == pytest.approx(expected, rel=1e-12)
        assert st.wilson_interval(count, total, alpha=0.1) == pytest.approx(expected, rel=1e-12)
    assert st.wilson_intervals([0], [0]) == [(0.0, 1.0)]


def test_newcombe_difference_matches_statsmodels():
    expected = confint_proportions_2indep(61, 80, 70, 85, method="newcomb", compare="diff")
    assert st.newcombe_difference_interval(70, 85, 61, 80) == pytest.approx(expected, rel=1e-12)


def test_paired_binary_bootstrap_matches_scipy_bootstrap_on_the_requests():
    counts = (700, 60, 25, 215)  # (1,1), (1,0), (0,1), (0,0)
    base = np.repeat([1, 1, 0, 0], counts)
    candidate = np.repeat([1, 0, 1, 0], counts)
    reference = stats.bootstrap((base, candidate), lambda b, c, axis: (c - b).mean(axis=axis),
                                paired=True, vectorized=True, n_resamples=20000,
                                method="percentile", random_state=np.random.default_rng(1))
    ours = st.paired_binary_bootstrap_interval(counts, resamples=20000, seed=2)
    expected = (reference.confidence_interval.low, reference.confidence_interval.high)
    assert ours == pytest.approx(expected, abs=0.003)  # both are Monte Carlo estimates
    assert ours[0] < -0.035 < ours[1]  # the observed difference is inside


def test_paired_bootstrap_of_means_matches_scipy_bootstrap():
    rng = np.random.default_rng(5)
    differences = rng.normal(0.2, 1.0, 800)
    reference = stats.bootstrap((differences,), np.mean, n_resamples=10000, method="percentile",
                                random_state=np.random.default_rng(1)).confidence_interval
    ours = st.paired_bootstrap_interval(differences, resamples=10000, seed=3)
    assert ours == pytest.approx((reference.low, reference.high), abs=0.01)


def test_paired_bootstrap_of_many_means_rescales_to_the_full_sample():
    rng = np.random.default_rng(6)
    differences = rng.normal(0.1, 1.0, 200_000)
    low, high = st.paired_bootstrap_interval(differences, resamples=2000, seed=1)
    half_width = stats.norm.ppf(0.975) * differences.std() / math.sqrt(differences.size)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    assert low < differences.mean() < high


def test_quantile_interval_matches_scipy_quantile_test():
    rng = np.random.default_rng(8)
    values = rng.lognormal(6.0, 0.4, 5000)
    estimate, (low, high) = st.quantile_interval(values, 0.99)
    reference = stats.quantile_test(values, q=np.quantile(values, 0.99), p=0.99)
    ci = reference.confidence_interval(confidence_level=0.95)
    assert estimate == pytest.approx(np.quantile(values, 0.99))
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_holm_matches_statsmodels():
    p = [0.01, 0.04, 0.03, 0.2, 0.001, 0.04]
    assert st.holm_adjust(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert st.holm_adjust([]) == []


def test_discordant_evalue_is_the_beta_mixture_integral():
    a = st.DISCORDANT_PRIOR
    prior = stats.beta(a, a)
    for bad, good in [(9, 3), (3, 9), (30, 12), (0, 0), (5, 5)]:
        n = bad + good
        mixture, _ = integrate.quad(lambda t, b=bad, g=good: t ** b * (1 - t) ** g
                                    * prior.pdf(t) / 0.5, 0.5, 1.0)
        assert st.discordant_log_evalue(bad, good) == pytest.approx(
            math.log(mixture / 0.5 ** n), abs=1e-8)


def test_discordant_anytime_p_points_the_right_way():
    assert st.discordant_anytime_p(40, 10) < 0.001
    assert st.discordant_anytime_p(10, 40) == 1.0
    assert st.discordant_anytime_p(0, 0) == 1.0
    assert st.discordant_anytime_p(25, 15) > st.discordant_anytime_p(30, 10)


def test_discordant_test_stays_valid_when_checked_after_every_pair():
    """Ville: under the null the p-value dips below alpha at ANY look in <= alpha of runs."""
    rng = np.random.default_rng(11)
    runs, steps = 2000, 400
    bad = np.cumsum(rng.random((runs, steps)) < 0.5, axis=1)
    n = np.arange(1, steps + 1)
    crossed = np.zeros(runs, dtype=bool)
    for step in range(steps):
        k = bad[:, step]
        log_e = np.array([st.discordant_log_evalue(int(b), int(n[step] - b)) for b in
                          np.unique(k)])
        lookup = dict(zip(np.unique(k), log_e, strict=True))
        crossed |= np.array([lookup[b] for b in k]) >= math.log(1 / 0.05)
    assert crossed.mean() <= 0.05
    naive = stats.binom.cdf(n - bad, n, 0.5) <= 0.05  # one-sided fixed-horizon test
    assert naive.any(axis=1).mean() > 0.1  # what repeated checking does to a classic test


def test_msprt_is_the_normal_mixture_likelihood_ratio():
    estimate, variance, tau = 0.03, 0.0001, 0.02
    mixture, _ = integrate.quad(lambda t: stats.norm.pdf(estimate, t, math.sqrt(variance))
                                * stats.norm.pdf(t, 0, tau), -1, 1, points=[0, estimate])
    ratio = mixture / stats.norm.pdf(estimate, 0, math.sqrt(variance))
    assert st.msprt_anytime_p(estimate, variance, [tau]) == pytest.approx(1 / ratio, rel=1e-6)
    assert st.msprt_anytime_p(0.0, variance, [tau]) == 1.0
    # several mixing sds: the average likelihood ratio
    both = st.msprt_anytime_p(estimate, variance, [tau, 4 * tau])
    single = [1 / st.msprt_anytime_p(estimate, variance, [t]) for t in (tau, 4 * tau)]
    assert both == pytest.approx(2 / sum(single), rel=1e-9)


def test_msprt_stays_valid_when_checked_after_every_observation():
    rng = np.random.default_rng(13)
    runs, steps = 1000, 300
    values = rng.random((runs, steps)) < 0.3  # no difference between two arms of rate 0.3
    other = rng.random((runs, steps)) < 0.3
    crossed = np.zeros(runs, dtype=bool)
    taus = st.mixing_grid(0.02, 1.0)
    for step in range(9, steps, 3):
        n = step + 1
        p1, p2 = values[:, :n].mean(axis=1), other[:, :n].mean(axis=1)
        variance = ((p1 * (1 - p1) + p2 * (1 - p2)) / n).clip(1e-9)
        crossed |= np.array([st.msprt_anytime_p(d, v, taus) <= 0.05
                             for d, v in zip(p2 - p1, variance, strict=True)])
    assert crossed.mean() <= 0.05


def test_win_rate_counts_ties_as_half_with_a_wilson_interval():
    result = st.win_rate(wins=30, losses=10, ties=20)
    assert result.rate == pytest.approx(40 / 60)
    assert result.interval == pytest.approx(proportion_confint(40, 60, method="wilson"))
    assert st.win_rate(10, 30, 20).anytime_p_losing < st.win_rate(30, 10, 20).anytime_p_losing


# --- confidence sequences and the fixed family -----------------------------------------------

def _paired_harm(rng: np.random.Generator, n: int, bad: float, good: float) -> np.ndarray:
    """Per-pair harm in {-1, 0, 1}: +1 (the candidate alone failed) with probability bad."""
    draw = rng.random(n)
    return np.where(draw < bad, 1.0, np.where(draw < bad + good, -1.0, 0.0))


@pytest.mark.parametrize(("bad", "good"), [(0.03, 0.01), (0.002, 0.0), (0.2, 0.2)])
def test_the_eb_sequence_holds_at_every_look_at_once(bad, good):
    """Checked after every pair, the upper bound falls below the true harm in at most alpha
    of the runs (here: far fewer; the running intersection never loosens)."""
    rng = np.random.default_rng(11)
    alpha, runs, n = 0.1, 300, 1500
    wrong = 0
    for _ in range(runs):
        harm = _paired_harm(rng, n, bad, good)
        x = (harm + 1) / 2
        bounds = [2 * st.eb_upper_bound(x[:k], alpha) - 1 for k in (50, 200, 700, n)]
        assert bounds == sorted(bounds, reverse=True)  # only ever tightens
        wrong += bounds[-1] < bad - good
    assert wrong <= alpha * runs


def test_the_eb_sequence_adapts_to_rare_discordance():
    """Few disagreeing pairs: the bound shrinks like 1/n instead of 1/sqrt(n)."""
    rng = np.random.default_rng(2)
    rare = (_paired_harm(rng, 2000, 0.002, 0.002) + 1) / 2
    common = (_paired_harm(rng, 2000, 0.1, 0.1) + 1) / 2
    assert 2 * st.eb_upper_bound(rare, 0.05) - 1 < 0.02 < 2 * st.eb_upper_bound(common, 0.05) - 1
    assert st.eb_lower_bound(rare, 0.05) <= rare.mean() <= st.eb_upper_bound(rare, 0.05)


def test_the_normal_mixture_sequence_covers_the_mean_of_scores():
    rng = np.random.default_rng(5)
    wrong = sum(st.normal_mixture_upper_bound(rng.normal(0.3, 1.0, 1000), 0.05) < 0.3
                for _ in range(200))
    assert wrong <= 10
    assert st.normal_mixture_upper_bound(np.array([1.0]), 0.05) == math.inf


def test_the_betting_p_value_is_valid_under_the_null_and_small_under_harm():
    rng = np.random.default_rng(8)
    null = [st.betting_anytime_p(_paired_harm(rng, 800, 0.05, 0.05)) for _ in range(200)]
    assert sum(p <= 0.05 for p in null) <= 10
    assert st.betting_anytime_p(_paired_harm(rng, 800, 0.12, 0.02)) < 1e-4


def test_weighted_holm_and_the_graph_reduce_to_holm_and_pass_alpha_on():
    p = [0.01, 0.04, 0.03, 0.2]
    assert st.weighted_holm_adjust(p, [0.25] * 4) == pytest.approx(st.holm_adjust(p))
    complete = np.full((4, 4), 1 / 3) - np.eye(4) / 3
    assert st.graphical_adjust(p, [0.25] * 4, complete) == pytest.approx(st.holm_adjust(p))
    # weights for cells not tested yet stay reserved: the same p needs a smaller adjusted p
    assert st.weighted_holm_adjust([0.01], [0.25])[0] == pytest.approx(0.04)
    # "all" (weight 0.1) hands its share to its two slices (0.45 of the rest each)
    graph = np.array([[0, 0.5, 0.5], [0, 0, 0], [0, 0, 0]])
    adjusted = st.graphical_adjust([0.001, 0.02, 0.5], [0.1, 0.45, 0.45], graph)
    assert adjusted[0] == pytest.approx(0.01)
    assert adjusted[1] == pytest.approx(0.02 / 0.5)  # 0.45 + 0.05 after "all" is rejected


def test_cluster_means_keep_first_appearance_order():
    means, sizes = st.cluster_means(np.array([1.0, 0.0, 1.0, 1.0, 0.0]),
                                    np.array([7, 3, 7, 9, 3], dtype=np.uint64))
    assert means.tolist() == [1.0, 0.0, 1.0] and sizes.tolist() == [2, 2, 1]
    assert st.cluster_means(np.ones(3), np.arange(3)) is None
