"""Step 90: every figure and table of the scale, and `FINDINGS.md`, from stored results alone.

Nothing is trained or sampled here: `cotrepro.plots.write_all` reads the run folders of the
scale's steps (`cotrepro figures` runs the same code from the command line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cotrepro.steps import Cost
from cotrepro.params import param


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 90 reads only which scale it reports."""

    scale: Literal["micro", "smoke", "paper"] = param(help="the scale whose stored results are reported")


def cost(P: Params, set_size: int = 0) -> Cost:
    return Cost(notes=("reads stored results only",))
