"""Intervals for the findings report.

Every number in `figures/FINDINGS.md` comes with a 95% interval, made here the same way for
every claim (the verdict rules that read them are in `cotrepro.verdicts`). Every model is trained
with several seeds and scored on the same test problems, so outcomes are 2-D arrays (seeds,
problems) of per-problem scores (0/1, or a pass@k estimate in [0, 1]); a 1-D array is one seed.

Intervals
- `two_level_bootstrap`: the seed-aware interval. One resample draws, for each group (model)
  independently, its seed rows with replacement and averages them per problem; then ONE set of
  problem indices, shared by all groups (every model saw the same problems, so the comparison is
  paired). Resamples where the statistic is nan or +-inf are counted; above 2.5% of them the
  interval is undefined (nan ends, "inconclusive"). With one seed per group it is the paired
  problem bootstrap. `hier_diff_ci`, `hier_mean_ci`: a difference of means / a mean through it.
- `cluster_bootstrap_ci`, `cluster_share_ci`: resample clusters (test problems holding several
  traces) with replacement and pool their values; for statistics over traces or steps.
  `seeds_then_clusters_ci`: the same within each of several trained models, seeds drawn first.
- `bootstrap_ci`, `diff_ci`: percentile bootstrap of a statistic / a difference of means over
  one level of items (they condition on the trained models).
- `binomial_ci`: Wilson score interval of a proportion of independent trials.

Scaling curves and iso-error multipliers (Setlur et al. 2024) are in `cotrepro.multipliers`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

TWO_LEVEL = "two-level bootstrap (seeds, then problems)"
CLUSTER = "cluster bootstrap (problems)"
SEEDS_THEN_CLUSTERS = "two-level bootstrap (seeds, then traces)"
# Above this share of undefined resamples an interval is not reported: the defined resamples are
# then a conditional distribution (e.g. "given that the curve falls") and their percentiles would
# decide a claim the data leave open (method review section 4, bug 2).
MAX_UNDEFINED_SHARE = 0.025


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval.

    kind: how it was made, in words for reports. share_undefined: the share of bootstrap
    resamples where the statistic was undefined (n_undefined counts them); when it exceeds 2.5%
    the two-level and cluster bootstraps give nan ends.
    """

    estimate: float
    low: float
    high: float
    level: float = 0.95
    n_undefined: int = 0  # bootstrap resamples where the statistic was undefined (left out)
    kind: str = "percentile bootstrap"
    share_undefined: float = 0.0

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


def _as_array(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    return arr


def _as_outcomes(values, name: str) -> np.ndarray:
    """A (seeds, problems) array of finite scores; a 1-D array is one seed."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty (seeds, problems) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: outcomes must be finite numbers")
    return arr


def _same_problems(arrays: Mapping[str, np.ndarray]) -> int:
    widths = {name: arr.shape[1] for name, arr in arrays.items()}
    if len(set(widths.values())) != 1:
        raise ValueError(f"every group must hold the same test problems (columns), got {widths}")
    return next(iter(widths.values()))


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _check_n_boot(n_boot: int) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


def _row_counts(idx: np.ndarray, size: int) -> np.ndarray:
    """How often each of 0..size-1 occurs in each row of idx: (rows, size) float counts."""
    rows = idx.shape[0]
    flat = (idx + size * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * size).reshape(rows, size).astype(float)


def _from_boots(estimate: float, boots: np.ndarray, level: float, kind: str) -> Interval:
    """Percentile interval that counts undefined (nan, +-inf) resamples instead of hiding them."""
    undefined = ~np.isfinite(boots)
    n_undefined = int(undefined.sum())
    share = n_undefined / boots.size
    if share > MAX_UNDEFINED_SHARE or not math.isfinite(estimate):
        low = high = math.nan
    else:
        low, high = _percentiles(boots[~undefined], level)
    return Interval(float(estimate), low, high, level=level, n_undefined=n_undefined, kind=kind,
                    share_undefined=share)


# ---------------------------------------------------------------------------------------------
# One-level intervals (they condition on the trained models)


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
    kind = "paired percentile bootstrap" if paired else "percentile bootstrap"
    return Interval(float(xa.mean() - xb.mean()), *_percentiles(boots, level), level=level, kind=kind)


def binomial_ci(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval of a proportion successes / n (independent trials only: for traces
    clustered in problems use `cluster_share_ci`)."""
    from scipy.stats import norm  # lazy: the CLI imports this module and must start fast

    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"binomial_ci needs 0 <= successes <= n and n > 0, got {successes}/{n}")
    _check_level(level)
    z = float(norm.ppf(1 - (1 - level) / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), level=level, kind="Wilson")


# ---------------------------------------------------------------------------------------------
# Two-level bootstrap: seeds within each model, then test problems shared by all models


def _two_level_draws(arrays: list[np.ndarray], n_boot: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Problem indices (n_boot, problems), then per group seed counts (n_boot, seeds).

    Problems are drawn first so that with one seed per group the stream, and hence the result,
    is that of `diff_ci(paired=True)` with the same seed.
    """
    n_problems = arrays[0].shape[1]
    problems = rng.integers(0, n_problems, size=(n_boot, n_problems))
    seeds = [_row_counts(rng.integers(0, x.shape[0], size=(n_boot, x.shape[0])), x.shape[0])
             for x in arrays]
    return problems, seeds


def _two_level_means(arrays: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """Resampled grand means, (n_boot, groups), without building the resampled vectors.

    mean_j M[b, p_j] with M[b] = c_b @ X / S equals sum_s c_bs (w_b @ X_s) / (S P), where w_b
    counts how often each problem was drawn: one (n_boot, P) @ (P, seeds) product per group.
    """
    rng = np.random.default_rng(seed)
    problems, seed_counts = _two_level_draws(arrays, n_boot, rng)
    n_problems = arrays[0].shape[1]
    w = _row_counts(problems, n_problems)
    means = [((w @ x.T) * c).sum(axis=1) / (x.shape[0] * n_problems) for x, c in zip(arrays, seed_counts)]
    return np.stack(means, axis=1)


def two_level_bootstrap(groups: Mapping[str, np.ndarray],
                        stat: Callable[[dict[str, np.ndarray]], float], n_boot: int = 2000,
                        seed: int = 0, level: float = 0.95) -> Interval:
    """Two-level percentile bootstrap of `stat` over models trained with several seeds.

    groups: {name: (seeds, problems) scores}; all share the same problems in the same order, the
    number of seeds may differ. One resample: each group's seed rows are drawn with replacement
    (its own number of rows) and averaged per problem; then one set of problem indices is drawn
    and applied to every group (paired over problems). `stat` gets {name: per-problem vector}.
    The estimate is `stat` on the per-problem seed means of the full data.

    With a single seed per group this is the paired problem bootstrap (`diff_ci(paired=True)`
    for a difference of means, the same resamples for the same seed).

    Resamples where `stat` is nan or +-inf are counted (n_undefined, share_undefined). If more
    than 2.5% are undefined, or the estimate is, the ends are nan (report "inconclusive");
    otherwise the percentiles are taken over the defined resamples.
    """
    _check_level(level)
    _check_n_boot(n_boot)
    if not groups:
        raise ValueError("two_level_bootstrap needs at least one group")
    arrays = {name: _as_outcomes(x, f"groups[{name!r}]") for name, x in groups.items()}
    _same_problems(arrays)
    names, xs = list(arrays), list(arrays.values())
    rng = np.random.default_rng(seed)
    problems, seed_counts = _two_level_draws(xs, n_boot, rng)
    # A generic statistic needs the resampled vectors, so it loops over resamples; the means of
    # hier_diff_ci / hier_mean_ci take the vectorised path with the same draws.
    boots = np.empty(n_boot)
    with np.errstate(all="ignore"):
        for b in range(n_boot):
            sample = {name: ((c[b] @ x) / x.shape[0])[problems[b]]
                      for name, x, c in zip(names, xs, seed_counts)}
            boots[b] = stat(sample)
        estimate = float(stat({name: x.mean(axis=0) for name, x in arrays.items()}))
    return _from_boots(estimate, boots, level, TWO_LEVEL)


def hier_diff_ci(a, b, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """mean(a) - mean(b) for two (seeds, problems) score arrays on the same problems, by the
    two-level bootstrap (vectorised; the same resamples as `two_level_bootstrap` with groups
    {"a": a, "b": b})."""
    _check_level(level)
    _check_n_boot(n_boot)
    xa, xb = _as_outcomes(a, "a"), _as_outcomes(b, "b")
    _same_problems({"a": xa, "b": xb})
    means = _two_level_means([xa, xb], n_boot, seed)
    return _from_boots(float(xa.mean() - xb.mean()), means[:, 0] - means[:, 1], level, TWO_LEVEL)


def hier_mean_ci(a, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean score of one (seeds, problems) array, by the two-level bootstrap."""
    _check_level(level)
    _check_n_boot(n_boot)
    xa = _as_outcomes(a, "a")
    means = _two_level_means([xa], n_boot, seed)
    return _from_boots(float(xa.mean()), means[:, 0], level, TWO_LEVEL)


# ---------------------------------------------------------------------------------------------
# Cluster bootstrap: values (traces, steps) nested in clusters (test problems)


def cluster_bootstrap_ci(values: Sequence[float], clusters: Sequence, stat: Callable[[np.ndarray], float] = np.mean,
                         n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap of `stat` over clusters: draw as many clusters as there are, with
    replacement, and pool their values (traces of one problem share its difficulty, so they are
    not independent). Undefined resamples follow the 2.5% rule of `two_level_bootstrap`.
    With one value per cluster it is `bootstrap_ci` (the same resamples for the same seed)."""
    _check_level(level)
    _check_n_boot(n_boot)
    vals = _as_array(values, "values")
    labels = np.asarray(clusters)
    if labels.shape != vals.shape:
        raise ValueError(f"values and clusters differ in shape ({vals.shape} vs {labels.shape})")
    _, inverse = np.unique(labels, return_inverse=True)
    n_clusters = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    with np.errstate(all="ignore"):
        if stat is np.mean:  # pooled mean = drawn clusters' sums / their sizes: vectorised
            w = _row_counts(idx, n_clusters)
            sums = np.bincount(inverse, weights=vals, minlength=n_clusters)
            sizes = np.bincount(inverse, minlength=n_clusters).astype(float)
            boots = (w @ sums) / (w @ sizes)
        else:
            members = [vals[inverse == c] for c in range(n_clusters)]
            boots = np.array([stat(np.concatenate([members[c] for c in row])) for row in idx], dtype=float)
        estimate = float(stat(vals))
    return _from_boots(estimate, boots, level, CLUSTER)


def seeds_then_clusters_ci(clusters_by_seed: Sequence[Sequence], stat: Callable[[list], float], n_boot: int = 2000,
                           seed: int = 0, level: float = 0.95) -> Interval:
    """Two-level percentile bootstrap for clustered items of several trained models: draw as many
    seeds as there are, with replacement, then within each drawn seed as many of its clusters
    (e.g. traces, whose steps are not independent) as it has. `stat` gets the drawn cluster keys
    (a key drawn twice appears twice); the estimate is `stat` of every key. Undefined resamples
    follow the 2.5% rule of `two_level_bootstrap`."""
    _check_level(level)
    _check_n_boot(n_boot)
    groups = [list(g) for g in clusters_by_seed]
    if not groups or not all(groups):
        raise ValueError("seeds_then_clusters_ci needs at least one seed, each with at least one cluster")
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    with np.errstate(all="ignore"):
        for b in range(n_boot):
            drawn = [groups[i] for i in rng.integers(0, len(groups), size=len(groups))]
            boots[b] = stat([g[j] for g in drawn for j in rng.integers(0, len(g), size=len(g))])
        estimate = float(stat([key for g in groups for key in g]))
    return _from_boots(estimate, boots, level, SEEDS_THEN_CLUSTERS)


def cluster_share_ci(flags: Sequence[bool], clusters: Sequence, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> Interval:
    """A proportion of flagged items (e.g. traces with a false step) with a cluster bootstrap CI."""
    arr = np.asarray(flags)
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError("cluster_share_ci needs 0/1 (or boolean) flags")
    return cluster_bootstrap_ci(arr.astype(float), clusters, np.mean, n_boot=n_boot, seed=seed, level=level)
