"""Step 05: accuracy against the share of corrupted steps in G traces (SoT-5).

Each G trace is corrupted at each level with each operator (`cotrepro.corrupt`; the corruption is
seeded by the trace, so every seed trains on the same corrupted set) and the student is fine-tuned
on the result. Level 0 is G itself, whatever the operator: it is trained once (key `G/s<seed>`).

"Gradual" is decided by one test fixed before any run: with accuracy averaged over operators and
seeds, per test problem,
    effect = [acc(0.25) - acc(1)] - [acc(0) - acc(0.25)],
the drop over the last three quarters of corruption minus the drop over the first quarter. A
collapse at once (most of the loss by 0.25) makes it negative; a gradual decline (for a linear one
the first quarter costs a third of the rest) makes it positive. Paired bootstrap over problems.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cotrepro import stats
from cotrepro.corrupt import corrupt
from cotrepro.experiments.sot import claim, per_problem

CLEAN = "G"
GRADUAL_LEVELS = (0.0, 0.25, 1.0)


def condition_name(operator: str, level: float) -> str:
    """The condition (store key prefix) of one corrupted set; level 0 is plain G."""
    return CLEAN if level == 0 else f"{operator}@{level:g}"


def corrupt_set(examples: Sequence[dict], task, operator: str, level: float, seed: int = 0
                ) -> tuple[list[dict], dict]:
    """(`examples` with each completion corrupted, stats of what was done)."""
    out, hit, steps, skipped = [], [], 0, 0
    for e in examples:
        result = corrupt(e["completion"], task, level, operator, seed)
        out.append({**e, "completion": result.text})
        hit.append(result.fraction_hit)
        steps += result.n_steps
        skipped += len(result.skipped)
    return out, {"operator": operator, "level": level, "n": len(out), "mean_fraction_hit": float(np.mean(hit)),
                 "steps": steps, "skipped": skipped}


def check_levels(levels: Sequence[float]) -> None:
    """The SoT-5 test reads accuracy at levels 0, 0.25 and 1: refuse a grid without them."""
    missing = [lv for lv in GRADUAL_LEVELS if lv not in levels]
    if missing:
        raise ValueError(f"sot.levels must include {', '.join(f'{x:g}' for x in missing)} (the SoT-5 test)")


def level_outcomes(records: Sequence[dict], operators: Sequence[str], level: float) -> tuple[list[str], np.ndarray]:
    """Per test problem, correctness at `level` averaged over operators and seeds."""
    per_op = [per_problem(records, condition_name(op, level)) for op in operators]
    ids = per_op[0][0]
    if any(i != ids for i, _ in per_op):
        raise ValueError("corrupted conditions were evaluated on different test problems")
    return ids, np.mean([x for _, x in per_op], axis=0)


def gradual_claim(records: Sequence[dict], operators: Sequence[str], n_boot: int = 2000, seed: int = 0) -> dict:
    """SoT-5 by the test of the module docstring."""
    ids, clean = level_outcomes(records, operators, 0.0)
    _, quarter = level_outcomes(records, operators, 0.25)
    _, full = level_outcomes(records, operators, 1.0)
    effect = (quarter - full) - (clean - quarter)
    interval = stats.bootstrap_ci(effect, n_boot=n_boot, seed=seed)
    n_seeds = len({r["seed"] for r in records if r["condition"] == CLEAN})
    return claim("SoT-5", interval, unit="accuracy", n=len(ids),
                 what=f"[acc(0.25) - acc(1)] - [acc(0) - acc(0.25)] over shares of corrupted G steps, accuracy "
                      f"averaged over operators ({', '.join(operators)}) and {n_seeds} seed(s), {len(ids)} test "
                      f"problems, bootstrap over problems; claimed: above 0 (the first quarter of corruption "
                      f"costs less than the other three quarters)",
                 levels={f"{lv:g}": float(x.mean()) for lv, x in zip(GRADUAL_LEVELS, (clean, quarter, full))})


def design(g_examples: Sequence[dict], task, problems_by_id: dict, operators: Sequence[str],
           levels: Sequence[float], seed: int = 0) -> tuple[dict[str, list[dict]], dict]:
    """(condition -> corrupted training set, a record of every set: operator, level, share of steps
    hit, share of traces whose final answer still verifies). Level 0 appears once, as G."""
    check_levels(levels)
    sets: dict[str, list[dict]] = {CLEAN: list(g_examples)}
    specs = [{"condition": CLEAN, "operator": "none", "level": 0.0, "mean_fraction_hit": 0.0, "still_correct": 1.0}]
    for level in (lv for lv in levels if lv > 0):
        for operator in operators:
            examples, info = corrupt_set(g_examples, task, operator, level, seed)
            still = np.mean([task.verify(problems_by_id[e["problem_id"]], e["completion"]).correct for e in examples])
            name = condition_name(operator, level)
            sets[name] = examples
            specs.append({"condition": name, **info, "still_correct": float(still)})
    return sets, {"operators": list(operators), "levels": list(levels), "sets": specs}
