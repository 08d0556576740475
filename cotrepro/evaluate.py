"""Accuracy, pass@k, maj@k, and the per-token NLL of completions under a model.

`evaluate(model, tokenizer, task, problems, ...)` prompts the model with each problem, grades every
completion with the task's verifier and returns an `EvalResult`: a summary and one record per
problem. Three denominators, reported side by side:

- `accuracy`: correct completions over ALL completions (an unparsable output counts as wrong);
  with greedy decoding and k=1 this is pass@1 over all problems.
- `parse_failure_rate`: completions from which `task.extract` read no answer, over all.
- `parsed_accuracy`: correct over PARSED completions only: the number the Shape of Thought code
  reports for MATH/GSM8K/Countdown (it drops unparsable outputs from the denominator).

Problems whose gold answer is ungradable are left out of every denominator and counted in
`n_ungradable`. With k > 1 samples per problem the summary adds the unbiased pass@j (Chen et al.
2021) for j = 1, 2, 4, ... up to k, and maj@k (majority vote over the extracted answers).

`outcomes(result)` is the one record of an evaluation that the experiments store: per problem
its id, completions, extracted answers and correctness (columns, so a record of 1,000 problems
stays small); `scores(outcomes)` turns it into per-problem greedy correctness or unbiased pass@k,
the unit every interval resamples. `evaluate_job` is the same evaluation as a `cotrepro.jobs` job.

Completions are graded through `cotrepro.grade`, which enforces a hard per-item time limit where a
task's verifier could hang (math-verify, generated code).

`completion_nlls(model, tokenizer, examples)` is the distribution distance of SoT-3: the
negative log-likelihood of each completion given its prompt, on the tokens SFT trains on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cotrepro.generate import sample
from cotrepro.sections import SamplingParams
from cotrepro.tasks.base import Problem, Task
from cotrepro.tasks.prompts import get_template

GenerateFn = Callable[[list[str], SamplingParams], list[list[str]]]


@dataclass(frozen=True)
class EvalResult:
    """The summary (accuracy, rates, pass@k, ...) and one record per problem."""

    summary: dict[str, Any]
    records: list[dict[str, Any]]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021, product form).

    1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i) so no binomial overflows.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int | None = None) -> bool:
    """Majority vote over the first k extracted answers: is the most common answer correct?

    Answers are compared as stripped strings; None (unparsed) never votes. Ties go to the answer
    that appeared first. No parsed answer at all counts as wrong.
    """
    if len(answers) != len(correct):
        raise ValueError(f"maj_at_k: {len(answers)} answers but {len(correct)} correctness flags")
    k = len(answers) if k is None else k
    votes = [(a.strip(), ok) for a, ok in zip(answers[:k], correct[:k]) if a is not None]
    if not votes:
        return False
    counts = Counter(a for a, _ in votes)
    first_seen = {a: i for i, (a, _) in reversed(list(enumerate(votes)))}
    winner = max(counts, key=lambda a: (counts[a], -first_seen[a]))
    return next(ok for a, ok in votes if a == winner)


def evaluate(model, tokenizer, task: Task, problems: Sequence[Problem], *, template: str = "default",
             max_new_tokens: int = 256, k: int = 1, temperature: float = 0.0, seed: int = 0,
             batch_size: int = 32, store=None, model_id: str = "", backend: str = "hf",
             generate_fn: GenerateFn | None = None) -> EvalResult:
    """Generate k completions per problem, grade them, and summarise (see the module doc).

    Stop strings come from the task's prompt template. `generate_fn(prompts, sampling)` replaces
    `cotrepro.generate.sample` (tests, or another backend); `store` makes generation resumable.
    """
    if not problems:
        raise ValueError("evaluate: no problems given")
    if k > 1 and temperature == 0:
        raise ValueError("evaluate: k > 1 with temperature 0 would repeat one greedy completion")
    stop = get_template(task.name, template).stop
    sampling = SamplingParams(k=k, temperature=temperature, max_new_tokens=max_new_tokens,
                              stop=tuple(stop), seed=seed, batch_size=batch_size, backend=backend)
    if generate_fn is None:
        def generate_fn(prompts, sampling):
            return sample(model, tokenizer, prompts, sampling, store=store, model_id=model_id,
                          progress=False)
    prompts = [task.prompt(p, template) for p in problems]
    outputs = generate_fn(prompts, sampling)
    if len(outputs) != len(prompts) or any(len(o) != k for o in outputs):
        raise ValueError(f"evaluate: the generator must return {k} completions "
                         f"for each of {len(prompts)} prompts")

    from cotrepro.grade import grade_problems

    graded = grade_problems(task, [p for p in problems for _ in range(k)], [c for o in outputs for c in o],
                            workers=1, progress=False)
    records = []
    for i, (problem, completions) in enumerate(zip(problems, outputs)):
        verdicts = graded[i * k:(i + 1) * k]
        records.append({
            "id": problem.id, "completions": completions,
            "extracted": [v["extracted"] for v in verdicts], "correct": [bool(v["correct"]) for v in verdicts],
            "ungradable": any(v["ungradable"] for v in verdicts),
        })
    summary = summarize(records, k)
    summary.update(template=template, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    return EvalResult(summary, records)


def summarize(records: Sequence[dict[str, Any]], k: int) -> dict[str, Any]:
    """The summary of graded records (each with "extracted", "correct", "ungradable" lists/flags)."""
    graded = [r for r in records if not r["ungradable"]]
    n_completions = sum(len(r["correct"]) for r in graded)
    n_correct = sum(sum(r["correct"]) for r in graded)
    n_parsed = sum(sum(e is not None for e in r["extracted"]) for r in graded)
    summary: dict[str, Any] = {
        "n": len(graded), "n_ungradable": len(records) - len(graded), "k": k,
        "accuracy": n_correct / n_completions if n_completions else float("nan"),
        "parse_failure_rate": 1 - n_parsed / n_completions if n_completions else float("nan"),
        "parsed_accuracy": n_correct / n_parsed if n_parsed else float("nan"),
    }
    if k > 1 and graded:
        sizes = sorted({2 ** i for i in range(k.bit_length()) if 2 ** i <= k} | {k})
        for j in sizes:
            summary[f"pass@{j}"] = sum(pass_at_k(len(r["correct"]), sum(r["correct"]), j)
                                       for r in graded) / len(graded)
        summary[f"maj@{k}"] = sum(maj_at_k(r["extracted"], r["correct"]) for r in graded) / len(graded)
    return summary


def outcomes(result: EvalResult) -> dict[str, Any]:
    """The stored record of an evaluation: one list per field, one entry per problem."""
    r = result.records
    return {"ids": [x["id"] for x in r], "k": len(r[0]["correct"]) if r else 0,
            "correct": [x["correct"] for x in r], "extracted": [x["extracted"] for x in r],
            "completions": [x["completions"] for x in r], "ungradable": [x["ungradable"] for x in r],
            "summary": result.summary}


def scores(record: dict[str, Any], k: int | None = None) -> np.ndarray:
    """Per-problem scores of an outcomes record, ungradable problems left out: correctness of the
    first completion (k None), or the unbiased pass@k from all its completions."""
    keep = [i for i, bad in enumerate(record["ungradable"]) if not bad]
    if k is None:
        return np.array([float(record["correct"][i][0]) for i in keep])
    return np.array([pass_at_k(len(record["correct"][i]), sum(record["correct"][i]), k) for i in keep])


def unparsed_rate(record: dict[str, Any]) -> float:
    """Share of first completions with no extractable answer (gradable problems only)."""
    keep = [i for i, bad in enumerate(record["ungradable"]) if not bad]
    return sum(record["extracted"][i][0] is None for i in keep) / max(1, len(keep))


def evaluate_job(spec: dict, out_dir: Path) -> None:
    """A `cotrepro.jobs` job: spec = {"model": model ref, "task": TaskSection dict, "data": DataSection
    dict or None, "split", "n", "problem_seed", "max_new_tokens", "batch_size", "samples",
    "temperature", "seed", "backend"}; writes `outcomes.json`. Generation resumes from `generations.jsonl`."""
    from cotrepro import specs
    from cotrepro.generate import load_for
    from cotrepro.params import from_dict
    from cotrepro.quiet import quiet_libraries
    from cotrepro.sections import DataSection, TaskSection

    quiet_libraries()
    root = Path(out_dir).parents[2]
    task_section = from_dict(TaskSection, spec["task"])
    data = from_dict(DataSection, spec["data"]) if spec.get("data") else None
    problems = specs.problems(task_section, data, spec["split"], spec["n"], spec["problem_seed"])
    model, tokenizer = load_for(spec.get("backend", "hf"), spec["model"], root)
    result = evaluate(model, tokenizer, specs.get_task(task_section), problems, template=task_section.template,
                      max_new_tokens=spec["max_new_tokens"], k=spec["samples"], temperature=spec["temperature"],
                      seed=spec["seed"], batch_size=spec["batch_size"], store=Path(out_dir) / "generations.jsonl",
                      model_id="evaluated", backend=spec.get("backend", "hf"))
    (Path(out_dir) / "outcomes.json").write_text(json.dumps(outcomes(result)))


def completion_nlls(model, tokenizer, examples: Sequence[dict[str, str]], batch_size: int = 8
                    ) -> list[tuple[float, int]]:
    """(summed NLL in nats, number of completion tokens) for each {"prompt", "completion"}.

    Tokenized as TRL's SFTTrainer does for prompt-completion data: the completion tokens are those
    of tokenize(prompt + completion) after its common prefix with tokenize(prompt), so the NLL
    is measured on exactly the tokens SFT trains on. No EOS is appended (the distance is about the
    text). Sequences are right-padded, so positions need no correction.
    """
    import torch

    rows = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or not {"prompt", "completion"} <= set(ex):
            raise ValueError(f"completion_nlls: example {i} needs 'prompt' and 'completion' keys")
        prompt_ids = tokenizer(ex["prompt"])["input_ids"]
        full_ids = tokenizer(ex["prompt"] + ex["completion"])["input_ids"]
        start = next((j for j, (a, b) in enumerate(zip(prompt_ids, full_ids)) if a != b),
                     min(len(prompt_ids), len(full_ids)))
        if start == 0:
            raise ValueError(f"completion_nlls: example {i} has no prompt token to condition on")
        rows.append((full_ids, start))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results = []
    try:
        for b in range(0, len(rows), batch_size):
            batch = rows[b:b + batch_size]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            targets = torch.zeros((len(batch), width), dtype=torch.bool)  # completion positions
            for r, (ids, start) in enumerate(batch):
                input_ids[r, :len(ids)] = torch.tensor(ids)
                attention[r, :len(ids)] = 1
                targets[r, start:len(ids)] = True
            with torch.no_grad():
                logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
            logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            token_lp = logprobs.gather(-1, input_ids[:, 1:, None].to(device)).squeeze(-1).cpu()
            mask = targets[:, 1:]
            for r in range(len(batch)):
                results.append((float(-token_lp[r][mask[r]].sum()), int(mask[r].sum())))
    finally:
        model.train(was_training)
    return results


def mean_nll(model, tokenizer, examples: Sequence[dict[str, str]], batch_size: int = 8) -> float:
    """Mean per-token NLL (nats) of completions given prompts, pooled over all completion tokens."""
    nlls = completion_nlls(model, tokenizer, examples, batch_size)
    tokens = sum(n for _, n in nlls)
    if tokens == 0:
        raise ValueError("mean_nll: the completions hold no tokens")
    return sum(s for s, _ in nlls) / tokens
