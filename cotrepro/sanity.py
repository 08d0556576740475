"""Verifier sanity: the gold solution of every real benchmark item should grade correct.

A verifier that fails its own gold solutions would silently depress every accuracy in the
package, so `make reproduce` starts by grading every gold solution of every local benchmark copy
and writing the pass rates to `figures/verifier_sanity.md`. Countdown ships no solutions: its
gold is found by exhaustive search (`countdown.solve`), and a puzzle with none is counted apart.
"""

from __future__ import annotations

from pathlib import Path

from cotrepro.grade import grade_problems
from cotrepro.tasks import get_task
from cotrepro.tasks.base import Problem
from cotrepro.tasks.countdown import solve
from cotrepro.tasks.mbpp import MBPPTask

SPLITS = {
    "gsm8k": ("test", "train"),
    "math500": ("test",),
    "math": ("test", "train"),
    "countdown": ("test", "cd3_test", "train"),
    "mbpp": ("prompt", "test", "validation", "train"),
}


def gold_completion(task_name: str, problem: Problem) -> str | None:
    """The completion that restates the gold solution in the form the task's extractor reads."""
    if task_name == "countdown":
        expression = solve(problem.meta["nums"], problem.meta["target"])
        return None if expression is None else f"<answer>{expression}</answer>"
    return problem.solution


def sanity_rows(datasets: tuple[str, ...], data_dir: Path, limit: int | None = None,
                workers: int | None = None, item_timeout_s: float = 60.0, program_timeout_s: float = 30.0,
                allow_code_execution: bool = False, progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Grade every gold solution; returns (one summary row per dataset and split, failing items).

    MBPP gold programs get `program_timeout_s` instead of the evaluation's 5 s: one of them needs
    2-6 s of CPU, and the table must not depend on how loaded the machine is."""
    rows, failures = [], []
    for name in datasets:
        task = MBPPTask(timeout_s=program_timeout_s) if name == "mbpp" else get_task(name)
        for split in SPLITS[name]:
            problems = task.load(split, data_dir=data_dir, limit=limit, seed=0)
            golds = [(p, gold_completion(name, p)) for p in problems]
            gradable = [(p, c) for p, c in golds if c is not None]
            graded = grade_problems(task, [p for p, _ in gradable], [c for _, c in gradable],
                                    workers=workers, item_timeout_s=item_timeout_s, progress=progress,
                                    allow_code_execution=allow_code_execution)
            passed = sum(g["correct"] for g in graded)
            n = len(graded)
            rows.append({
                "dataset": name, "split": split, "items": len(problems),
                "graded": n, "no_gold": len(problems) - n,
                "gold_pass_rate": round(passed / n, 4) if n else None,
                "parse_failures": sum(g["extracted"] is None for g in graded),
                "ungradable": sum(bool(g.get("ungradable")) for g in graded),
                "timeouts": sum(g.get("error") == "timeout" for g in graded),
            })
            failures += [{"dataset": name, "split": split, "id": p.id, "extracted": g["extracted"],
                          "error": g.get("error"), "answer": p.answer}
                         for (p, _), g in zip(gradable, graded) if not g["correct"]]
    return rows, failures
