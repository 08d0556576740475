"""Intervals, power-law fits, iso-error multipliers and verdicts for the findings report.

Every number in `figures/FINDINGS.md` comes with a 95% interval and a verdict; this module makes
both, the same way for every claim:

- `bootstrap_ci`, `diff_ci`: percentile bootstrap of a statistic / a difference of means.
- `binomial_ci`: Wilson score interval of an accuracy.
- `fit_power_law`: err = a * n^(-b), least squares in log-log space (Setlur et al. 2024, Fig. 2).
- `iso_error_multiplier`: the 2x / 8x of Setlur et al.: a method trained on n problems reaches an
  error that SFT (on teacher positives) reaches on m problems, read off the fitted SFT curve;
  the multiplier is m / n.
- `bootstrap_multiplier`: a CI for that multiplier by a paired bootstrap over TEST PROBLEMS
  (every model is scored on the same test set, so one resample of problem indices is applied to
  every curve point and to the method at once); the training runs themselves are not resampled.
- `verdict`: reproduced / not reproduced / inconclusive from a CI and the claimed direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import norm

Direction = Literal["greater", "less"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    n_undefined: int = 0  # bootstrap resamples where the statistic was undefined (left out)

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


@dataclass(frozen=True)
class PowerLaw:
    """err(n) = a * n^(-b)."""

    a: float
    b: float

    def __call__(self, n: float | np.ndarray) -> float | np.ndarray:
        return self.a * np.power(n, -self.b)

    def inverse(self, err: float) -> float:
        """The n at which the curve reaches `err` (nan when b <= 0: the curve never falls)."""
        if self.b <= 0 or err <= 0:
            return math.nan
        return (self.a / err) ** (1.0 / self.b)


def _as_array(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    return arr


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_ci(values: Sequence[float], stat: Callable[[np.ndarray], float] = np.mean,
                 n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of `stat(values)` (resampling values with replacement)."""
    arr = _as_array(values, "values")
    _check_level(level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    boots = np.array([stat(arr[i]) for i in idx], dtype=float)
    return Interval(float(stat(arr)), *_percentiles(boots, level), level=level)


def diff_ci(a: Sequence[float], b: Sequence[float], *, paired: bool = False, n_boot: int = 2000,
            seed: int = 0, level: float = 0.95) -> Interval:
    """Bootstrap interval of mean(a) - mean(b).

    paired=True resamples index pairs (a[i], b[i]) together: use it when both were measured on
    the same items (two models on one test set); otherwise a and b are resampled independently.
    """
    xa, xb = _as_array(a, "a"), _as_array(b, "b")
    _check_level(level)
    if paired and xa.size != xb.size:
        raise ValueError(f"paired diff_ci needs equal lengths, got {xa.size} and {xb.size}")
    rng = np.random.default_rng(seed)
    if paired:
        idx = rng.integers(0, xa.size, size=(n_boot, xa.size))
        boots = xa[idx].mean(axis=1) - xb[idx].mean(axis=1)
    else:
        boots = (xa[rng.integers(0, xa.size, size=(n_boot, xa.size))].mean(axis=1)
                 - xb[rng.integers(0, xb.size, size=(n_boot, xb.size))].mean(axis=1))
    return Interval(float(xa.mean() - xb.mean()), *_percentiles(boots, level), level=level)


def binomial_ci(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval of a proportion successes / n."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"binomial_ci needs 0 <= successes <= n and n > 0, got {successes}/{n}")
    _check_level(level)
    z = float(norm.ppf(1 - (1 - level) / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), level=level)


def fit_power_law(n: Sequence[float], err: Sequence[float]) -> PowerLaw:
    """Fit err = a * n^(-b) by least squares on log(err) = log(a) - b log(n)."""
    xn, xe = _as_array(n, "n"), _as_array(err, "err")
    if xn.size != xe.size:
        raise ValueError(f"n and err differ in length ({xn.size} vs {xe.size})")
    if np.any(xn <= 0) or np.any(xe <= 0):
        raise ValueError("fit_power_law needs n > 0 and err > 0 (a zero error has no logarithm)")
    if np.unique(xn).size < 2:
        raise ValueError("fit_power_law needs at least two distinct values of n")
    slope, intercept = np.polyfit(np.log(xn), np.log(xe), deg=1)
    return PowerLaw(a=float(np.exp(intercept)), b=float(-slope))


def iso_error_multiplier(sft_fit: PowerLaw, n_method: float, err_method: float) -> float:
    """m / n_method, where m is the n at which the SFT curve reaches `err_method`.

    2.0 means the method on n problems matches SFT on 2n problems. nan when the SFT curve does not
    fall (b <= 0) or err_method <= 0. m may lie beyond the largest n the curve was fitted on: the
    value is then an extrapolation, which the caller should say.
    """
    if n_method <= 0:
        raise ValueError(f"n_method must be positive, got {n_method}")
    return sft_fit.inverse(err_method) / n_method


def bootstrap_multiplier(sft_outcomes: Mapping[int, Sequence[float]], n_method: int,
                         method_outcomes: Sequence[float], n_boot: int = 2000, seed: int = 0,
                         level: float = 0.95) -> Interval:
    """Iso-error multiplier with a paired bootstrap CI over test problems.

    sft_outcomes: {number of training problems: per-test-problem correctness of the SFT model}
    method_outcomes: per-test-problem correctness of the method trained on n_method problems.
    Outcomes are 0/1, or per-problem means over training seeds; all arrays index the SAME test
    problems in the same order. Each resample draws test-problem indices once and applies them to
    every curve point and to the method; error = 1 - mean. Resamples whose multiplier is
    undefined (a zero error, or an SFT curve that does not fall) are left out and counted in
    `n_undefined`; the estimate uses the full data.
    """
    _check_level(level)
    if len(sft_outcomes) < 2:
        raise ValueError("bootstrap_multiplier needs SFT outcomes at two or more training sizes")
    sizes = sorted(sft_outcomes)
    table = np.array([_as_array(sft_outcomes[s], f"sft_outcomes[{s}]") for s in sizes])
    method = _as_array(method_outcomes, "method_outcomes")
    if table.shape[1] != method.size:
        raise ValueError(f"outcome arrays differ in length ({table.shape[1]} vs {method.size})")

    def multiplier(idx: np.ndarray) -> float:
        sft_err = 1 - table[:, idx].mean(axis=1)
        method_err = 1 - method[idx].mean()
        if np.any(sft_err <= 0) or method_err <= 0:
            return math.nan
        return iso_error_multiplier(fit_power_law(sizes, sft_err), n_method, method_err)

    rng = np.random.default_rng(seed)
    boots = np.array([multiplier(rng.integers(0, method.size, method.size)) for _ in range(n_boot)])
    defined = boots[~np.isnan(boots)]
    if defined.size == 0:
        raise ValueError("the multiplier is undefined in every bootstrap resample")
    return Interval(multiplier(np.arange(method.size)), *_percentiles(defined, level), level=level,
                    n_undefined=int(boots.size - defined.size))


def verdict(effect_ci: Interval | tuple[float, float], direction: Direction = "greater",
            null: float = 0.0) -> str:
    """The verdict on a directional claim, from the CI of its effect.

    direction="greater": the claim is that the effect exceeds `null` (e.g. W minus H accuracy > 0,
    or an iso-error multiplier > 1 with null=1); "less": that it falls below `null`.
    - "reproduced": the whole interval lies strictly on the claimed side of `null`;
    - "not reproduced": the whole interval lies strictly on the opposite side;
    - "inconclusive": the interval contains `null` (including an endpoint equal to it).
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    low, high = (effect_ci.low, effect_ci.high) if isinstance(effect_ci, Interval) else effect_ci
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"not an interval: ({low}, {high})")
    if direction == "less":
        low, high = 2 * null - high, 2 * null - low  # mirror around null
    if low > null:
        return "reproduced"
    if high < null:
        return "not reproduced"
    return "inconclusive"
