"""Step 08: the star-graph shortcut and whether per-step negatives unlearn it (claim ST-8).

Bachmann and Nagarajan (2024) train a small transformer from scratch, with teacher forcing, on
star-graph paths; it learns the "Clever Hans" shortcut: given the path so far, the next node is
the one an edge leads to, which is trivial after the first arm node, while the first choice
(which arm leads to the goal) stays at chance, about 1/degree. The micro world ships such models
(`micro:stargraph-s<seed>`, one per training seed, one token per node; `cotrepro.micro`): they are
this step's SFT-on-positives arm. Setlur et al. (2024) claim that per-step negatives help unlearn
the shortcut.

Per-step DPO: each SFT model samples paths for training graphs; each wrong path gets Monte Carlo
step values under that model (`stepvalues.value_traces`), is cut after its critical step and
paired with the gold path (`pairs.per_step_pairs`). Nothing tells the code that the first branch
is the critical step: the values find it (the stored critical-step positions show where).

Measured on test graphs: greedy path accuracy; first-step accuracy (given "start,", is the next
node the gold one?) and later-step accuracy (given the gold path through node i >= 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cotrepro import claims, jobs, pairs, specs, stats, verdicts
from cotrepro.conditions import dpo_job, pinned, run_batch, sampling_job, stepvalue_job
from cotrepro.steps import Cost
from cotrepro.params import param, to_dict
from cotrepro.sections import ComputeSection, DPOSection, SamplingParams, StepValueParams, TaskSection


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 08: the SFT models, the DPO stage and the evaluation."""

    scale: Literal["micro", "smoke", "paper"] = param(help="micro, smoke or paper")
    task: TaskSection = param(default_factory=lambda: TaskSection(name="stargraph"), help="the graphs")
    models: tuple[str, ...] = param(("micro:stargraph-s0", "micro:stargraph-s1", "micro:stargraph-s2"),
                                    "the SFT-on-positives models, one per training seed")
    sampling: SamplingParams = param(default_factory=lambda: SamplingParams(k=4, temperature=1.0, max_new_tokens=24),
                                     help="the SFT model's samples of training graphs (its wrong ones are negatives)")
    stepvalues: StepValueParams = param(default_factory=StepValueParams, help="Monte Carlo step values")
    dpo: DPOSection = param(default_factory=DPOSection, help="DPO from each SFT model")
    max_new_tokens: int = param(24, "longest generated path", ge=1)
    n_boot: int = param(2000, "bootstrap resamples", ge=100)
    compute: ComputeSection = param(default_factory=ComputeSection, help="parallel jobs and threads")


def star_eval_job(spec: dict, out_dir: Path) -> None:
    """A `cotrepro.jobs` job: greedy path correctness and next-node accuracies of one model on the
    first n test graphs; writes `outcomes.json`."""
    from cotrepro.evaluate import evaluate
    from cotrepro.micro import next_node_hits
    from cotrepro.params import from_dict
    from cotrepro.quiet import quiet_libraries

    quiet_libraries()
    root = Path(out_dir).parents[2]
    section = from_dict(TaskSection, spec["task"])
    task = specs.get_task(section)
    problems = specs.problems(section, None, section.test_split, section.n_test)
    model, tokenizer = specs.load(spec["model"], root)
    result = evaluate(model, tokenizer, task, problems, template=section.template,
                      max_new_tokens=spec["max_new_tokens"], batch_size=64)
    # the same measurement as the world's report (step 01), so the two agree on the shipped models
    first, later = next_node_hits(model, tokenizer, problems, [task.prompt(p, section.template) for p in problems],
                                  batch_size=256)
    (Path(out_dir) / "outcomes.json").write_text(json.dumps({
        "ids": [p.id for p in problems], "correct": [float(r["correct"][0]) for r in result.records],
        "completions": [r["completions"][0] for r in result.records], "first_step": first,
        "later_steps": [float(np.mean(x)) for x in later]}))


def evaluation_job(model_ref: dict, P: Params, label: str) -> jobs.Job:
    # measure 2: next-node hits read "7," as node 7 (before, every node but the last counted as a
    # miss); the key changes so that results stored before are not reused
    spec = {"model": pinned(model_ref), "task": to_dict(P.task), "max_new_tokens": P.max_new_tokens, "measure": 2}
    return jobs.Job("evaluate", "cotrepro.experiments.stargraph_shortcut:star_eval_job", spec, label)


def sft_refs(P: Params) -> dict[int, dict]:
    """{seed: model reference} of the shipped SFT models."""
    from cotrepro.sections import ModelSpec

    return {seed: specs.spec_ref(ModelSpec(name=name)) for seed, name in enumerate(P.models)}


def wrong_paths(run, refs: dict[int, dict]) -> dict[int, list[dict]]:
    """{seed: samples} of each SFT model on the training graphs (graded)."""
    P = run.params
    problems = specs.problems(P.task, None, P.task.train_split, P.task.n_train)
    batch = {seed: sampling_job(ref, P.task, problems, P.sampling, f"samples s={seed}") for seed, ref in refs.items()}
    return run_batch(batch, run.root, P.compute, "samples", "samples.json")


def negative_values(run, refs: dict[int, dict], samples: dict[int, list[dict]]) -> dict[int, list[dict]]:
    """{seed: step-value records} of every distinct wrong path under its SFT model."""
    P = run.params
    task = specs.get_task(P.task)
    problems = {p.id: p for p in specs.problems(P.task, None, P.task.train_split, P.task.n_train)}
    batch = {}
    for seed, ref in refs.items():
        seen, items = set(), []
        for s in samples[seed]:
            if s["correct"] or not s["parsed"] or not task.steps(s["completion"]) or (s["problem_id"], s["completion"]) in seen:
                continue
            seen.add((s["problem_id"], s["completion"]))
            p = problems[s["problem_id"]]
            items.append({"problem": p.to_record(), "prompt": task.prompt(p, P.task.template), "trace": s["completion"]})
        batch[seed] = stepvalue_job(ref, P.task, items, P.stepvalues, seed=seed, stop=["\n"],
                                    label=f"step values s={seed}")
    return run_batch(batch, run.root, P.compute, "step values", "values.json")


def dpo_models(run, refs: dict[int, dict], values: dict[int, list[dict]]) -> dict[int, jobs.Job]:
    """{seed: DPO job} from each SFT model on its per-step pairs against the gold paths."""
    from cotrepro.stepvalues import from_record

    P = run.params
    task = specs.get_task(P.task)
    problems = {p.id: p for p in specs.problems(P.task, None, P.task.train_split, P.task.n_train)}
    batch = {}
    for seed, records in values.items():
        by_problem: dict[str, list] = {}
        for r in records:
            by_problem.setdefault(r["problem_id"], []).append(from_record(r, r["trace"]))
        prompts = {pid: task.prompt(problems[pid], P.task.template) for pid in by_problem}
        gold = {pid: [problems[pid].answer] for pid in by_problem}
        data = pairs.per_step_pairs(prompts, gold, by_problem, seed=seed)
        batch[seed] = dpo_job(refs[seed], data, P.dpo, seed, f"per-step DPO s={seed}")
    return run_batch(batch, run.root, P.compute, "DPO")


def evaluate_arms(run, refs: dict[int, dict], dpo: dict[int, jobs.Job]) -> dict[str, list[dict]]:
    """{arm: outcomes per seed} of the SFT models and their per-step DPO models on the test graphs."""
    P = run.params
    batch = {**{("SFT", s): evaluation_job(ref, P, f"SFT s={s}") for s, ref in refs.items()},
             **{("per-step DPO", s): evaluation_job(specs.finetune_ref(j.key), P, f"DPO s={s}") for s, j in dpo.items()}}
    results: dict[str, list[dict]] = {}
    for (arm, _), outcomes in run_batch(batch, run.root, P.compute, "evaluations", "outcomes.json").items():
        results.setdefault(arm, []).append(outcomes)
    return results


def degree(P: Params) -> int:
    return specs.get_task(P.task).degree


def summary_rows(results: dict[str, list[dict]], degree: int) -> list[dict]:
    """One row per arm: accuracy, first- and later-step accuracy (means over seeds, with Wilson
    intervals over the pooled test graphs for the first step)."""
    rows = []
    for arm, records in results.items():
        first = np.concatenate([r["first_step"] for r in records])
        ci = stats.binomial_ci(int(first.sum()), len(first))
        rows.append({"model": arm, "seeds": len(records), "n_test": len(records[0]["correct"]),
                     "accuracy": float(np.mean([np.mean(r["correct"]) for r in records])),
                     "first_step_accuracy": ci.estimate, "first_step_low": ci.low, "first_step_high": ci.high,
                     "later_step_accuracy": float(np.mean([np.nanmean(r["later_steps"]) for r in records])),
                     "shortcut_level": 1 / degree})
    return rows


def st8_claim(results: dict[str, list[dict]], degree: int, n_pairs: int, n_boot: int, seed: int = 0) -> dict:
    """ST-8 by its test (`cotrepro/claims.yaml`): the shortcut must be present in SFT; then the
    verdict is that of accuracy(per-step DPO) - accuracy(SFT), seeds then graphs."""
    min_later = claims.test("ST-8")["min_later"]
    level = 1 / degree
    sft, dpo = results["SFT"], results["per-step DPO"]
    first = np.concatenate([r["first_step"] for r in sft])
    first_ci = stats.binomial_ci(int(first.sum()), len(first))
    later = float(np.mean([np.nanmean(r["later_steps"]) for r in sft]))
    diff = stats.hier_diff_ci(np.stack([r["correct"] for r in dpo]), np.stack([r["correct"] for r in sft]),
                              n_boot=n_boot, seed=seed)
    at_shortcut = later >= min_later and first_ci.low <= level <= first_ci.high
    n_test = len(sft[0]["correct"])
    context = dict(
        unit="accuracy difference", n_test=n_test, seeds=len(sft), chance=level,
        base=float(np.mean([np.mean(r["correct"]) for r in sft])), sft_at_shortcut=at_shortcut,
        what=f"greedy path accuracy(per-step DPO) - accuracy(SFT on positives) on {n_test} test graphs (degree "
             f"{degree}), {len(sft)} seeds, {n_pairs} DPO pairs in all, {diff.kind}; SFT first-step accuracy {first_ci} "
             f"against the shortcut level {level:.2f}, later-step accuracy {later:.3f}: SFT "
             f"{'sits' if at_shortcut else 'does not sit'} at the shortcut; claimed: above 0")
    if at_shortcut:
        return claims.measured("ST-8", diff, verdicts.verdict(diff, "greater", 0.0), **context)
    if later >= min_later and first_ci.low > level:  # positives alone taught the first step: no shortcut to unlearn
        return claims.measured("ST-8", diff, "not reproduced", **context)
    # SFT broke the lookup or fell below the shortcut: nothing to unlearn
    return claims.not_askable("ST-8", diff, f"SFT on positives did not reach the shortcut (later steps at least "
                                            f"{min_later:.0%}, first step at 1/degree)", **context)


def cost(P: Params, set_size: int = 0) -> Cost:
    m = len(P.models)
    pairs = m * P.task.n_train * P.sampling.k // 2
    return Cost(fine_tunes=m, train_examples=int(2 * pairs * P.dpo.train.epochs),
                generated_tokens=m * P.task.n_train * P.sampling.k * P.sampling.max_new_tokens
                + pairs * 5 * P.stepvalues.rollouts * P.stepvalues.max_new_tokens // 4
                + 2 * m * P.task.n_test * (P.max_new_tokens + 5),
                notes=("about half the samples wrong; DPO counts chosen and rejected sides",))
