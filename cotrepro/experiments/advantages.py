"""Step 07: what Monte Carlo step advantages flag (Setlur et al. 2024, claim ST-6).

The SFT model of step 06 (at `size` problems) samples traces for training problems; every step of
every trace gets its exhaustive Monte Carlo value (`scaling.batched_step_values`, strategy
"exhaustive", the bare prompt valued too so the first step has an advantage). Three trace kinds:

- correct: the SFT model's correct samples;
- probe: a correct sample with ONE idle step inserted (a true operation on two numbers of the
  question whose result is used nowhere: a known step that makes no progress);
- incorrect: wrong samples (for the distribution of advantages and of critical steps).

An IDLE (spurious) step, measurable in any trace whose steps make "expr = c" claims
(`arith.check_steps`): a step whose claims are all true and that makes no progress, i.e. its
result c is neither an operand of a later claim nor the final answer, or it repeats the
expression of an earlier step. A PROGRESS step is a step with true claims that is not idle.
Steps without claims (the answer line) or with a false claim are neither.

ST-6 compares, over the steps of correct and probe traces, the share with a LOW advantage
(A_i <= -low_advantage) among idle steps and among progress steps: the claim is that the first
is larger (a bootstrap interval of the difference, steps resampled within each group).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import numpy as np

from cotrepro import stats
from cotrepro.params import param
from cotrepro.tasks.arith import check_steps

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class AdvantageParams:
    """Step 07: which traces get exhaustive step values, and what counts as a low advantage."""

    scaling_from: str = param("06_scale_synthetic_data.yaml", "params file of step 06 (relative to this "
                              "params file's folder): its SFT model and stored step values are used")
    size: int | None = param(None, "ladder size of the SFT model analysed (null = step 06's compare_size)", ge=1)
    n_problems: int = param(64, "training problems the SFT model samples traces for", ge=1)
    samples: int = param(4, "samples per problem (temperature scaling.self_temperature of step 06)", ge=1)
    max_correct: int = param(48, "correct traces valued (the first in problem order)", ge=1)
    max_incorrect: int = param(32, "incorrect traces valued", ge=0)
    probes: int = param(32, "correct traces valued again with one inserted idle step", ge=0)
    low_advantage: float = param(0.1, "a step's advantage is LOW when A_i <= -this (set before the run)", ge=0.0)
    n_boot: int = param(2000, "bootstrap resamples", ge=100)


def idle_flags(steps: list[str], final_answer: str | None) -> list[bool | None]:
    """Per step: True = idle (true claims, no progress), False = progress, None = neither (see
    the module docstring)."""
    parsed = [check_steps(s) for s in steps]
    operands_after: list[set[str]] = []
    seen: set[str] = set()
    for i in range(len(steps)):
        later = set()
        for claims in parsed[i + 1:]:
            for c in claims:
                later.update(_canonical(x) for x in _NUMBER.findall(c.expression))
        operands_after.append(later)
    flags: list[bool | None] = []
    for i, claims in enumerate(parsed):
        if not claims or not all(c.correct for c in claims):
            flags.append(None)
            continue
        result = _canonical(str(claims[-1].claimed))
        expressions = {c.expression.replace(" ", "") for c in claims}
        repeat = bool(expressions & seen)
        seen |= expressions
        used = result in operands_after[i] or (final_answer is not None and result == _canonical(final_answer))
        flags.append(repeat or not used)
    return flags


def _canonical(number: str) -> str:
    try:
        value = float(number)
    except ValueError:
        return number
    return str(int(value)) if value == int(value) else str(value)


def insert_idle_step(question: str, trace: str, rng: random.Random, max_tries: int = 50) -> tuple[str, int] | None:
    """(trace with one idle step inserted, its step index), or None if no idle step fits.

    The idle step is "a + b = c" or "a * b = c" on two numbers of the question, with a result that
    no later step uses and that is not the final answer; it goes before a random step of the
    trace other than the last (the answer line), so the trace still ends as it did.
    """
    numbers = [int(x) for x in re.findall(r"\d+", question)]
    lines = trace.split("\n")
    content = [i for i, line in enumerate(lines) if line.strip()]
    if len(numbers) < 2 or len(content) < 2:
        return None
    for _ in range(max_tries):
        a, b = rng.sample(numbers, 2)
        op = rng.choice("+*")
        c = a + b if op == "+" else a * b
        at = rng.choice(content[:-1])  # insert before this line: never after the answer line
        later_numbers = {int(x) for line in lines[at:] for x in re.findall(r"\d+", line)}
        if c in later_numbers:
            continue
        new_lines = lines[:at] + [f"{a} {op} {b} = {c}"] + lines[at:]
        index = sum(1 for line in lines[:at] if line.strip())
        return "\n".join(new_lines), index
    return None


def trace_items(task, problems, prompts, samples, ap: AdvantageParams, seed: int = 0) -> list[dict]:
    """The traces to value: {key, kind, problem, prompt, trace, inserted_step} for the first
    `max_correct` correct and `max_incorrect` incorrect distinct samples, and `probes` correct
    samples with an idle step inserted (`insert_idle_step`)."""
    rng = random.Random(seed)
    items: list[dict] = []
    counts = {"correct": 0, "incorrect": 0, "probe": 0}
    limits = {"correct": ap.max_correct, "incorrect": ap.max_incorrect, "probe": ap.probes}
    for problem, prompt, completions in zip(problems, prompts, samples):
        for j, trace in enumerate(dict.fromkeys(completions)):
            if not task.steps(trace):
                continue
            kinds = ["correct", "probe"] if task.verify(problem, trace).correct else ["incorrect"]
            for kind in kinds:
                if counts[kind] >= limits[kind]:
                    continue
                inserted = None
                if kind == "probe":
                    probe = insert_idle_step(problem.question, trace, rng)
                    if probe is None:
                        continue
                    trace_k, inserted = probe
                else:
                    trace_k = trace
                counts[kind] += 1
                items.append({"key": f"{kind}/{problem.id}/{j}", "kind": kind, "problem": problem, "prompt": prompt,
                              "trace": trace_k, "inserted_step": inserted})
    return items


def step_rows(records: list[dict], extract) -> list[dict]:
    """One row per step of every valued trace: kind, position, q, Q, A, idle flag, inserted flag."""
    rows = []
    for r in records:
        flags = idle_flags(r["steps"], extract(r["trace"]))
        n = len(r["steps"])
        for i, step in enumerate(r["steps"]):
            rows.append({"trace": r["key"], "kind": r["kind"], "step": i, "n_steps": n,
                         "position": i / (n - 1) if n > 1 else 0.0, "text": step.strip(),
                         "q": r["q"][i], "Q": r["Q"][i], "A": r["advantages"][i],
                         "idle": flags[i], "inserted": i == r.get("inserted_step"),
                         "critical": i == r["critical_step"]})
    return rows


def critical_positions(records: list[dict]) -> list[float]:
    """Relative position (0 = first step, 1 = last) of the critical step of each valued negative."""
    return [r["critical_step"] / (len(r["steps"]) - 1) if len(r["steps"]) > 1 else 0.0 for r in records]


def st6_claim(rows: list[dict], low: float, n_boot: int, seed: int = 0) -> dict:
    """ST-6: P(A <= -low | idle step) - P(A <= -low | progress step), steps of correct traces."""
    steps = [r for r in rows if r["kind"] in ("correct", "probe") and r["A"] is not None and r["idle"] is not None]
    idle = [float(r["A"] <= -low) for r in steps if r["idle"]]
    progress = [float(r["A"] <= -low) for r in steps if not r["idle"]]
    natural_idle = sum(1 for r in steps if r["idle"] and not r["inserted"])
    what = (f"share of steps with advantage <= -{low} among idle steps ({len(idle)}: {natural_idle} found in the "
            f"SFT model's correct traces, {len(idle) - natural_idle} inserted) minus among progress steps "
            f"({len(progress)}), exhaustive best-of-K Monte Carlo values under the SFT model")
    if not idle or not progress:
        return {"claim": "ST-6", "effect": math.nan, "ci": [math.nan, math.nan], "unit": "difference of rates",
                "what": what + "; a group is empty", "verdict": "inconclusive", "n": len(steps)}
    diff = stats.diff_ci(idle, progress, n_boot=n_boot, seed=seed)
    return {"claim": "ST-6", "effect": diff.estimate, "ci": [diff.low, diff.high], "unit": "difference of rates",
            "what": what, "verdict": stats.verdict(diff, "greater", 0.0), "n": len(steps),
            "idle_low_rate": float(np.mean(idle)), "progress_low_rate": float(np.mean(progress))}


def value_traces(model, tokenizer, task, items: list[dict], sv, *, max_new_tokens: int, stop: tuple[str, ...],
                 store, rollout_store, seed: int = 0, batch_size: int = 64, model_id: str = "") -> list[dict]:
    """Exhaustive step values (bare prompt valued too) of every item, one stored record per trace
    (`store`, keyed by the item's key, so a rerun values only the missing ones)."""
    from cotrepro.experiments.scaling import batched_step_values, step_value_record

    todo = [item for item in items if item["key"] not in store]
    if todo:
        values = batched_step_values(
            model, tokenizer, task, [(i["problem"], i["prompt"], i["trace"]) for i in todo], rollouts=sv.rollouts,
            best_of=sv.best_of, strategy="exhaustive", temperature=sv.temperature, max_new_tokens=max_new_tokens,
            stop=stop, seed=seed, value_of_prompt=True, batch_size=batch_size, store=rollout_store,
            model_id=model_id)
        for item, value in zip(todo, values):
            store.append(step_value_record(item["key"], item["problem"].id, item["trace"], value, kind=item["kind"],
                                           inserted_step=item["inserted_step"]))
    return [store.get(item["key"]) for item in items]
