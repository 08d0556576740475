"""Step 07: what Monte Carlo step advantages flag (Setlur et al. 2024, section 6; claim ST-6).

Each SFT model of step 06 (at `size` problems, one per training seed in `model_seeds`, read from
step 06's stored model list) samples traces for training problems; every step of every trace
gets its EXHAUSTIVE Monte Carlo value (the bare prompt valued too, so the first step has an
advantage). Three kinds of trace:

- correct: the SFT model's correct samples;
- probe: a correct sample with ONE idle step inserted (a true operation on two numbers of the
  question whose result is used nowhere: a known step that makes no progress);
- incorrect: wrong samples (for the distribution of advantages and of critical steps).

An IDLE (spurious) step: its claims are all valid (`step_claims.check_steps` with the question)
and it makes no progress: its result is neither an operand of a later claim nor the final
answer, or it repeats an earlier step's expression. A PROGRESS step has valid claims and is not
idle. Steps without claims or with an invalid claim are neither.

ST-6 (`cotrepro/claims.yaml`): over the steps of correct and probe traces, the share with a LOW
advantage (A <= -low) among idle steps minus among progress steps, pooled over the seeds; a
two-level bootstrap that resamples seeds, then whole traces within each (steps of one trace are
not independent); not measured below the stated counts.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from cotrepro import claims, stats, verdicts
from cotrepro.steps import Cost
from cotrepro.params import param
from cotrepro.sections import ComputeSection, DataSection, SamplingParams, StepValueParams, TaskSection
from cotrepro.tasks.step_claims import check_steps

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 07: which SFT model, which traces, and how they are valued."""

    scale: Literal["micro", "smoke", "paper"] = param(help="micro, smoke or paper")
    data: DataSection = param(default_factory=DataSection, help="where the benchmarks are")
    task: TaskSection = param(default_factory=TaskSection, help="training problems (task.n_train are sampled)")
    scaling_from: str = param(help="params file of step 06, whose SFT model is inspected (relative to this file)")
    size: int = param(256, "ladder rung of the SFT model inspected", ge=1)
    model_seeds: tuple[int, ...] = param((0, 1, 2), "training seeds of the SFT models inspected (one each)", ge=0)
    sampling: SamplingParams = param(default_factory=lambda: SamplingParams(k=4, temperature=1.0),
                                     help="the SFT model's samples of the training problems")
    max_correct: int = param(100, "correct traces valued", ge=1)
    max_incorrect: int = param(40, "incorrect traces valued", ge=0)
    probes: int = param(80, "correct traces valued again with one inserted idle step", ge=0)
    stepvalues: StepValueParams = param(default_factory=lambda: StepValueParams(strategy="exhaustive"),
                                        help="Monte Carlo values (exhaustive: every step needs its value)")
    n_boot: int = param(2000, "bootstrap resamples", ge=100)
    compute: ComputeSection = param(default_factory=ComputeSection, help="threads")


def sft_models(run) -> dict[int, dict]:
    """{seed: reference} of step 06's SFT models at `size`, one per `model_seeds`."""
    from cotrepro import specs

    P = run.params
    models = run.upstream("scaling_from").dir.read_json("models.json")
    refs = {}
    for seed in P.model_seeds:
        name = f"sft/n{P.size}/s{seed}"
        if name not in models:
            raise ValueError(f"step 06 stored no SFT model {name} (it has {', '.join(sorted(models))}): set size "
                             f"and model_seeds to its rungs and seeds")
        refs[seed] = specs.finetune_ref(models[name])
    return refs


def sample(run, sfts: dict[int, dict]) -> tuple[dict, dict[int, list[dict]]]:
    """({problem id: problem}, {seed: graded samples}) of each SFT model on the training problems."""
    from cotrepro import specs
    from cotrepro.conditions import run_batch, sampling_job

    P = run.params
    problems = specs.train_problems(P.task, P.data)
    batch = {seed: sampling_job(sft, P.task, problems, replace(P.sampling, seed=seed), f"SFT samples s={seed}")
             for seed, sft in sfts.items()}
    return {p.id: p for p in problems}, run_batch(batch, run.root, P.compute, "samples", "samples.json")


def value(run, sfts: dict[int, dict], items: dict[int, list[dict]]) -> dict[int, list[dict]]:
    """{seed: exhaustive step values of every item of that seed's model}, the bare prompt
    included (one stored job per seed)."""
    from cotrepro import specs
    from cotrepro.conditions import run_batch, stepvalue_job
    from cotrepro.tasks.prompts import get_template

    P = run.params
    stop = get_template(specs.get_task(P.task).name, P.task.template).stop
    batch = {}
    for seed, sft in sfts.items():
        records = [{"problem": i["problem"].to_record(), "prompt": i["prompt"], "trace": i["trace"]}
                   for i in items[seed]]
        batch[seed] = stepvalue_job(sft, P.task, records, P.stepvalues, seed=seed, stop=stop, value_of_prompt=True,
                                    label=f"step values s={seed}")
    return run_batch(batch, run.root, P.compute, "step values", "values.json")


def idle_flags(question: str, steps: list[str], final_answer: str | None) -> list[bool | None]:
    """Per step: True = idle, False = progress, None = neither (module docstring)."""
    parsed = [check_steps(s, question=question) for s in steps]
    operands_after: list[set[str]] = []
    for i in range(len(steps)):
        later: set[str] = set()
        for found in parsed[i + 1:]:
            for c in found:
                later.update(_canonical(x) for x in _NUMBER.findall(c.expression))
        operands_after.append(later)
    flags: list[bool | None] = []
    seen: set[str] = set()
    for i, found in enumerate(parsed):
        if not found or not all(c.correct for c in found):
            flags.append(None)
            continue
        result = _canonical(str(found[-1].claimed))
        expressions = {c.expression.replace(" ", "") for c in found}
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
    """(trace with one idle step inserted, its step index), or None if none fits: "a + b = c" or
    "a * b = c" on two numbers of the question, with a result no later line uses, before a random
    step (never after the last step, so the trace still ends as it did)."""
    numbers = [int(x) for x in re.findall(r"\d+", question)]
    lines = trace.split("\n")
    content = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("####")]
    if len(numbers) < 2 or not content:
        return None
    for _ in range(max_tries):
        a, b = rng.sample(numbers, 2)
        op = rng.choice("+*")
        c = a + b if op == "+" else a * b
        at = rng.choice(content)
        if c in {int(x) for line in lines[at:] for x in re.findall(r"\d+", line)}:
            continue
        index = sum(1 for i in content if i < at)
        return "\n".join(lines[:at] + [f"{a} {op} {b} = {c}"] + lines[at:]), index
    return None


def trace_items(samples: list[dict], problems: dict, P: Params, task, seed: int = 0) -> list[dict]:
    """The traces to value, {kind, problem, prompt, trace, inserted_step}: the first correct and
    incorrect distinct samples, and probes (a correct sample with an idle step inserted)."""
    rng = random.Random(seed)
    items: list[dict] = []
    counts = {"correct": 0, "incorrect": 0, "probe": 0}
    limits = {"correct": P.max_correct, "incorrect": P.max_incorrect, "probe": P.probes}
    seen: set[tuple[str, str]] = set()
    for s in samples:
        problem, trace = problems[s["problem_id"]], s["completion"]
        if (problem.id, trace) in seen or not task.steps(trace) or not s["parsed"]:
            continue
        seen.add((problem.id, trace))
        for kind in (["correct", "probe"] if s["correct"] else ["incorrect"]):
            if counts[kind] >= limits[kind]:
                continue
            inserted = None
            if kind == "probe":
                probe = insert_idle_step(problem.question, trace, rng)
                if probe is None:
                    continue
                trace, inserted = probe
            counts[kind] += 1
            items.append({"kind": kind, "problem": problem, "prompt": task.prompt(problem, P.task.template), "trace": trace,
                          "inserted_step": inserted})
            trace = s["completion"]
    return items


def step_rows(items: list[dict], records: list[dict], extract, seed: int = 0) -> list[dict]:
    """One row per step of every valued trace of one model: its seed, kind, position, q, Q, A,
    idle flag, inserted flag."""
    rows = []
    for t, (item, r) in enumerate(zip(items, records)):
        flags = idle_flags(item["problem"].question, r["steps"], extract(r["trace"]))
        n = len(r["steps"])
        for i, step in enumerate(r["steps"]):
            rows.append({"seed": seed, "trace": t, "kind": item["kind"], "step": i, "n_steps": n,
                         "position": i / (n - 1) if n > 1 else 0.0, "text": step.strip(), "q": r["q"][i],
                         "Q": r["Q"][i], "A": r["advantages"][i], "idle": flags[i],
                         "inserted": i == item["inserted_step"], "critical": i == r["critical_step"]})
    return rows


def st6_claim(rows: list[dict], n_boot: int, seed: int = 0) -> dict:
    """ST-6 by the test of the module docstring."""
    t = claims.test("ST-6")
    low = t["low"]
    steps = [r for r in rows if r["kind"] in ("correct", "probe") and r["A"] is not None and r["idle"] is not None]
    idle = [r for r in steps if r["idle"]]
    progress = [r for r in steps if not r["idle"]]
    natural = sum(not r["inserted"] for r in idle)
    what = (f"share of steps with advantage <= -{low} among idle steps ({len(idle)}: {natural} found in the SFT model's "
            f"correct traces, {len(idle) - natural} inserted) minus among progress steps ({len(progress)}), exhaustive "
            f"best-of-5 Monte Carlo values under the SFT model")
    if len(idle) < t["min_idle"] or len(progress) < t["min_progress"]:
        return claims.not_measured("ST-6", f"{what}: fewer than {t['min_idle']} idle or {t['min_progress']} progress "
                                           f"steps", unit="difference of rates", n_test=len(steps))
    by_trace: dict[tuple, list[dict]] = {}
    for r in steps:
        by_trace.setdefault((r.get("seed", 0), r["trace"]), []).append(r)
    seeds = sorted({key[0] for key in by_trace})

    def stat(keys: list) -> float:
        chosen = [r for key in keys for r in by_trace[key]]
        a = [r["A"] <= -low for r in chosen if r["idle"]]
        b = [r["A"] <= -low for r in chosen if not r["idle"]]
        return float(np.mean(a) - np.mean(b)) if a and b else float("nan")

    diff = stats.seeds_then_clusters_ci([[k for k in sorted(by_trace) if k[0] == s] for s in seeds], stat,
                                        n_boot=n_boot, seed=seed)
    return claims.measured("ST-6", diff, verdicts.verdict(diff, "greater", 0.0), unit="difference of rates",
                           n_test=len(steps), seeds=len(seeds), what=f"{what}, {len(seeds)} SFT seeds, {diff.kind}"
                           "; claimed: above 0",
                           idle_low_rate=float(np.mean([r["A"] <= -low for r in idle])),
                           progress_low_rate=float(np.mean([r["A"] <= -low for r in progress])))


def cost(P: Params, set_size: int = 0) -> Cost:
    traces = P.max_correct + P.max_incorrect + P.probes
    per_model = (P.task.n_train * P.sampling.k * P.sampling.max_new_tokens
                 + traces * 5 * P.stepvalues.rollouts * P.stepvalues.max_new_tokens // 2)
    return Cost(generated_tokens=len(P.model_seeds) * per_model,
                notes=("rollouts at about 5 prefixes per trace, half the token limit each",))
