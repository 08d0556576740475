"""Step 02: teacher traces, graded, and the matched H / G / W training sets (claims SoT-6, SoT-7).

The teacher writes `sampling.k` traces per training problem. Each is graded by the task's verifier
(through `cotrepro.grade`) and its steps are checked by `step_claims.check_steps`: a step is
valid when its arithmetic is true and every operand is a number of the question or an earlier
result (so a correctly computed step on a wrongly copied number is invalid).

- G: a trace whose final answer is correct. W: a trace whose parsed final answer is wrong (a
  trace with no answer is neither: W is "a full solution that reaches a wrong answer").
- H: the problem's human solution; Countdown has none, so its H is the solver's equation.
- S (generated tasks only): the gold solution written in the student's own step-by-step style,
  the style control of SoT-3: same content as H, the student's format.

Matched sets: only problems with an H, a G and a W are kept, one example of each per problem (the
first G and W in sampling order), up to `max_sets` problems. So the sets cover the same problems
and differ only in the trace. A step whose sets come out too small fails and is not marked done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cotrepro import claims, stats, verdicts
from cotrepro.params import param
from cotrepro.sections import ComputeSection, DataSection, ModelSpec, SamplingParams, TaskSection
from cotrepro.steps import Cost, Degenerate
from cotrepro.tasks.base import Problem
from cotrepro.tasks.step_claims import check_steps

SETS = ("H", "G", "W", "S")


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 02: which problems the teacher answers, how it samples, and the set sizes."""

    scale: Literal["micro", "smoke", "paper"] = param(help="micro, smoke or paper")
    data: DataSection = param(default_factory=DataSection, help="where the benchmarks are")
    task: TaskSection = param(default_factory=TaskSection, help="the problems (task.n_train are offered)")
    teacher: ModelSpec = param(help="the more capable model whose traces are the synthetic data")
    sampling: SamplingParams = param(default_factory=SamplingParams, help="the teacher's sampling")
    max_sets: int = param(1000, "matched problems kept (the first in problem order)", ge=1)
    min_sets: int = param(100, "fewer matched problems than this and the step fails", ge=1)
    n_boot: int = param(2000, "bootstrap resamples", ge=100)
    compute: ComputeSection = param(default_factory=ComputeSection, help="threads")


def cost(P: Params, set_size: int = 0) -> Cost:
    return Cost(teacher_tokens=P.task.n_train * P.sampling.k * P.sampling.max_new_tokens)


def sample_traces(P: Params, problems: Sequence[Problem], store, root) -> list[dict]:
    """`sampling.k` teacher traces per problem (resumable through `store`), each graded."""
    from cotrepro import specs
    from cotrepro.generate import load_for, sample
    from cotrepro.grade import grade_problems

    task = specs.get_task(P.task)
    sampling = specs.with_task_stops(P.sampling, P.task)
    model, tokenizer = load_for(sampling.backend, specs.spec_ref(P.teacher), root)
    prompts = [task.prompt(p, P.task.template) for p in problems]
    outputs = sample(model, tokenizer, prompts, sampling, store=store, model_id=f"teacher:{P.teacher.name}")
    flat = [(p, i, c) for p, completions in zip(problems, outputs) for i, c in enumerate(completions)]
    graded = grade_problems(task, [p for p, _, _ in flat], [c for _, _, c in flat], progress=False)
    return [trace_record(p, i, c, v) for (p, i, c), v in zip(flat, graded)]


def trace_record(problem: Problem, index: int, completion: str, verdict: dict) -> dict:
    """One graded trace: its final-answer verdict and the validity of its steps."""
    checks = check_steps(completion, question=problem.question)
    return {"problem_id": problem.id, "index": index, "completion": completion,
            "correct": bool(verdict["correct"]), "parsed": verdict["extracted"] is not None,
            "ungradable": bool(verdict["ungradable"]), "n_claims": len(checks),
            "n_false": sum(not c.correct for c in checks), "n_invalid": sum(not c.valid for c in checks)}


def reference_solution(task, problem: Problem) -> str | None:
    """The human trace of `problem`; for Countdown (no human solutions) the solver's equation."""
    if problem.solution:
        return problem.solution
    if task.name == "countdown":
        from cotrepro.tasks.countdown import solve

        expression = solve(problem.meta["nums"], problem.meta["target"])
        return None if expression is None else (f"{expression} = {problem.meta['target']}\n"
                                                f"<answer> {expression} </answer>")
    return None


def as_completion(prompt: str, trace: str) -> str:
    """`trace` as the completion of `prompt`: a space after a prompt that ends without one."""
    return trace if not prompt or prompt[-1].isspace() or trace[:1].isspace() else " " + trace


def build_sets(task, problems: Sequence[Problem], graded: Sequence[dict], template: str,
               max_sets: int) -> dict[str, list[dict]]:
    """Matched H, G, W (and S where the task has it) sets of {prompt, completion, problem_id}."""
    by_problem: dict[str, list[dict]] = {}
    for g in graded:
        by_problem.setdefault(g["problem_id"], []).append(g)
    sets: dict[str, list[dict]] = {name: [] for name in SETS}
    for problem in problems:
        traces = [g for g in by_problem.get(problem.id, []) if not g["ungradable"]]
        good = next((g for g in traces if g["correct"]), None)
        bad = next((g for g in traces if g["parsed"] and not g["correct"]), None)
        human = reference_solution(task, problem)
        if good is None or bad is None or human is None:
            continue
        prompt = task.prompt(problem, template)
        stepwise = problem.meta.get("stepwise")
        for name, trace in (("H", human), ("G", good["completion"]), ("W", bad["completion"]), ("S", stepwise)):
            if trace is not None:
                sets[name].append({"prompt": prompt, "completion": as_completion(prompt, trace),
                                   "problem_id": problem.id})
        if len(sets["H"]) == max_sets:
            break
    if not sets["S"]:
        del sets["S"]
    return sets


def check_sets(P: Params, graded: Sequence[dict], sets: dict[str, list[dict]]) -> None:
    """Fail in one line when the step produced nothing usable (so it is not marked done)."""
    n_correct = sum(g["correct"] for g in graded)
    n_wrong = sum(g["parsed"] and not g["correct"] for g in graded)
    if n_correct == 0:
        raise Degenerate(f"the teacher ({P.teacher.name}) solved 0 of {len(graded)} sampled traces: no G set; "
                         f"use a stronger teacher or easier problems (teacher, task)")
    if len(sets["H"]) < P.min_sets:
        raise Degenerate(f"only {len(sets['H'])} problems have an H, a G and a W trace ({n_correct} correct and "
                         f"{n_wrong} wrong traces of {len(graded)}), fewer than min_sets={P.min_sets}: raise "
                         f"task.n_train or sampling.k")


# ---------------------------------------------------------------------------------------------
# Claims


def summary(graded: Sequence[dict], sets: dict[str, list[dict]], chance: float) -> dict:
    """Teacher accuracy, set sizes, and the per-trace step validity that SoT-6/7 rest on."""
    gradable = [g for g in graded if not g["ungradable"]]
    correct = [g for g in gradable if g["correct"]]
    accuracy = stats.binomial_ci(len(correct), len(gradable))
    return {"n_traces": len(gradable), "n_correct": len(correct),
            "n_wrong": sum(g["parsed"] and not g["correct"] for g in gradable),
            "n_unparsed": sum(not g["parsed"] for g in gradable),
            "teacher_accuracy": [accuracy.estimate, accuracy.low, accuracy.high],
            "set_sizes": {name: len(examples) for name, examples in sets.items()}, "chance": chance}


def sot6_claim(graded: Sequence[dict], n_boot: int, seed: int = 0) -> dict:
    """SoT-6: mean share of valid steps in W traces (cluster bootstrap over problems)."""
    t = claims.test("SoT-6")
    wrong = [g for g in graded if g["parsed"] and not g["correct"] and not g["ungradable"] and g["n_claims"]]
    if not wrong:
        return claims.not_measured("SoT-6", "no wrong-answer trace makes a checkable step", unit="share of steps")
    valid = [1 - g["n_invalid"] / g["n_claims"] for g in wrong]
    true = [1 - g["n_false"] / g["n_claims"] for g in wrong]
    share = stats.cluster_bootstrap_ci(valid, [g["problem_id"] for g in wrong], n_boot=n_boot, seed=seed)
    arithmetic = float(np.mean(true))
    return claims.measured(
        "SoT-6", share, verdicts.verdict(share, "greater", t["threshold"]), unit="share of steps", n_test=len(wrong),
        seeds=None, chance=None, base=None,
        what=f"mean share of valid steps (true arithmetic AND operands from the question or earlier results) in "
             f"{len(wrong)} wrong-answer teacher traces; claimed: above {t['threshold']}",
        note=f"arithmetic-only share (the old, looser check): {arithmetic:.3f}")


def sot7_claim(graded: Sequence[dict], chance_landing: float, n_boot: int, seed: int = 0) -> dict:
    """SoT-7: share of G traces with an invalid step, against the share chance landing explains."""
    gradable = [g for g in graded if not g["ungradable"] and g["n_claims"]]
    correct = [g for g in gradable if g["correct"]]
    if not correct:
        return claims.not_measured("SoT-7", "no correct-answer trace makes a checkable step", unit="share of G traces")
    flawed = [float(g["n_invalid"] > 0) for g in correct]
    share = stats.cluster_bootstrap_ci(flawed, [g["problem_id"] for g in correct], n_boot=n_boot, seed=seed)
    p_invalid = float(np.mean([g["n_invalid"] > 0 for g in gradable]))
    p_correct = len(correct) / len(gradable)
    by_chance = p_invalid * chance_landing / p_correct
    return claims.measured(
        "SoT-7", share, verdicts.verdict(share, "greater", by_chance), unit="share of G traces", n_test=len(correct),
        seeds=None, chance=by_chance, base=None,
        what=f"share of {len(correct)} correct-answer teacher traces holding at least one invalid step (operand-"
             f"aware); claimed: above the {by_chance:.4f} that wrong paths landing on the gold by chance would give "
             f"({p_invalid:.3f} of traces hold an invalid step, landing rate {chance_landing:.4f})")
