"""Step 00: the gold solution of every real benchmark item should grade correct.

A verifier that fails its own gold solutions would silently depress every accuracy in the
package, so `make reproduce` starts by grading every gold solution of every local benchmark copy
(`cotrepro.sanity`) and writing the pass rates to `figures/verifier_sanity.md`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cotrepro.steps import Cost
from cotrepro.params import param
from cotrepro.sections import DataSection

DATASETS = ("gsm8k", "math500", "math", "countdown", "mbpp")


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 00: which benchmarks are graded and with which limits."""

    scale: Literal["micro", "smoke", "paper"] = param(help="micro, smoke or paper")
    data: DataSection = param(default_factory=DataSection, help="where the benchmarks are")
    datasets: tuple[str, ...] = param(DATASETS, "datasets whose gold solutions are graded", choices=DATASETS)
    limit: int | None = param(None, "items per dataset and split (null = all)", ge=1)
    item_timeout_s: float = param(60.0, "hard per-item time limit of the grader", gt=0)
    program_timeout_s: float = param(30.0, "time limit of one MBPP gold program (the evaluation limit is 5 s, but "
                                           "one gold program needs 2-6 s of CPU: on a loaded machine a 5 s limit "
                                           "would make the table depend on the load)", gt=0)
    allow_code_execution: bool = param(False, "run the MBPP gold programs (in the contained code runner)")
    workers: int | None = param(None, "grading processes (null = one per core)", ge=1)


def cost(P: Params, set_size: int = 0) -> Cost:
    return Cost(notes=("grading only: every gold solution of " + ", ".join(P.datasets)
                       + (f" (first {P.limit} per split)" if P.limit else ""),))
