import math

import numpy as np
import pytest

from cotrepro.stats import (Interval, PowerLaw, binomial_ci, bootstrap_ci, bootstrap_multiplier,
                            diff_ci, fit_power_law, iso_error_multiplier, verdict)


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


def test_multiplier_matches_analytical_value_on_exact_power_law():
    fit = fit_power_law([100, 200, 400, 800], PowerLaw(0.5, 0.1)([100, 200, 400, 800]))
    # a method on 1000 problems at the error SFT reaches on 8000 problems: multiplier 8
    err_method = 0.5 * 8000 ** -0.1
    assert iso_error_multiplier(fit, 1000, err_method) == pytest.approx(8.0, rel=1e-9)
    # a method no better than SFT at its own size: multiplier 1
    assert iso_error_multiplier(fit, 300, 0.5 * 300 ** -0.1) == pytest.approx(1.0, rel=1e-9)
    assert math.isnan(iso_error_multiplier(PowerLaw(0.5, -0.1), 100, 0.3))


def test_bootstrap_multiplier_estimate_and_interval():
    rng = np.random.default_rng(1)
    n_test = 4000
    curve = PowerLaw(0.8, 0.15)
    sft = {n: (rng.random(n_test) > curve(n)).astype(float) for n in (100, 200, 400, 800, 1600)}
    method = (rng.random(n_test) > curve(800)).astype(float)  # method on 200 matches SFT on 800
    ci = bootstrap_multiplier(sft, 200, method, n_boot=300, seed=0)
    assert ci.low < ci.estimate < ci.high
    assert ci.low < 4.0 < ci.high
    assert 2.0 < ci.estimate < 8.0
    assert ci.n_undefined == 0


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
])
def test_verdict_rules(low, high, direction, null, expected):
    assert verdict(Interval(0.0, low, high), direction, null=null) == expected
    assert verdict((low, high), direction, null=null) == expected


def test_verdict_rejects_bad_direction():
    with pytest.raises(ValueError, match="direction"):
        verdict((0.1, 0.2), "up")
