"""Step 02: teacher traces, graded, and the equal-size H / G / W training sets (SoT-6, SoT-7).

The teacher writes k traces per training problem; each is graded by the task's verifier and its
arithmetic claims ("expr = c") are checked with `arith.check_steps` (which reads claims in any
text, so it serves GSM8K and MATH traces too; code has none).

- G: a trace whose final answer is correct.
- W: a trace with a final answer that is wrong. Traces with no parsable answer are in neither
  set: W means "a full solution that reaches a wrong answer", not a truncated or broken output.
- H: the problem's human solution (`Problem.solution`); Countdown has none in the data, so H is
  the exhaustive solver's equation (`countdown.solve`) written as one step plus the answer tags.

Equal sizes by MATCHING: only problems with at least one G trace, one W trace and an H solution
are kept, and each set gets exactly one example per kept problem (the first G and first W in
sampling order). So H, G and W cover the same problems and differ only in the trace, which is
the comparison the claims are about. (Subsampling each set to the smallest size would compare
different problems: G would lean to the teacher's easy problems, W to its hard ones.) The cost:
the kept problems are those the teacher gets sometimes right and sometimes wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from cotrepro import stats
from cotrepro.experiments.sot import claim
from cotrepro.generate import SamplingParams, sample
from cotrepro.tasks.arith import check_steps
from cotrepro.tasks.base import Problem
from cotrepro.tasks.prompts import get_template

SETS = ("H", "G", "W")


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


def grade(task, problem: Problem, index: int, completion: str) -> dict:
    """One graded trace: final-answer verdict and the truth of its arithmetic claims."""
    verdict = task.verify(problem, completion)
    checks = check_steps(completion)
    return {"problem_id": problem.id, "index": index, "completion": completion, "correct": verdict.correct,
            "parsed": verdict.extracted is not None, "ungradable": verdict.ungradable,
            "n_claims": len(checks), "n_false": sum(not c.correct for c in checks)}


def sample_traces(model, tokenizer, task, problems: Sequence[Problem], *, template: str,
                  sampling: SamplingParams, store=None, model_id: str = "") -> list[dict]:
    """`sampling.k` teacher traces per problem (resumable through `store`), each graded."""
    sampling = replace(sampling, stop=tuple(dict.fromkeys(sampling.stop + get_template(task.name, template).stop)))
    prompts = [task.prompt(p, template) for p in problems]
    outputs = sample(model, tokenizer, prompts, sampling, store=store, model_id=model_id, progress=False)
    return [grade(task, p, i, c) for p, completions in zip(problems, outputs) for i, c in enumerate(completions)]


def build_sets(task, problems: Sequence[Problem], graded: Sequence[dict], template: str) -> dict[str, list[dict]]:
    """Equal-size H, G, W sets of {prompt, completion, problem_id}, matched by problem (module doc)."""
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
        for name, trace in (("H", human), ("G", good["completion"]), ("W", bad["completion"])):
            sets[name].append({"prompt": prompt, "completion": as_completion(prompt, trace),
                               "problem_id": problem.id})
    return sets


def summary(graded: Sequence[dict], sets: dict[str, list[dict]], n_problems: int, k: int,
            n_boot: int = 2000, seed: int = 0) -> dict:
    """Teacher accuracy, set sizes, and the step-validity measures of SoT-6 and SoT-7."""
    gradable = [g for g in graded if not g["ungradable"]]
    correct = [g for g in gradable if g["correct"]]
    wrong = [g for g in gradable if g["parsed"] and not g["correct"]]
    accuracy = stats.binomial_ci(len(correct), len(gradable))
    # SoT-6: share of true claims per W trace (traces without a claim say nothing about steps)
    true_share = [1 - g["n_false"] / g["n_claims"] for g in wrong if g["n_claims"]]
    # SoT-7: G traces (with a claim) holding at least one false claim
    checked_g = [g for g in correct if g["n_claims"]]
    rows = [{"measure": "teacher accuracy (traces with a correct final answer)", "value": accuracy.estimate,
             "low": accuracy.low, "high": accuracy.high, "n": len(gradable)},
            {"measure": "traces per problem", "value": float(k), "low": None, "high": None, "n": n_problems}]
    rows += [{"measure": f"set size {name} (matched problems)", "value": float(len(sets[name])),
              "low": None, "high": None, "n": len(sets[name])} for name in SETS]
    claims = [not_measured("SoT-6", "share of steps", "no wrong-answer trace makes an arithmetic claim"),
              not_measured("SoT-7", "share of G traces", "no correct-answer trace makes an arithmetic claim")]
    if true_share:
        share = stats.bootstrap_ci(true_share, n_boot=n_boot, seed=seed)
        rows.append({"measure": "SoT-6 true share of arithmetic steps in W traces", "value": share.estimate,
                     "low": share.low, "high": share.high, "n": len(true_share)})
        claims[0] = claim("SoT-6", share, unit="share of steps", n=len(true_share), null=0.5,
                          what=f"mean share of true arithmetic steps ('a op b = c' claims checked exactly) "
                               f"in {len(true_share)} wrong-answer teacher traces; claimed: above half "
                               f"(most steps of a W trace are valid)")
    if checked_g:
        flawed = stats.binomial_ci(sum(g["n_false"] > 0 for g in checked_g), len(checked_g))
        rows.append({"measure": "SoT-7 G traces with at least one false step", "value": flawed.estimate,
                     "low": flawed.low, "high": flawed.high, "n": len(checked_g)})
        claims[1] = claim("SoT-7", flawed, unit="share of G traces", n=len(checked_g),
                          what=f"share of {len(checked_g)} correct-answer teacher traces that hold at least "
                               f"one false arithmetic step (Wilson interval); claimed: above 0")
    return {"rows": rows, "claims": claims, "n_correct": len(correct), "n_wrong": len(wrong),
            "n_unparsed": len(gradable) - len(correct) - len(wrong)}


def not_measured(claim_id: str, unit: str, why: str) -> dict:
    """A claims.json entry for a claim the data could not measure (no effect, no interval)."""
    return {"claim": claim_id, "effect": None, "ci": None, "unit": unit, "what": f"not measured: {why}",
            "verdict": "inconclusive", "n": 0}


def per_problem_accuracy(graded: Sequence[dict]) -> np.ndarray:
    """The teacher's share of correct traces per problem (for the histogram of step 02)."""
    by_problem: dict[str, list[bool]] = {}
    for g in graded:
        if not g["ungradable"]:
            by_problem.setdefault(g["problem_id"], []).append(g["correct"])
    return np.array([np.mean(v) for v in by_problem.values()])


def write_examples(path: str | Path, examples: Sequence[dict]) -> Path:
    """Write a training set as JSONL of {prompt, completion, problem_id} (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))
    tmp.replace(path)
    return path


def read_examples(path: str | Path) -> list[dict]:
    """A training set written by `write_examples`."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def load_sets(run, names: Sequence[str] = SETS) -> dict[str, list[dict]]:
    """The training sets stored in a step-02 run directory (`sets/<name>.jsonl`)."""
    missing = [n for n in names if not (run.path / "sets" / f"{n}.jsonl").is_file()]
    if missing:
        raise FileNotFoundError(f"{run.path}: no stored set(s) {', '.join(missing)}; run step 02 first")
    return {n: read_examples(run.path / "sets" / f"{n}.jsonl") for n in names}
