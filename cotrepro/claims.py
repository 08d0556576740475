"""Claim records: the one shape every step writes to its `claims.json`, and the tests fixed in advance.

`cotrepro/claims.yaml` lists each claim of the two papers with the test that decides it, written
before any run: the effect measured, the rule, and its margins (`test(claim_id)` reads them, so a
step cannot choose its margin after seeing its data). A step turns its measurement into a record
with `measured(...)`; what the data could not measure becomes `not_measured(...)`; a measurement
whose baseline is broken (an H that did not learn) becomes `not_askable(...)`, never "reproduced".

A record carries the context a reader needs to judge it: the untuned base and the chance level
in the same unit, the seeds and test problems behind it, and the kind of interval.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Any

import yaml

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not askable", "not run")


@cache
def _claims() -> tuple[dict, ...]:
    text = resources.files("cotrepro").joinpath("claims.yaml").read_text()
    return tuple(yaml.safe_load(text)["claims"])


def claim_list() -> list[dict]:
    """The claims of both papers, in order (the package's copy of shared/CLAIMS.md)."""
    return [dict(c) for c in _claims()]


def test(claim_id: str) -> dict:
    """The pre-registered test of a claim: `effect`, `rule` and its numbers (margins, thresholds)."""
    for c in _claims():
        if c["id"] == claim_id:
            return dict(c["test"])
    raise KeyError(f"no claim {claim_id!r} in claims.yaml")


def _number(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def measured(claim_id: str, interval, verdict: str, *, unit: str, what: str, n_test: int | None,
             seeds: int | None, chance: float | None = None, base: float | None = None, note: str = "",
             **extra) -> dict:
    """One claims.json row for a measured claim; `interval` is a `stats.Interval` (or None)."""
    if verdict not in VERDICTS:
        raise ValueError(f"{claim_id}: unknown verdict {verdict!r}")
    effect = low = high = None
    kind = ""
    if interval is not None:
        effect, low, high = _number(interval.estimate), _number(interval.low), _number(interval.high)
        kind = getattr(interval, "kind", "")
    return {"claim": claim_id, "effect": effect, "ci": None if low is None or high is None else [low, high],
            "ci_kind": kind, "half_width": None if low is None or high is None else (high - low) / 2,
            "unit": unit, "what": what, "verdict": verdict, "n_test": n_test, "seeds": seeds,
            "chance": _number(chance), "base": _number(base), "note": note, **extra}


def not_measured(claim_id: str, why: str, **context) -> dict:
    """A row for a claim the data could not measure (no effect, no interval): inconclusive."""
    return measured(claim_id, None, "inconclusive", unit=context.pop("unit", ""), what=f"not measured: {why}",
                    n_test=context.pop("n_test", None), seeds=context.pop("seeds", None), **context)


def not_askable(claim_id: str, interval, why: str, **context) -> dict:
    """A row whose comparison rests on a broken baseline: the effect is shown, no verdict is given."""
    what = context.pop("what")
    return measured(claim_id, interval, "not askable", what=f"{what}; NOT ASKABLE: {why}", **context)


def multiplier_verdict(m, factor: float, min_factor: float | None = None) -> str:
    """The verdict on "about `factor`x as data-efficient as SFT" from a `MultiplierInterval`:
    reproduced when it lies above 1 and contains the factor (or, with `min_factor`, lies above
    it); not reproduced when it lies below 1, or above 1 but clearly apart from the factor (below
    `min_factor` where one is given); inconclusive otherwise. Censored ends count as
    `MultiplierInterval.decide` and `contains` read them."""
    direction = m.decide(1.0)
    if direction != "reproduced":
        return direction
    if min_factor is None:
        magnitude = m.contains(factor)
        return "inconclusive" if magnitude is None else "reproduced" if magnitude else "not reproduced"
    if m.contains(factor) or m.decide(min_factor) == "reproduced":
        return "reproduced"
    return m.decide(min_factor)


def multiplier_fields(m) -> dict:
    """What a multiplier row carries beside its interval."""
    return {"extrapolated": m.extrapolated, "contains_2": m.contains(2), "contains_8": m.contains(8),
            "share_below_ladder": m.share_below, "share_above_ladder": m.share_above}


def fmt(x: float | None) -> str:
    """A number for a claim's text: "undefined" (never "nan") when it has no value."""
    return "undefined" if x is None or not math.isfinite(x) else f"{x:.3g}"


def fmt_multiplier(m) -> str:
    """A `MultiplierInterval`'s estimate for a claim's text: "2.3x", or where the read-off left
    the ladder "more than 16x" / "less than 1x"; "undefined" when it has no value."""
    if m.estimate is None or math.isnan(m.estimate):
        return "undefined"
    if m.estimate == math.inf:
        return f"more than {m.range_high:g}x"
    if m.estimate == 0:
        return f"less than {m.range_low:g}x"
    return f"{m.estimate:.3g}x"


def chance_pass_at_k(p: float, k: int) -> float:
    """pass@k of guessing the best constant answer: k tries of a guesser right with probability p
    (an upper bound for a guesser that never repeats a wrong guess)."""
    return 1 - (1 - p) ** k
