import ast
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import pytest

from cotrepro import stats
from cotrepro.multipliers import (MultiplierInterval, PowerLaw, bootstrap_multiplier, exponent_ci, fit_power_law,
                                  iso_error_n, monotone_errors, multiplier,
                                  power_law_fit_check)
from cotrepro.stats import (Interval, binomial_ci, bootstrap_ci, cluster_bootstrap_ci, cluster_share_ci, diff_ci,
                            hier_diff_ci, hier_mean_ci, two_level_bootstrap)
from cotrepro.verdicts import both, noninferiority, nonsuperiority, verdict

TWO_LEVEL = "two-level bootstrap (seeds, then problems)"


def bernoulli(rng, p_correct, shape):
    return (rng.random(shape) < p_correct).astype(float)


def mean_diff(d):
    return d["a"].mean() - d["b"].mean()


def width(ci):
    return ci.high - ci.low


# --- module ------------------------------------------------------------------------------------

def test_module_imports_only_numpy_beyond_the_standard_library_at_top_level():
    # the CLI imports stats and must start fast: scipy is imported inside binomial_ci only
    tree = ast.parse(Path(stats.__file__).read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module)
    assert top <= {"__future__", "math", "warnings", "collections.abc", "dataclasses", "typing", "numpy"}


def test_interval_gains_kind_and_share_undefined_and_stays_frozen():
    ci = Interval(0.5, 0.25, 0.75)
    assert ci.kind == "percentile bootstrap" and ci.share_undefined == 0.0 and ci.n_undefined == 0
    assert str(ci) == "0.5 [0.25, 0.75]"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.low = 0.0  # type: ignore[misc]
    assert binomial_ci(8, 10).kind == "Wilson"


# --- one-level intervals (unchanged behaviour) ------------------------------------------------

def test_power_law_recovers_known_parameters_from_noisy_data():
    rng = np.random.default_rng(0)
    n = np.array([250, 500, 1000, 2000, 4000, 8000])
    err = 0.6 * n ** -0.1 * np.exp(rng.normal(0, 0.005, n.size))
    fit = fit_power_law(n, err)
    assert fit.a == pytest.approx(0.6, rel=0.05)
    assert fit.b == pytest.approx(0.1, abs=0.01)


def test_power_law_rejects_zero_error():
    with pytest.raises(ValueError, match="err > 0"):
        fit_power_law([1, 2], [0.5, 0.0])


def test_power_law_inverse_overflows_to_inf_not_an_exception():
    assert PowerLaw(0.96, 1e-6).inverse(0.5) == math.inf


def test_bootstrap_ci_covers_mean_and_narrows_with_n():
    rng = np.random.default_rng(2)
    small, large = rng.normal(1.0, 1.0, 50), rng.normal(1.0, 1.0, 2000)
    ci_small, ci_large = bootstrap_ci(small), bootstrap_ci(large)
    for ci, values in ((ci_small, small), (ci_large, large)):
        assert ci.low < values.mean() < ci.high
        assert ci.estimate == pytest.approx(values.mean())
    assert (ci_large.high - ci_large.low) < (ci_small.high - ci_small.low) / 3
    assert bootstrap_ci(small, seed=5) == bootstrap_ci(small, seed=5)


def test_bootstrap_ci_coverage_near_nominal():
    rng = np.random.default_rng(4)
    covered = 0
    for i in range(200):
        ci = bootstrap_ci(rng.normal(1.0, 1.0, 60), n_boot=400, seed=i)
        covered += ci.low < 1.0 < ci.high
    assert 0.88 <= covered / 200 <= 0.99


def test_diff_ci_paired_is_narrower_when_items_share_noise():
    rng = np.random.default_rng(3)
    item = rng.normal(0, 5, 300)  # a large per-item effect both conditions share
    a, b = item + 1.0 + rng.normal(0, 0.3, 300), item + rng.normal(0, 0.3, 300)
    paired, unpaired = diff_ci(a, b, paired=True), diff_ci(a, b)
    assert paired.low > 0.8 and paired.high < 1.2
    assert unpaired.low < 1.0 < unpaired.high
    assert (unpaired.high - unpaired.low) > 5 * (paired.high - paired.low)
    with pytest.raises(ValueError, match="equal lengths"):
        diff_ci([1, 2], [1], paired=True)


def test_wilson_interval_against_reference_values():
    ci = binomial_ci(8, 10)  # Wilson 95%: 0.4902 .. 0.9433 (standard table)
    assert ci.estimate == 0.8
    assert ci.low == pytest.approx(0.4902, abs=1e-4)
    assert ci.high == pytest.approx(0.9433, abs=1e-4)
    zero = binomial_ci(0, 20)
    assert zero.low == 0.0 and 0.1 < zero.high < 0.2
    with pytest.raises(ValueError):
        binomial_ci(3, 2)


# --- two-level bootstrap ----------------------------------------------------------------------

def test_two_level_bootstrap_widens_the_interval_when_seeds_disagree():
    rng = np.random.default_rng(10)
    offsets = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])[:, None]  # five seeds of one model disagree
    a = bernoulli(rng, 0.5 + offsets, (5, 400))
    b = bernoulli(rng, 0.45, (5, 400))
    problems_only = diff_ci(a.mean(axis=0), b.mean(axis=0), paired=True)
    two_level = hier_diff_ci(a, b)
    assert two_level.estimate == pytest.approx(problems_only.estimate)
    assert width(two_level) > 2.5 * width(problems_only)
    assert problems_only.low > 0 and two_level.low < 0  # the seeds turn "reproduced" into "inconclusive"
    assert two_level.kind == TWO_LEVEL


def test_two_level_bootstrap_equals_problem_bootstrap_when_seeds_are_identical():
    rng = np.random.default_rng(11)
    row_a, row_b = bernoulli(rng, 0.5, 300), bernoulli(rng, 0.4, 300)
    a, b = np.tile(row_a, (3, 1)), np.tile(row_b, (4, 1))  # seeds that all agree (3 and 4 of them)
    ci, paired = hier_diff_ci(a, b, seed=3), diff_ci(row_a, row_b, paired=True, seed=3)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((paired.estimate, paired.low, paired.high), abs=1e-12)


def test_two_level_bootstrap_with_one_seed_is_the_paired_problem_bootstrap():
    rng = np.random.default_rng(12)
    a, b = bernoulli(rng, 0.6, (1, 250)), bernoulli(rng, 0.5, (1, 250))
    paired = diff_ci(a[0], b[0], paired=True, n_boot=1000, seed=7)
    for ci in (two_level_bootstrap({"a": a, "b": b}, mean_diff, n_boot=1000, seed=7),
               hier_diff_ci(a, b, n_boot=1000, seed=7), hier_diff_ci(a[0], b[0], n_boot=1000, seed=7)):
        assert (ci.estimate, ci.low, ci.high) == pytest.approx((paired.estimate, paired.low, paired.high), abs=1e-12)
        assert ci.n_undefined == 0 and ci.share_undefined == 0.0


def test_generic_statistic_and_vectorised_difference_use_the_same_resamples():
    rng = np.random.default_rng(13)
    a, b = bernoulli(rng, 0.55, (3, 200)), bernoulli(rng, 0.5, (5, 200))  # seeds differ in number
    generic = two_level_bootstrap({"a": a, "b": b}, mean_diff, n_boot=500, seed=1)
    fast = hier_diff_ci(a, b, n_boot=500, seed=1)
    assert ((generic.estimate, generic.low, generic.high)
            == pytest.approx((fast.estimate, fast.low, fast.high), abs=1e-12))
    mean = hier_mean_ci(a, n_boot=500, seed=1)
    assert mean.low < a.mean() < mean.high and mean.kind == TWO_LEVEL
    with pytest.raises(ValueError, match="same test problems"):
        hier_diff_ci(a, b[:, :100])


def test_undefined_resamples_are_counted_and_above_two_and_a_half_percent_void_the_interval():
    # one solved problem out of 50: it is drawn k ~ Binomial(50, 1/50) times in a resample;
    # "undefined when drawn 4+ times" hits ~1.9% of resamples, "3+ times" ~8%
    x = np.zeros((1, 50))
    x[0, 0] = 1.0
    few = two_level_bootstrap({"a": x}, lambda d: d["a"].mean() if d["a"].sum() < 4 else math.nan)
    assert 0 < few.share_undefined <= 0.025
    assert few.n_undefined == round(few.share_undefined * 2000)
    assert math.isfinite(few.low) and math.isfinite(few.high) and few.low <= 0.02 <= few.high
    many = two_level_bootstrap({"a": x}, lambda d: d["a"].mean() if d["a"].sum() < 3 else math.inf)
    assert many.share_undefined > 0.025 and many.estimate == 0.02  # inf counts as undefined too
    assert math.isnan(many.low) and math.isnan(many.high)
    assert verdict(many) == "inconclusive"


def test_hier_diff_ci_is_fast():
    rng = np.random.default_rng(14)
    a, b = bernoulli(rng, 0.5, (5, 1000)), bernoulli(rng, 0.45, (5, 1000))
    start = time.perf_counter()
    hier_diff_ci(a, b, n_boot=2000)
    assert time.perf_counter() - start < 2.0


# --- cluster bootstrap ------------------------------------------------------------------------

def test_cluster_bootstrap_is_wider_for_clustered_values_and_equals_bootstrap_ci_for_singletons():
    rng = np.random.default_rng(15)
    problem_rate = rng.random(100)  # four traces per problem share its difficulty
    flags = (rng.random((100, 4)) < problem_rate[:, None]).ravel()
    clusters = np.repeat(np.arange(100), 4)
    clustered, naive = cluster_share_ci(flags, clusters), bootstrap_ci(flags.astype(float))
    assert clustered.estimate == pytest.approx(flags.mean())
    assert width(clustered) > 1.3 * width(naive)
    assert clustered.kind == "cluster bootstrap (problems)"
    values = rng.normal(0, 1, 80)
    single = cluster_bootstrap_ci(values, np.arange(80), seed=2)
    plain = bootstrap_ci(values, seed=2)
    assert (single.low, single.high) == pytest.approx((plain.low, plain.high), abs=1e-12)
    median = cluster_bootstrap_ci(values, np.arange(80) // 2, stat=np.median, n_boot=300)
    assert median.low < np.median(values) < median.high
    with pytest.raises(ValueError, match="shape"):
        cluster_bootstrap_ci(values, np.arange(79))


# --- power-law exponent -----------------------------------------------------------------------

def test_exponent_ci_covers_the_true_exponent_and_fit_check_reports_quality():
    rng = np.random.default_rng(16)
    sizes = (64, 128, 256, 512, 1024)
    curve = {n: bernoulli(rng, 1 - 0.8 * n ** -0.3, (3, 1000)) for n in sizes}
    ci = exponent_ci(curve, n_boot=1000)
    assert ci.low < 0.3 < ci.high and ci.kind == TWO_LEVEL and ci.share_undefined == 0
    assert ci.estimate == pytest.approx(fit_power_law(sizes, [1 - curve[n].mean() for n in sizes]).b)
    exact = power_law_fit_check(sizes, [0.8 * n ** -0.3 for n in sizes])
    assert exact["b"] == pytest.approx(0.3) and exact["a"] == pytest.approx(0.8)
    assert exact["r2"] == pytest.approx(1.0) and max(map(abs, exact["residuals"])) < 1e-9
    bent = power_law_fit_check(sizes, [0.45 + 0.6 * n ** -0.5 for n in sizes])  # saturating
    assert bent["r2"] < 1 and [r > 0 for r in bent["residuals"]] == [True, False, False, False, True]
    # b(curve) - b(others) with the problems shared: with one seed (nothing to draw but problems)
    # a curve against itself differs by exactly 0 in every resample
    one_seed = {n: scores[:1] for n, scores in curve.items()}
    same = exponent_ci(one_seed, n_boot=200, others=one_seed)
    assert (same.estimate, same.low, same.high) == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)
    # with three seeds each curve's seeds are drawn on their own: the difference has an interval
    own = exponent_ci(curve, n_boot=200, others=curve)
    assert own.estimate == pytest.approx(0.0) and own.low < 0 < own.high


def test_exponent_ci_counts_resamples_with_a_zero_error_as_undefined():
    rng = np.random.default_rng(17)
    curve = {n: bernoulli(rng, 1 - 0.8 * n ** -0.3, (1, 200)) for n in (64, 128, 256)}
    curve[512] = np.ones((1, 200))
    curve[512][0, 0] = 0.0  # one error: about 37% of resamples miss it and have error 0
    ci = exponent_ci(curve, n_boot=500)
    assert 0.25 < ci.share_undefined < 0.5 and math.isnan(ci.low) and math.isnan(ci.high)
    assert math.isfinite(ci.estimate)


# --- iso-error multipliers --------------------------------------------------------------------

def test_monotone_errors_pools_adjacent_violators():
    assert monotone_errors([1, 2, 3, 4], [0.5, 0.4, 0.45, 0.3]) == pytest.approx([0.5, 0.425, 0.425, 0.3])
    assert monotone_errors([1, 2, 3], [0.3, 0.4, 0.5]) == pytest.approx([0.4, 0.4, 0.4])
    decreasing = [0.6, 0.5, 0.41, 0.4]
    assert monotone_errors([1, 2, 3, 4], decreasing).tolist() == decreasing  # exact, not recomputed
    with pytest.raises(ValueError, match="increasing"):
        monotone_errors([2, 1], [0.5, 0.4])


def test_iso_error_n_reads_the_measured_curve():
    sizes, errors = [100, 200, 400, 800], [0.5, 0.4, 0.3, 0.3]
    assert iso_error_n(sizes, errors, 0.4) == 200.0  # exactly at a rung
    midway = math.sqrt(0.5 * 0.4)  # halfway in log error: halfway in log n
    assert iso_error_n(sizes, errors, midway) == pytest.approx(math.sqrt(100 * 200))
    assert iso_error_n(sizes, errors, 0.3) == 400.0  # a flat stretch: the smallest n
    assert iso_error_n(sizes, errors, 0.29) == math.inf  # SFT never gets there inside the ladder
    assert iso_error_n(sizes, errors, 0.51) == 0.0  # worse than SFT at the smallest rung
    assert iso_error_n([1, 2], [0.2, 0.0], 0.1) == pytest.approx(math.sqrt(2))  # error 0: linear in err
    assert multiplier(sizes, errors, 100, 0.4) == 2.0


def test_a_method_identical_to_sft_gets_exactly_one_without_noise():
    # method review section 4: the fitted read-off gave 0.80x .. 1.23x on this curve
    sizes = [32, 64, 128, 256, 512]
    errors = [0.45 + 0.6 * n ** -0.5 for n in sizes]
    assert [multiplier(sizes, errors, n, e) for n, e in zip(sizes, errors)] == [1.0] * 5


def test_a_method_identical_to_sft_gets_an_interval_containing_one_at_every_rung():
    rng = np.random.default_rng(20)
    sizes = (64, 128, 256, 512, 1024)
    sft = {n: bernoulli(rng, 1 - (0.45 + 0.6 * n ** -0.5), (3, 1000)) for n in sizes}
    measured = [1 - sft[n].mean() for n in sizes]
    pooled = monotone_errors(sizes, measured)
    exact = 0
    for k, n in enumerate(sizes):
        ci = bootstrap_multiplier(sft, sft[n].copy(), n, n_boot=500)
        assert ci.low <= 1.0 <= ci.high, (n, ci)
        assert ci.contains(1.0) in (True, None)  # None: an end lies outside the ladder
        assert ci.decide() == "inconclusive"
        assert ci.range_low == sizes[0] / n and ci.range_high == sizes[-1] / n
        if pooled[k] == measured[k] and (k == 0 or pooled[k - 1] > pooled[k]):
            assert ci.estimate == 1.0  # not pooled and not on a flat stretch: exactly 1
            exact += 1
    assert exact >= 3
    # the end rungs: half the resamples read an identical method outside the ladder
    top = bootstrap_multiplier(sft, sft[1024].copy(), 1024, n_boot=500)
    assert top.share_above > 0.2 and top.high == math.inf and top.extrapolated


def test_a_flat_sft_curve_keeps_every_resample_and_reads_censored_ends():
    # method review section 4, bug 2: the old code dropped the resamples where SFT's curve did not
    # fall and said "reproduced" from the 5 of 500 it kept. Now every resample stays: one read
    # above the ladder is inf, and the verdict is what all of them say.
    rng = np.random.default_rng(21)
    flat = {n: bernoulli(rng, 0.30, (3, 1000)) for n in (64, 128, 256, 512, 1024)}
    better = bootstrap_multiplier(flat, bernoulli(rng, 0.45, (3, 1000)), 64)  # accuracy 45% vs 30%
    assert better.estimate == math.inf and better.share_above > 0.97 and better.extrapolated
    # better than SFT at every rung, in (almost) every resample: more than 16x, above 1
    assert better.low == math.inf and better.decide() == "reproduced" and better.contains(1.0) is False
    worse = bootstrap_multiplier(flat, bernoulli(rng, 0.15, (3, 1000)), 64)  # error 85% vs 70%
    assert worse.estimate == 0.0 and worse.share_below > 0.97 and worse.decide() == "not reproduced"
    same = bootstrap_multiplier(flat, bernoulli(rng, 0.30, (3, 1000)), 64, n_boot=500)
    assert same.decide() == "inconclusive"
    assert same.share_below + same.share_above > 0.5  # no resample is dropped, none undefined
    assert same.n_undefined == 0


def test_bootstrap_multiplier_estimate_and_interval():
    rng = np.random.default_rng(1)
    n_test = 4000
    curve = PowerLaw(0.8, 0.15)
    sft = {n: (rng.random(n_test) > curve(n)).astype(float) for n in (100, 200, 400, 800, 1600)}
    method = (rng.random(n_test) > curve(800)).astype(float)  # method on 200 matches SFT on 800
    ci = bootstrap_multiplier(sft, method, 200, n_boot=300, seed=0)
    assert ci.low < ci.estimate < ci.high
    assert ci.low < 4.0 < ci.high
    assert 2.0 < ci.estimate < 8.0
    assert ci.share_above > 0 and ci.high == math.inf and ci.extrapolated  # it can beat SFT at 1600


def test_bootstrap_multiplier_reads_two_and_eight_inside_a_steep_ladder():
    rng = np.random.default_rng(22)
    sizes = (64, 128, 256, 512, 1024)
    # one latent difficulty per problem: the same problems stay hard across rungs and seeds
    difficulty = rng.random(1000)
    scores = lambda err, seeds: (difficulty[None, :] + rng.normal(0, 0.02, (seeds, 1000)) > err).astype(float)
    sft = {n: scores(0.8 * n ** -0.25, 3) for n in sizes}
    two = bootstrap_multiplier(sft, scores(0.8 * 128 ** -0.25, 3), 64)
    eight = bootstrap_multiplier(sft, scores(0.8 * 512 ** -0.25, 3), 64)
    assert not two.extrapolated and two.contains(2.0) and two.decide() == "reproduced"
    assert not eight.extrapolated and eight.contains(8.0) and eight.decide() == "reproduced"
    assert eight.decide(null=4.0) == "reproduced" and two.decide(null=4.0) == "not reproduced"
    same = bootstrap_multiplier(sft, sft[256].copy(), 256)  # identical to SFT at an inner rung
    assert same.estimate == 1.0 and same.contains(1.0) is True and same.decide() == "inconclusive"


@pytest.mark.parametrize("estimate, low, high, extrapolated", [
    (2.0, 1.5, 3.0, False),  # inside
    (2.0, 0.5, 16.0, False),  # ends exactly at the smallest and largest rung
    (20.0, 1.5, 30.0, True),  # estimate above the largest rung
    (0.3, 0.2, 0.45, True),  # below the smallest rung
    (2.0, 1.5, 20.0, True),  # an interval end outside
    (2.0, 0.0, 3.0, True),  # a censored end (0)
    (2.0, 1.5, math.inf, True),  # a censored end (inf)
    (math.nan, 1.5, 3.0, True),  # an undefined estimate
    (math.inf, 1.5, math.inf, True),
])
def test_extrapolated_flag(estimate, low, high, extrapolated):
    ci = MultiplierInterval(estimate, low, high, range_low=0.5, range_high=16.0)
    assert ci.extrapolated is extrapolated
    # a censored end still decides a value inside the ladder (2 here), and the verdict on 1 too
    assert ci.contains(2.0) is (low <= 2.0 <= high)
    assert ci.decide() == ("reproduced" if low > 1 else "not reproduced" if high < 1 else "inconclusive")
    assert ci.contains(32.0) is None and ci.decide(null=32.0) == "inconclusive"  # outside the ladder


@pytest.mark.parametrize("low, high, null, expected", [
    (1.5, 3.0, 1.0, "reproduced"),
    (0.6, 0.9, 1.0, "not reproduced"),
    (0.8, 1.5, 1.0, "inconclusive"),
    (1.0, 1.5, 1.0, "inconclusive"),
    (1.5, 3.0, 2.0, "inconclusive"),
    (2.5, 3.0, 2.0, "reproduced"),
])
def test_multiplier_decide(low, high, null, expected):
    assert MultiplierInterval(2.0, low, high, range_low=0.5, range_high=16.0).decide(null) == expected


# --- verdicts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("low, high, direction, null, expected", [
    (0.01, 0.2, "greater", 0.0, "reproduced"),
    (-0.2, -0.01, "greater", 0.0, "not reproduced"),
    (-0.1, 0.2, "greater", 0.0, "inconclusive"),
    (0.0, 0.2, "greater", 0.0, "inconclusive"),
    (-0.2, -0.01, "less", 0.0, "reproduced"),
    (0.01, 0.2, "less", 0.0, "not reproduced"),
    (1.5, 3.0, "greater", 1.0, "reproduced"),
    (0.5, 0.9, "greater", 1.0, "not reproduced"),
    (0.5, 1.5, "greater", 1.0, "inconclusive"),
    (math.nan, 0.2, "greater", 0.0, "inconclusive"),  # was a ValueError: an undefined CI decides nothing
    (0.01, math.nan, "less", 0.0, "inconclusive"),
])
def test_verdict_rules(low, high, direction, null, expected):
    assert verdict(Interval(0.0, low, high), direction, null=null) == expected
    assert verdict((low, high), direction, null=null) == expected


def test_verdict_rejects_bad_direction_and_reversed_intervals():
    with pytest.raises(ValueError, match="direction"):
        verdict((0.1, 0.2), "up")
    with pytest.raises(ValueError, match="not an interval"):
        verdict((0.2, 0.1))


@pytest.mark.parametrize("low, high, expected", [
    (-0.02, 0.05, "reproduced"),  # any loss smaller than the 3-point margin
    (-0.10, -0.05, "not reproduced"),  # worse by more than the margin
    (-0.05, 0.01, "inconclusive"),  # straddles -margin
    (math.nan, 0.01, "inconclusive"),
])
def test_noninferiority(low, high, expected):
    assert noninferiority(Interval(0.0, low, high), margin=0.03) == expected


@pytest.mark.parametrize("low, high, expected", [
    (-0.05, 0.02, "reproduced"),  # any gain smaller than the margin
    (0.04, 0.10, "not reproduced"),  # beats it by more than the margin
    (-0.01, 0.05, "inconclusive"),  # straddles +margin: an underpowered "no gain" does not pass
    (-0.01, math.nan, "inconclusive"),
])
def test_nonsuperiority(low, high, expected):
    assert nonsuperiority(Interval(0.0, low, high), margin=0.03) == expected


def test_margins_must_be_nonnegative():
    with pytest.raises(ValueError, match="margin"):
        noninferiority((0.0, 0.1), margin=-0.01)
    with pytest.raises(ValueError, match="margin"):
        nonsuperiority((0.0, 0.1), margin=math.nan)


@pytest.mark.parametrize("verdicts, expected", [
    (("reproduced", "reproduced"), "reproduced"),
    (("reproduced", "not reproduced"), "not reproduced"),
    (("inconclusive", "not reproduced"), "not reproduced"),
    (("reproduced", "inconclusive"), "inconclusive"),
    (("inconclusive",), "inconclusive"),
])
def test_both(verdicts, expected):
    assert both(*verdicts) == expected


def test_both_rejects_non_verdicts():
    with pytest.raises(ValueError):
        both()
    with pytest.raises(ValueError, match="not a verdict"):
        both("reproduced", "yes")


def test_curve_gain_is_above_zero_only_for_a_curve_that_falls():
    from cotrepro.multipliers import curve_gain

    rng = np.random.default_rng(0)

    def rung(accuracy):
        return (rng.random((3, 1000)) < accuracy).astype(float)

    falling = curve_gain({64: rung(0.3), 256: rung(0.4), 1024: rung(0.5)}, n_boot=500)
    assert falling.low > 0 and falling.estimate == pytest.approx(0.2, abs=0.03)
    rising = curve_gain({64: rung(0.3), 256: rung(0.28), 1024: rung(0.25)}, n_boot=500)
    assert rising.high < 0


def test_seeds_then_clusters_covers_the_seed_spread_and_reports_undefined_resamples():
    """Three seeds whose cluster means are 0.2, 0.5 and 0.8: the interval spans the seeds, not
    only the clusters of one; a statistic undefined on some resamples says how often."""
    values = {(s, c): [0.2 + 0.3 * s + 0.01 * (c % 3)] for s in range(3) for c in range(40)}
    groups = [[(s, c) for c in range(40)] for s in range(3)]

    def mean(keys):
        return float(np.mean([v for k in keys for v in values[k]]))

    ci = stats.seeds_then_clusters_ci(groups, mean, n_boot=500)
    assert ci.estimate == pytest.approx(0.51, abs=0.01) and ci.low < 0.35 and ci.high > 0.65
    assert ci.kind == stats.SEEDS_THEN_CLUSTERS and ci.n_undefined == 0
    one = stats.seeds_then_clusters_ci(groups[:1], mean, n_boot=500)
    assert one.high - one.low < 0.01  # one seed: only the clusters vary

    def undefined_without_seed_2(keys):
        return mean(keys) if any(k[0] == 2 for k in keys) else float("nan")

    partly = stats.seeds_then_clusters_ci(groups, undefined_without_seed_2, n_boot=500)
    assert 0.2 < partly.share_undefined < 0.4  # (2/3)^3 of the resamples draw no seed 2
    with pytest.raises(ValueError):
        stats.seeds_then_clusters_ci([[], groups[0]], mean)
