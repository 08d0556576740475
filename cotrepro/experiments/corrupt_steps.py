"""Step 05: accuracy against the share of corrupted steps in G traces (claim SoT-5).

Each G trace of step 02 is corrupted at each level (the share of its steps hit; the final-answer
line is not a step, so even `delete` at 100% leaves a gradable answer) with each operator of
`cotrepro.corrupt`; the corruption is seeded by the trace, so every training seed sees the same
corrupted set. The student is fine-tuned on each set over the step's seeds; level 0 is G itself
(the same fine-tune as step 03's G with those seeds, shared through the job cache).

The test, fixed in `cotrepro/claims.yaml` (accuracy averaged over operators; two-level intervals):
D = acc(0) - acc(1) above 0 (accuracy does fall), E = acc(0.25) - (acc(0) + acc(1)) / 2 above 0
(less than half the total drop has happened when a quarter of the steps are corrupted), and
R = acc(0.25) - acc(0) below the stated margin (a little corruption does not help). A collapse at
once makes E negative; a rise with corruption violates D or R: neither can pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cotrepro import claims, stats, verdicts
from cotrepro.conditions import matrix
from cotrepro.corrupt import ROUNDINGS, TEXT_OPERATORS, corrupt
from cotrepro.steps import Cost
from cotrepro.params import Invalid, param
from cotrepro.sections import ComputeSection, DataSection, EvalSection, FinetuneSection, ModelSpec, TaskSection

CLEAN = "G"
TEST_LEVELS = (0.0, 0.25, 1.0)


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 05: the corruption grid, the seeds, and how the student is fine-tuned and evaluated."""

    scale: Literal["micro", "smoke", "paper"] = param(help="micro, smoke or paper")
    data: DataSection = param(default_factory=DataSection, help="where the benchmarks are")
    task: TaskSection = param(default_factory=TaskSection, help="the test problems (task.n_test)")
    student: ModelSpec = param(help="the base model that is fine-tuned")
    finetune: FinetuneSection = param(default_factory=FinetuneSection, help="how the student is fine-tuned")
    eval: EvalSection = param(default_factory=EvalSection, help="greedy evaluation")
    traces_from: str = param(help="params file of step 02, whose G set is corrupted (relative to this file's folder)")
    operators: tuple[str, ...] = param(("mixed",), "corruption operators (cotrepro.corrupt); mixed draws one per step",
                                       choices=("mixed", *TEXT_OPERATORS, "comparison", "off_by_one", "arith_swap",
                                                "delete_statement", "return_value"))
    levels: tuple[float, ...] = param((0.0, 0.125, 0.25, 0.5, 0.75, 1.0), "shares of corrupted steps; must hold "
                                      "0, 0.25 and 1 (the SoT-5 test reads those)", ge=0.0, le=1.0)
    rounding: str = param("stochastic", "how a trace's count of corrupted steps (level x steps) is rounded "
                          "(cotrepro.corrupt): stochastic keeps the share over the set at the level, which half_up "
                          "cannot for traces of a few steps", choices=ROUNDINGS)
    seeds: tuple[int, ...] = param((0, 1, 2), "training seeds of every level", ge=0)
    n_boot: int = param(2000, "bootstrap resamples", ge=100)
    compute: ComputeSection = param(default_factory=ComputeSection, help="parallel jobs and threads")

    def check(self) -> None:
        missing = [lv for lv in TEST_LEVELS if lv not in self.levels]
        if missing:
            raise Invalid("levels", f"must include {', '.join(f'{x:g}' for x in missing)} (the SoT-5 test reads "
                                    f"levels 0, 0.25 and 1)")
        if list(self.levels) != sorted(set(self.levels)):
            raise Invalid("levels", f"must be increasing without repeats, got {list(self.levels)}")


def condition_name(operator: str, level: float) -> str:
    """The condition of one corrupted set; level 0 is plain G whatever the operator."""
    return CLEAN if level == 0 else f"{operator}@{level:g}"


def corrupted_sets(g_examples: Sequence[dict], task, operators: Sequence[str], levels: Sequence[float],
                   seed: int = 0, rounding: str = "half_up") -> tuple[dict[str, list[dict]], list[dict]]:
    """(condition -> corrupted training set, one record per set: operator, level, share hit)."""
    sets: dict[str, list[dict]] = {CLEAN: list(g_examples)}
    design = [{"condition": CLEAN, "operator": "none", "level": 0.0, "mean_fraction_hit": 0.0, "skipped": 0}]
    for level in (lv for lv in levels if lv > 0):
        for operator in operators:
            examples, hit, skipped = [], [], 0
            for e in g_examples:
                result = corrupt(e["completion"], task, level, operator, seed, rounding)
                examples.append({**e, "completion": result.text})
                hit.append(result.fraction_hit)
                skipped += len(result.skipped)
            name = condition_name(operator, level)
            sets[name] = examples
            design.append({"condition": name, "operator": operator, "level": level,
                           "mean_fraction_hit": float(np.mean(hit)), "skipped": skipped})
    return sets, design


def level_matrix(results: Mapping[str, list[dict]], operators: Sequence[str], level: float) -> np.ndarray:
    """(seeds, problems) accuracy at `level`, averaged over operators."""
    return np.mean([matrix(results[condition_name(op, level)]) for op in operators], axis=0)


def gradual_claim(results: Mapping[str, list[dict]], operators: Sequence[str], chance: float, base: float,
                  n_boot: int, seed: int = 0) -> dict:
    """SoT-5 by the test of the module docstring."""
    margin = claims.test("SoT-5")["margin"]
    groups = {f"{lv:g}": level_matrix(results, operators, lv) for lv in TEST_LEVELS}
    drop = stats.two_level_bootstrap(groups, lambda g: g["0"].mean() - g["1"].mean(), n_boot=n_boot, seed=seed)
    early = stats.two_level_bootstrap(groups, lambda g: g["0.25"].mean() - (g["0"].mean() + g["1"].mean()) / 2,
                                      n_boot=n_boot, seed=seed)
    rise = stats.two_level_bootstrap(groups, lambda g: g["0.25"].mean() - g["0"].mean(), n_boot=n_boot, seed=seed)
    verdict = verdicts.both(verdicts.verdict(drop, "greater", 0.0), verdicts.verdict(early, "greater", 0.0),
                            verdicts.nonsuperiority(rise, margin))
    seeds = groups["0"].shape[0]
    n_test = groups["0"].shape[1]
    return claims.measured(
        "SoT-5", early, verdict, unit="accuracy", n_test=n_test, seeds=seeds, chance=chance, base=base,
        what=f"E = acc(0.25) - (acc(0) + acc(1))/2 over shares of corrupted G steps ({', '.join(operators)}), "
             f"{seeds} seeds, {n_test} test problems, {early.kind}; with D = acc(0) - acc(1) = {drop} and "
             f"R = acc(0.25) - acc(0) = {rise}; claimed: D > 0, E > 0 and R < {margin}",
        drop=[drop.estimate, drop.low, drop.high], rise=[rise.estimate, rise.low, rise.high],
        levels={f"{lv:g}": float(level_matrix(results, operators, lv).mean()) for lv in sorted(
            {float(k.split("@")[1]) for k in results if "@" in k} | {0.0})})


def cost(P: Params, set_size: int) -> Cost:
    runs = len(P.seeds) * (1 + len(P.operators) * (len(P.levels) - 1))
    return Cost(fine_tunes=runs, train_examples=int(runs * set_size * P.finetune.train.epochs),
                generated_tokens=(runs + 1) * P.task.n_test * P.eval.max_new_tokens)
