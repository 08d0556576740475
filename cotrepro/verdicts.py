"""Verdict rules: what an interval says about a claim.

Each rule returns "reproduced", "not reproduced" or "inconclusive", and an interval with a nan end
(undefined, see `cotrepro.stats`) decides nothing.
- `verdict`: a directional claim (the CI lies on the claimed side of a null).
- `noninferiority` / `nonsuperiority`: "A is at least as good as B" / "A does not beat B", with a
  pre-declared margin; `both`: a claim made of several parts.
- `multipliers.MultiplierInterval.decide`: a multiplier claim, read with its censored ends.
"""

from __future__ import annotations

import math
from typing import Literal

from cotrepro.stats import Interval

Direction = Literal["greater", "less"]
VERDICTS = ("reproduced", "not reproduced", "inconclusive")


def _ends(interval) -> tuple[float, float] | None:
    """(low, high), or None when an end is nan (an undefined interval decides nothing)."""
    low, high = (interval.low, interval.high) if hasattr(interval, "low") else interval
    low, high = float(low), float(high)
    if math.isnan(low) or math.isnan(high):
        return None
    if low > high:
        raise ValueError(f"not an interval: ({low}, {high})")
    return low, high


def verdict(effect_ci: Interval | tuple[float, float], direction: Direction = "greater",
            null: float = 0.0) -> str:
    """The verdict on a directional claim, from the CI of its effect.

    direction="greater": the claim is that the effect exceeds `null` (e.g. W minus H accuracy > 0,
    or an iso-error multiplier > 1 with null=1); "less": that it falls below `null`.
    - "reproduced": the whole interval lies strictly on the claimed side of `null`;
    - "not reproduced": the whole interval lies strictly on the opposite side;
    - "inconclusive": the interval contains `null` (including an endpoint equal to it), or an end
      is nan (an undefined interval, e.g. too many undefined bootstrap resamples).
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    ends = _ends(effect_ci)
    if ends is None:
        return "inconclusive"
    low, high = ends
    if direction == "less":
        low, high = 2 * null - high, 2 * null - low  # mirror around null
    if low > null:
        return "reproduced"
    if high < null:
        return "not reproduced"
    return "inconclusive"


def _check_margin(margin: float) -> None:
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")


def noninferiority(interval: Interval | tuple[float, float], margin: float) -> str:
    """The claim "A is at least as good as B", from the CI of the effect A - B (higher = better)
    and a pre-declared margin (>= 0) of negligible loss.
    - "reproduced": low > -margin (any loss is smaller than the margin);
    - "not reproduced": high < -margin (A is worse by more than the margin);
    - "inconclusive": otherwise, or an end is nan.
    """
    _check_margin(margin)
    return verdict(interval, "greater", null=-margin)


def nonsuperiority(interval: Interval | tuple[float, float], margin: float) -> str:
    """The claim "A does not beat B", from the CI of the gain A - B (higher = A better) and a
    pre-declared margin (>= 0) of negligible gain. An interval that is merely wide does not pass.
    - "reproduced": high < margin (any gain is smaller than the margin);
    - "not reproduced": low > margin (A beats B by more than the margin);
    - "inconclusive": otherwise, or an end is nan.
    """
    _check_margin(margin)
    return verdict(interval, "less", null=margin)


def both(*verdicts: str) -> str:
    """The verdict on a claim made of parts: "reproduced" only if every part is; "not reproduced"
    if any part is not reproduced; otherwise "inconclusive"."""
    if not verdicts:
        raise ValueError("both() needs at least one verdict")
    for v in verdicts:
        if v not in VERDICTS:
            raise ValueError(f"not a verdict: {v!r} (expected one of {VERDICTS})")
    if any(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "inconclusive"
