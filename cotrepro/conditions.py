"""Train-then-evaluate over conditions and seeds, and the outcome matrices claims are tested on.

Steps 03, 04 and 05 all do one thing many times: take the student base, fine-tune it on one
training set (a *condition*: H, G, W, a corrupted G, ...) with one seed, and evaluate it greedily
on the test problems; the condition `none` is the untuned base. Each (condition, seed) is a
fine-tune job and an evaluation job (`cotrepro.jobs`), stored by content: a condition two steps
share (H in steps 03 and 04, G in 03 and 05) is trained once, and the jobs of a step run in
parallel, one per core.

Claims compare conditions on the same test problems: `matrix` stacks a condition's per-problem
scores as a (seeds, problems) array, which `stats.two_level_bootstrap` resamples by seed and then
by problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cotrepro import evaluate, jobs, specs
from cotrepro.params import to_dict
from cotrepro.sections import (ComputeSection, DataSection, DPOSection, EvalSection, FinetuneSection, ModelSpec,
                               SamplingParams, StepValueParams, TaskSection)

NO_FINE_TUNING = "none"


def write_sets(run_dir: Path, sets: Mapping[str, list[dict]]) -> None:
    """Store training sets as `sets/<name>.jsonl` of {prompt, completion, problem_id} (step 02)."""
    from cotrepro.store import write_jsonl

    for name, examples in sets.items():
        write_jsonl(Path(run_dir) / "sets" / f"{name}.jsonl", examples)


def load_sets(run_dir: Path, names: Sequence[str] | None = None) -> dict[str, list[dict]]:
    """The training sets a step-02 run folder stores (all of them, or `names`)."""
    from cotrepro.store import read_jsonl

    folder = Path(run_dir) / "sets"
    names = list(names) if names is not None else sorted(p.stem for p in folder.glob("*.jsonl"))
    missing = [n for n in names if not (folder / f"{n}.jsonl").is_file()]
    if missing or not names:
        raise FileNotFoundError(f"{run_dir}: no stored set(s) {', '.join(missing) or '(none)'}")
    return {n: read_jsonl(folder / f"{n}.jsonl") for n in names}


def pinned(model: dict) -> dict:
    """A model reference with its identity (the hash of its files) added, when it names a spec:
    a job's key then changes when the checkpoint behind the path does."""
    return {**model, "identity": specs.identity(model)} if "spec" in model else model


def finetune_job(base: dict, examples: list[dict], finetune: FinetuneSection, seed: int, label: str = "") -> jobs.Job:
    """The job that fine-tunes the model `base` (a model reference) on `examples` with `seed`."""
    spec = {"base": pinned(base), "examples": [{"prompt": e["prompt"], "completion": e["completion"]}
                                               for e in examples],
            "finetune": to_dict(finetune), "seed": seed}
    return jobs.Job("finetune", "cotrepro.train:finetune_job", spec, label)


def evaluation_job(model: dict, task: TaskSection, data: DataSection | None, ev: EvalSection, *,
                   samples: int = 1, temperature: float = 0.0, seed: int = 0, problem_seed: int = 0,
                   label: str = "") -> jobs.Job:
    """The job that evaluates `model` on the first `task.n_test` test problems (greedy by default)."""
    spec = {"model": pinned(model), "task": to_dict(task), "data": None if data is None else to_dict(data),
            "split": task.test_split, "n": task.n_test, "problem_seed": problem_seed,
            "max_new_tokens": ev.max_new_tokens, "batch_size": ev.batch_size, "samples": samples,
            "temperature": temperature, "seed": seed, "backend": ev.backend}
    return jobs.Job("evaluate", "cotrepro.evaluate:evaluate_job", spec, label)


def sampling_job(model: dict, task: TaskSection, problems: Sequence, sampling: SamplingParams,
                 label: str = "") -> jobs.Job:
    """The job that samples `model` on `problems` (Problem objects or their records), graded."""
    records = [p if isinstance(p, dict) else p.to_record() for p in problems]
    spec = {"model": pinned(model), "task": to_dict(task), "problems": records, "sampling": to_dict(sampling)}
    return jobs.Job("sample", "cotrepro.generate:sample_job", spec, label)


def stepvalue_job(model: dict, task: TaskSection, items: list[dict], params: StepValueParams, *, seed: int,
                  stop: Sequence[str], value_of_prompt: bool = False, label: str = "") -> jobs.Job:
    """The job that gives every item ({problem record, prompt, trace}) Monte Carlo step values."""
    spec = {"model": pinned(model), "task": to_dict(task), "items": items, "params": to_dict(params),
            "seed": seed, "stop": list(stop), "value_of_prompt": value_of_prompt}
    return jobs.Job("stepvalues", "cotrepro.stepvalues:value_job", spec, label)


def dpo_job(reference: dict, pairs: list[dict], dpo: DPOSection, seed: int, label: str = "") -> jobs.Job:
    """The job that trains DPO from `reference` (also the frozen reference) on `pairs`."""
    spec = {"reference": pinned(reference), "pairs": pairs, "dpo": to_dict(dpo), "seed": seed}
    return jobs.Job("finetune", "cotrepro.dpo:dpo_job", spec, label)


def run_batch(batch: Mapping, root, compute: ComputeSection, desc: str, result: str | None = None,
              progress: bool = True) -> dict:
    """Run {key: job} in parallel (stored jobs are skipped); {key: the job's `result` file} when
    one is named, else the jobs."""
    jobs.run_jobs(list(batch.values()), root, workers=compute.workers, threads=compute.threads, progress=progress,
                  desc=desc, launcher=compute.launcher, processes=compute.processes)
    if result is None:
        return dict(batch)
    return {key: jobs.read_json(jobs.job_dir(job, root), result) for key, job in batch.items()}


def outcomes_of(job: jobs.Job, root) -> dict:
    return jobs.read_json(jobs.job_dir(job, root), "outcomes.json")


def run_conditions(sets: Mapping[str, list[dict] | None], seeds: Sequence[int], *, student: ModelSpec,
                   finetune: FinetuneSection, task: TaskSection, data: DataSection | None, ev: EvalSection,
                   compute: ComputeSection, root: str | Path | None, progress: bool = True) -> dict[str, list[dict]]:
    """Fine-tune the student on each set with each seed (a set of None: the untuned base, once)
    and evaluate greedily; returns each condition's outcomes records, one per seed."""
    base = specs.spec_ref(student)
    tunes = {(c, s): finetune_job(base, examples, finetune, s, f"{c}/s{s}")
             for c, examples in sets.items() if examples is not None for s in seeds}
    run_batch(tunes, root, compute, "fine-tunes", progress=progress)
    evals = {key: evaluation_job(specs.finetune_ref(job.key), task, data, ev, label=job.label)
             for key, job in tunes.items()}
    evals.update({(c, None): evaluation_job(base, task, data, ev, label=c) for c, ex in sets.items() if ex is None})
    run_batch(evals, root, compute, "evaluations", progress=progress)
    results: dict[str, list[dict]] = {}
    for (condition, seed), job in evals.items():
        record = outcomes_of(job, root)
        record.update(condition=condition, seed=seed,
                      finetune_key=None if seed is None else tunes[(condition, seed)].key)
        results.setdefault(condition, []).append(record)
    return results


def matrix(records: Sequence[dict], k: int | None = None) -> np.ndarray:
    """(seeds, problems) scores of one condition's records (all on the same test problems)."""
    ids = records[0]["ids"]
    if any(r["ids"] != ids for r in records):
        raise ValueError("records of one condition were evaluated on different test problems")
    return np.stack([evaluate.scores(r, k) for r in records])


def accuracy_rows(results: Mapping[str, list[dict]]) -> list[dict]:
    """One row per (condition, seed): accuracy over all test problems, parsed-only accuracy (the
    Shape of Thought release's denominator) and the unparsable share."""
    rows = []
    for condition, records in results.items():
        for r in records:
            s = r["summary"]
            rows.append({"condition": condition, "seed": r["seed"], "n_test": s["n"], "accuracy": s["accuracy"],
                         "parsed_accuracy": s["parsed_accuracy"], "unparsed": s["parse_failure_rate"]})
    return rows


def accuracy_summary(results: Mapping[str, list[dict]]):
    """`accuracy_rows` averaged over seeds, one row per condition (a DataFrame; empty, with the
    same columns, when nothing was trained)."""
    import pandas as pd

    numbers = ["n_test", "accuracy", "parsed_accuracy", "unparsed"]
    rows = pd.DataFrame(accuracy_rows(results), columns=["condition", "seed", *numbers])
    return rows.astype(dict.fromkeys(numbers, float)).groupby("condition", sort=False)[numbers].mean()


def mean_unparsed(records: Sequence[dict]) -> float:
    return float(np.mean([evaluate.unparsed_rate(r) for r in records]))


def learned_format(records: Sequence[dict], max_unparsed: float) -> bool:
    """Whether a condition's models write parsable answers often enough to be a fair baseline:
    their mean unparsable share is at most `max_unparsed` (1e-9 of slack: the mean of rates that
    equal the limit must not exceed it by a rounding error)."""
    return mean_unparsed(records) <= max_unparsed + 1e-9


def best_constant(task, problems) -> float:
    """Chance level: the accuracy of always giving the most common gold answer of `problems`."""
    from collections import Counter

    answers = Counter(str(p.answer).strip() for p in problems)
    return answers.most_common(1)[0][1] / len(problems) if problems else float("nan")


def compact(results: Mapping[str, list[dict]]) -> dict[str, list[dict]]:
    """What a step stores of its conditions for the figures: per (condition, seed) the summary
    and the per-problem scores (the completions stay in the job cache)."""
    return {condition: [{"seed": r["seed"], "summary": r["summary"], "scores": evaluate.scores(r).tolist(),
                         "unparsed": evaluate.unparsed_rate(r)} for r in records]
            for condition, records in results.items()}


def compact_named(evals: Mapping[str, dict], k: int) -> dict[str, dict]:
    """`compact` for named evaluations: the summary and per-problem scores (pass@k for the
    sampled ones, whose names end in "@k")."""
    return {name: {"summary": r["summary"], "scores": evaluate.scores(r, k if name.endswith("@k") else None).tolist()}
            for name, r in evals.items()}
