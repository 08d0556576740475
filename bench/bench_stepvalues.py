"""Cost of Monte Carlo step values: cheap strategies against exhaustive per-step rollouts.

Run: `.venv/bin/python bench/bench_stepvalues.py [--model DIR] [--negatives 12] [--threads 1]`
Prints a Markdown table and writes bench/results/stepvalues.md.

The model is the micro teacher (`pretrain_micro()` with default params, cached under runs/micro;
the first call trains it) unless `--model` names a checkpoint directory. Its incorrect traces on
arith problems (sampled at temperature 1) are valued with every strategy of
`cotrepro.stepvalues` using the same seeded rollouts, so a strategy's values at a prefix equal the
exhaustive ones there; the table reports generated tokens and how often the strategy names the
same critical step as the exhaustive search.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from _machine import describe
from cotrepro.generate import SamplingParams, sample
from cotrepro.models import load_model
from cotrepro.stepvalues import STRATEGIES, step_values
from cotrepro.tasks import get_task
from cotrepro.tasks.arith import generate_problems
from cotrepro.tasks.prompts import get_template

RESULTS = Path(__file__).resolve().parent / "results" / "stepvalues.md"



def negatives(model, tokenizer, task, n: int, stop: tuple[str, ...]) -> list[tuple]:
    """Up to `n` incorrect sampled traces with at least two steps: (problem, prompt, trace)."""
    problems = generate_problems(4 * n, seed=123)
    prompts = [task.prompt(p, "arith") for p in problems]
    traces = sample(model, tokenizer, prompts, SamplingParams(k=2, temperature=1.0, max_new_tokens=64,
                                                                stop=stop, seed=0), progress=False)
    found = []
    for problem, prompt, completions in zip(problems, prompts, traces):
        for trace in completions:
            if len(task.steps(trace)) >= 2 and not task.verify(problem, trace).correct:
                found.append((problem, prompt, trace))
    return found[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory (default: the cached micro teacher)")
    parser.add_argument("--negatives", type=int, default=12)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--best-of", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model is None:
        from cotrepro.micro import pretrain_micro

        args.model = pretrain_micro()["teacher"]
    model, tokenizer = load_model(args.model, device="cpu")
    task = get_task("arith")
    stop = get_template("arith", "arith").stop
    found = negatives(model, tokenizer, task, args.negatives, stop)
    if not found:
        raise SystemExit("the model wrote no incorrect multi-step trace; nothing to value")

    runs: dict[str, list] = {s: [] for s in STRATEGIES}
    seconds = dict.fromkeys(STRATEGIES, 0.0)
    for problem, prompt, trace in found:
        for strategy in STRATEGIES:
            started = time.perf_counter()
            runs[strategy].append(step_values(model, tokenizer, task, problem, prompt, trace,
                                              rollouts=args.rollouts, best_of=args.best_of, strategy=strategy,
                                              max_new_tokens=48, seed=0, stop=stop))
            seconds[strategy] += time.perf_counter() - started

    exhaustive = runs["exhaustive"]
    base_tokens = sum(v.tokens_generated for v in exhaustive)
    n_steps = sum(len(v.steps) for v in exhaustive)
    lines = ["# Step values: cost against exhaustive per-step rollouts", "",
             f"Machine: {describe()}", f"Model: `{args.model}`", "",
             f"{len(found)} incorrect arith traces ({n_steps} steps in all), {args.rollouts} rollouts per prefix, "
             f"best-of-{args.best_of} values, rollouts of at most 48 tokens.", "",
             "| strategy | prefixes rolled out | tokens generated | tokens vs exhaustive "
             "| critical step = exhaustive's | seconds |", "|---|---:|---:|---:|---:|---:|"]
    for strategy in STRATEGIES:
        values = runs[strategy]
        tokens = sum(v.tokens_generated for v in values)
        agree = sum(v.critical_step == e.critical_step for v, e in zip(values, exhaustive))
        lines.append(f"| {strategy} | {sum(v.rolled_out for v in values)} | {tokens:,} | "
                     f"{tokens / base_tokens:.0%} | {agree}/{len(values)} | {seconds[strategy]:.1f} |")
    zero_min = sum(min(v.Q) == 0.0 for v in exhaustive)
    monotone = sum(all(a >= b for a, b in zip(v.Q, v.Q[1:])) for v in exhaustive)
    prefill = sum(len(tokenizer(prompt + p)["input_ids"]) for (_, prompt, _), v in zip(found, exhaustive)
                  for p in v.prefixes)
    lines += ["", f"Exhaustive values: lowest Q is 0 in {zero_min}/{len(found)} traces (where early_stop can stop); "
              f"Q never rises along {monotone}/{len(found)} traces (bisect's assumption).",
              f"KV-cache sharing: {prefill:,} prefix tokens prefilled once per prefix instead of "
              f"{prefill * args.rollouts:,} with one prefill per rollout."]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
