"""Scaling curves of Setlur et al. 2024: power laws, and iso-error multipliers read off SFT's curve.

- `fit_power_law`, `power_law_fit_check`: err = a * n^(-b), least squares in log-log space, with
  residuals and R^2 for reporting the fit's quality; `exponent_ci`: b with a two-level interval.
- `monotone_errors`, `iso_error_n`, `multiplier`: the 2x / 8x. A method trained on n problems
  reaches an error that SFT reaches on m problems; m is read off SFT's MEASURED error curve
  (made non-increasing by pool-adjacent-violators, then interpolated linearly in log n - log err
  between rungs), so a method identical to SFT gets exactly 1. Read-offs outside the ladder are
  censored: 0 below the smallest rung, inf above the largest; they are never extrapolated.
- `curve_gain`: accuracy at the largest rung minus the smallest: a multiplier is askable only
  where the curve it is read off falls (claims v4).
- `bootstrap_multiplier`: two-level interval of m / n (`stats.two_level_bootstrap`'s resampling),
  keeping every resample, censored ones included, as a `MultiplierInterval` that knows the
  ladder it was read from and decides a claim only where the censoring still allows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cotrepro.stats import (TWO_LEVEL, Interval, _as_array, _as_outcomes, _check_level,
                            _check_n_boot, _from_boots, _same_problems, _two_level_means, hier_diff_ci)


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
        try:
            return (self.a / err) ** (1.0 / self.b)
        except OverflowError:  # a tiny b sends the read-off past any float
            return math.inf


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


def power_law_fit_check(sizes: Sequence[float], errors: Sequence[float]) -> dict:
    """The fit of `fit_power_law` with its quality, for reports.

    Returns {"a", "b", "residuals": log(err) - log(fit) per size, "r2": R^2 in log space}.
    R^2 is nan when the errors are all equal (nothing to explain). A systematic sign pattern in
    the residuals (e.g. + - - +) means the curve bends, e.g. it saturates at an error floor.
    """
    fit = fit_power_law(sizes, errors)
    log_err = np.log(_as_array(errors, "errors"))
    residuals = log_err - np.log(fit(_as_array(sizes, "sizes")))
    total = float(((log_err - log_err.mean()) ** 2).sum())
    r2 = 1 - float((residuals ** 2).sum()) / total if total > 0 else math.nan
    return {"a": fit.a, "b": fit.b, "residuals": [float(r) for r in residuals], "r2": r2}


def _slopes(log_sizes: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Power-law exponent b per row of errors (rows, sizes); nan where an error is not > 0."""
    x = log_sizes - log_sizes.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(np.where(errors > 0, errors, np.nan))
    return -((y - y.mean(axis=1, keepdims=True)) @ x) / (x @ x)


def exponent_ci(curve: Mapping[int, np.ndarray], n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                others: Mapping[int, np.ndarray] | None = None) -> Interval:
    """The exponent b of err = a * n^(-b) (least squares in log-log space over the sizes), with a
    two-level bootstrap interval.

    curve: {training size: (seeds, problems) scores}; error = 1 - mean score. Every size is a
    group of `two_level_bootstrap` (its seeds drawn independently, the problems shared).
    others: a second curve on the same problems; the statistic is then b(curve) - b(others).
    A resample with a zero error at some size has no exponent: it is counted as undefined, and
    above 2.5% of such resamples (or a zero error in the data) the ends are nan.
    """
    _check_level(level)
    _check_n_boot(n_boot)
    parts = [dict(curve)] + ([dict(others)] if others else [])
    for part in parts:
        if len(part) < 2:
            raise ValueError("exponent_ci needs scores at two or more training sizes")
    arrays, logs = [], []
    for part in parts:
        sizes = sorted(part)
        if sizes[0] <= 0:
            raise ValueError(f"training sizes must be positive, got {sizes}")
        logs.append(np.log(np.asarray(sizes, dtype=float)))
        arrays += [_as_outcomes(part[n], f"curve[{n}]") for n in sizes]
    _same_problems({str(i): x for i, x in enumerate(arrays)})
    means = _two_level_means(arrays, n_boot, seed)
    full = np.array([[x.mean() for x in arrays]])

    def b(scores: np.ndarray) -> np.ndarray:
        k = logs[0].size
        value = _slopes(logs[0], 1 - scores[:, :k])
        if len(logs) > 1:
            value = value - _slopes(logs[1], 1 - scores[:, k:])
        return value

    return _from_boots(float(b(full)[0]), b(means), level, TWO_LEVEL)


# ---------------------------------------------------------------------------------------------
# Iso-error multipliers, read off SFT's measured curve


def _pava_nonincreasing(y: Sequence[float]) -> list[float]:
    """Pool adjacent violators: the non-increasing least-squares fit of y (equal weights).
    A point that is not pooled keeps its exact value, so an identical method reads off exactly."""
    sums: list[float] = []
    counts: list[int] = []
    for v in y:
        sums.append(float(v))
        counts.append(1)
        while len(sums) > 1 and sums[-2] / counts[-2] < sums[-1] / counts[-1]:
            s, c = sums.pop(), counts.pop()
            sums[-1] += s
            counts[-1] += c
    out: list[float] = []
    for s, c in zip(sums, counts):
        out += [s / c] * c
    return out


def _ladder(sizes: Sequence[float], errors: Sequence[float]) -> tuple[list[float], list[float]]:
    xs, xe = _as_array(sizes, "sizes"), _as_array(errors, "errors")
    if xs.size != xe.size:
        raise ValueError(f"sizes and errors differ in length ({xs.size} vs {xe.size})")
    if np.any(xs <= 0) or np.any(np.diff(xs) <= 0):
        raise ValueError(f"sizes must be positive and strictly increasing, got {xs.tolist()}")
    if not np.all(np.isfinite(xe)):
        raise ValueError("errors must be finite")
    return xs.tolist(), xe.tolist()


def monotone_errors(sizes: Sequence[float], errors: Sequence[float]) -> np.ndarray:
    """The non-increasing least-squares fit of `errors` over increasing `sizes` (pool adjacent
    violators): more training data is assumed not to raise SFT's error, so a measured uptick is
    read as noise and pooled with its neighbour."""
    _, xe = _ladder(sizes, errors)
    return np.array(_pava_nonincreasing(xe))


def _read_off(sizes: list[float], monotone: list[float], err: float) -> float:
    """iso_error_n on an already monotone curve."""
    if math.isnan(err):
        return math.nan
    for k, e_k in enumerate(monotone):
        if e_k <= err:
            break
    else:
        return math.inf  # below SFT's lowest error: SFT does not get there inside the ladder
    if e_k == err:
        return float(sizes[k])  # the smallest n reaching err (also on a flat stretch)
    if k == 0:
        return 0.0  # above SFT's highest error: worse than SFT at the smallest rung
    n0, n1, e0 = sizes[k - 1], sizes[k], monotone[k - 1]  # e0 > err > e_k >= 0
    if e_k > 0:
        t = (math.log(err) - math.log(e0)) / (math.log(e_k) - math.log(e0))
    else:  # a zero error has no logarithm: interpolate linearly in the error on this stretch
        t = (err - e0) / (e_k - e0)
    n = math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
    return min(max(n, n0), n1)


def iso_error_n(sizes: Sequence[float], sft_errors: Sequence[float], err: float) -> float:
    """The number of problems at which SFT's measured error curve reaches `err`.

    The curve is `monotone_errors(sizes, sft_errors)`, interpolated linearly in log(n)-log(err)
    between rungs (linearly in err on a stretch ending at error 0). math.inf when `err` is below
    SFT's lowest error, 0.0 when it is above SFT's highest; on a flat stretch the smallest n.
    """
    xs, xe = _ladder(sizes, sft_errors)
    return _read_off(xs, _pava_nonincreasing(xe), float(err))


def multiplier(sizes: Sequence[float], sft_errors: Sequence[float], n_method: float, err_method: float) -> float:
    """iso_error_n(sizes, sft_errors, err_method) / n_method: 2.0 means the method on n problems
    matches SFT on 2n. Exactly 1 for a method identical to SFT at a rung of a strictly decreasing
    curve; 0 or inf outside the ladder (censored, see `MultiplierInterval`)."""
    if n_method <= 0:
        raise ValueError(f"n_method must be positive, got {n_method}")
    return iso_error_n(sizes, sft_errors, err_method) / n_method


def _censored_percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Linear percentiles that never interpolate across a censored value (0 or inf): there the
    outer neighbour is taken (np.quantile would give nan next to inf)."""
    s = np.sort(samples)
    alpha = (1 - level) / 2
    ends = []
    for q, outer in ((alpha, 0), (1 - alpha, 1)):
        pos = q * (s.size - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        a, b = float(s[lo]), float(s[hi])
        frac = pos - lo
        if lo == hi or frac == 0:
            ends.append(a)
        elif a == 0 or b == 0 or math.isinf(a) or math.isinf(b):
            ends.append((a, b)[outer])
        else:
            ends.append(a + frac * (b - a))
    return ends[0], ends[1]


@dataclass(frozen=True)
class MultiplierInterval:
    """An iso-error multiplier with its interval and the ladder it was read from.

    range_low, range_high: the smallest and largest rung divided by n_method, the only values a
    read-off can take inside the ladder. share_below / share_above: the share of resamples whose
    read-off fell below the smallest rung (0) / above the largest (inf); they are kept in the
    percentiles, so an end can be 0 or inf.
    """

    estimate: float
    low: float
    high: float
    range_low: float
    range_high: float
    level: float = 0.95
    kind: str = TWO_LEVEL
    share_below: float = 0.0
    share_above: float = 0.0

    @property
    def extrapolated(self) -> bool:
        """True when the estimate or an end lies outside [range_low, range_high], including
        nan, inf and 0 (a censored read-off)."""
        return not all(self.range_low <= v <= self.range_high for v in (self.estimate, self.low, self.high))

    @property
    def n_undefined(self) -> int:
        """Compatibility with `Interval`: no resample is ever left out (censored ones count)."""
        return 0

    @property
    def share_undefined(self) -> float:
        return 0.0

    def contains(self, value: float) -> bool | None:
        """Whether the interval contains `value`. A censored end (0: below the smallest rung,
        inf: above the largest) still decides it for a `value` inside the ladder: [1.5, inf]
        contains 2 when the ladder reaches past 2. None for a value outside the ladder."""
        if not self.range_low <= value <= self.range_high or math.isnan(self.low) or math.isnan(self.high):
            return None
        return self.low <= value <= self.high

    def decide(self, null: float = 1.0) -> str:
        """"reproduced" if the interval lies above `null`, "not reproduced" if below, else
        "inconclusive". Censored ends keep their meaning: an upper end of inf (above the largest
        rung) is above any null inside the ladder, a lower end of 0 below any; so [1.5, inf] is
        above 1, [0, 0.8] below it, and [0, inf] decides nothing. A null outside the ladder
        cannot be decided."""
        if not self.range_low <= null <= self.range_high or math.isnan(self.low) or math.isnan(self.high):
            return "inconclusive"
        if self.low > null:
            return "reproduced"
        if self.high < null:
            return "not reproduced"
        return "inconclusive"

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


def bootstrap_multiplier(sft: Mapping[int, np.ndarray], method: np.ndarray, n_method: int,
                         n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> MultiplierInterval:
    """Iso-error multiplier of `method` (trained on n_method problems) with a two-level interval.

    sft: {ladder size: (seeds, problems) scores of SFT}; method: (seeds, problems) scores on the
    same problems; error = 1 - mean score. Each resample draws the seeds of every rung and of the
    method independently and one set of problem indices for all (as `two_level_bootstrap`), then
    reads the method's error off the resampled SFT curve (`multiplier`). No resample is dropped:
    one reading outside the ladder is 0 or inf and stays in the percentiles, so a curve that does
    not fall gives a censored interval (`extrapolated`), never one conditional on the resamples
    where it fell; `MultiplierInterval.decide` reads its censored ends.
    """
    _check_level(level)
    _check_n_boot(n_boot)
    if n_method <= 0:
        raise ValueError(f"n_method must be positive, got {n_method}")
    if len(sft) < 2:
        raise ValueError("bootstrap_multiplier needs SFT scores at two or more training sizes")
    sizes = sorted(sft)
    arrays = [_as_outcomes(sft[n], f"sft[{n}]") for n in sizes] + [_as_outcomes(method, "method")]
    _same_problems({str(i): x for i, x in enumerate(arrays)})
    xs, _ = _ladder(sizes, [0.0] * len(sizes))

    def read(errors: np.ndarray) -> float:
        return _read_off(xs, _pava_nonincreasing(errors[:-1]), float(errors[-1])) / n_method

    errors = 1 - _two_level_means(arrays, n_boot, seed)
    boots = np.array([read(row) for row in errors])
    estimate = read(1 - np.array([x.mean() for x in arrays]))
    low, high = _censored_percentiles(boots, level)
    return MultiplierInterval(estimate, low, high, range_low=xs[0] / n_method, range_high=xs[-1] / n_method,
                              level=level, share_below=float(np.mean(boots == 0)),
                              share_above=float(np.mean(np.isinf(boots))))


def curve_gain(curve: Mapping[int, np.ndarray], n_boot: int = 2000, seed: int = 0) -> Interval:
    """Mean score at the largest rung minus at the smallest, two-level interval (`hier_diff_ci`):
    above 0 when the curve falls in error across the ladder."""
    return hier_diff_ci(curve[max(curve)], curve[min(curve)], n_boot=n_boot, seed=seed)
