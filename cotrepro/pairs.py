"""Preference pairs for DPO: random, largest edit distance, and per-step (Setlur et al. 2024).

Every builder takes, per problem id, the prompt, the correct traces and the incorrect ones, and
returns one pair per incorrect trace (so the three baselines train on the same number of pairs);
problems without a correct trace give none. A pair is
`{"prompt", "chosen", "rejected", "rejected_is_prefix", "problem_id"}`, the input of
`cotrepro.dpo.dpo`. Choices among several correct traces draw from `random.Random(seed)`, so a
seed gives the same pairs every time.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from cotrepro.stepvalues import StepValues


def _pair(problem_id: str, prompt: str, chosen: str, rejected: str, is_prefix: bool) -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "rejected_is_prefix": is_prefix,
            "problem_id": problem_id}


def random_pairs(prompts: dict[str, str], correct: dict[str, list[str]], incorrect: dict[str, list[str]],
                 seed: int = 0) -> list[dict]:
    """Standard DPO pairs: each incorrect trace (whole) against a correct trace drawn at random."""
    rng = random.Random(seed)
    return [_pair(pid, prompts[pid], rng.choice(correct[pid]), wrong, False)
            for pid in sorted(incorrect) if correct.get(pid) for wrong in incorrect[pid]]


def step_edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two traces counted in whole steps (insert, delete, substitute)."""
    previous = list(range(len(b) + 1))
    for i, step_a in enumerate(a, start=1):
        current = [i]
        for j, step_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (step_a != step_b)))
        previous = current
    return previous[-1]


def edit_distance_pairs(prompts: dict[str, str], correct: dict[str, list[str]],
                        incorrect: dict[str, list[str]], steps: Callable[[str], list[str]],
                        seed: int = 0) -> list[dict]:
    """Each incorrect trace against the correct trace farthest from it in step edit distance.

    Distance is Levenshtein over the steps `steps(trace)` returns (steps compared after stripping
    whitespace); ties go to a correct trace drawn at random.
    """
    rng = random.Random(seed)
    pairs = []
    for pid in sorted(incorrect):
        if not correct.get(pid):
            continue
        good_steps = [[s.strip() for s in steps(c)] for c in correct[pid]]
        for wrong in incorrect[pid]:
            wrong_steps = [s.strip() for s in steps(wrong)]
            distances = [step_edit_distance(wrong_steps, g) for g in good_steps]
            farthest = [c for c, d in zip(correct[pid], distances) if d == max(distances)]
            pairs.append(_pair(pid, prompts[pid], rng.choice(farthest), wrong, False))
    return pairs


def per_step_pairs(prompts: dict[str, str], correct: dict[str, list[str]],
                   values: dict[str, list[StepValues]], seed: int = 0) -> list[dict]:
    """Per-step DPO pairs: each incorrect trace, cut after its critical step, against a correct trace.

    `values[pid]` holds the step values of the incorrect traces of problem `pid`. The rejected
    side is the trace through its critical step (inclusive); it is marked as a prefix, so no EOS
    follows it, unless the critical step is the last one: then the whole trace is rejected.
    """
    rng = random.Random(seed)
    pairs = []
    for pid in sorted(values):
        if not correct.get(pid):
            continue
        for sv in values[pid]:
            cut = sv.prefixes[sv.critical_step]
            is_prefix = sv.critical_step < len(sv.steps) - 1
            pairs.append(_pair(pid, prompts[pid], rng.choice(correct[pid]), cut, is_prefix))
    return pairs


def negatives(samples: list[dict], per_problem: int, steps=None) -> dict[str, list[str]]:
    """Up to `per_problem` distinct wrong samples per problem, in sampling order. With `steps`
    (the task's step splitter) a sample needs at least one step: a bare answer line has no step
    to value or to cut at (a student that answers directly writes such samples)."""
    found: dict[str, list[str]] = {}
    for s in samples:
        kept = found.setdefault(s["problem_id"], [])
        if not s["correct"] and s["parsed"] and s["completion"].strip() and s["completion"] not in kept \
                and len(kept) < per_problem and (steps is None or steps(s["completion"])):
            kept.append(s["completion"])
    return {pid: traces for pid, traces in found.items() if traces}
