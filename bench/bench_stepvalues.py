"""Cost of Monte Carlo step values: the cheap strategies against exhaustive per-step rollouts.

    python bench/bench_stepvalues.py [--model DIR] [--negatives 200] [--rollouts 16] [--threads 1]

The micro teacher's wrong traces on training problems (sampled at temperature 0.7) are valued
with best-of-5 values from `--rollouts` rollouts per prefix, by every strategy of
`cotrepro.stepvalues`, through the batched path the experiments use (`value_traces`, rollouts
drawn by `generate.sample_range` with per-(prefix, rollout) seeds, so a strategy that asks for a
rollout gets the one the exhaustive search draws). The table gives generated tokens, the ratio to
exhaustive rollouts, and how often each strategy names the same critical step as the exhaustive
search on the same draws, and as an exhaustive search on other draws (seed 2).

The row "exhaustive, other draws" is the noise floor: the exhaustive search run on seed 1
names the same critical step as on seed 0 far less often than 95% (LOG.md, 2026-12-04), so a
cheap strategy can match the same-draw answer that often only by drawing the same rollouts, and
its agreement with independent draws says whether it loses anything the exhaustive search keeps.
Writes bench/results/stepvalues.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from _machine import describe
from cotrepro.generate import SamplingParams, sample
from cotrepro.grade import grade_problems
from cotrepro.models import load_model
from cotrepro.paths import WORLD_DIR
from cotrepro.sections import StepValueParams
from cotrepro.stepvalues import value_traces
from cotrepro.tasks import arith
from cotrepro.tasks.prompts import get_template

RESULTS = Path(__file__).resolve().parent / "results" / "stepvalues.md"


def negatives(model, tokenizer, n: int, stop) -> list[tuple]:
    """`n` distinct wrong sampled traces with at least one step: (problem, prompt, trace)."""
    task = arith.ArithTask()
    problems = task.load("train", limit=2 * n, seed=7)
    prompts = [task.prompt(p, "arith") for p in problems]
    outs = sample(model, tokenizer, prompts, SamplingParams(k=4, temperature=0.7, max_new_tokens=160, stop=stop,
                                                          batch_size=256), progress=False)
    flat = [(p, q, c) for p, q, cs in zip(problems, prompts, outs) for c in dict.fromkeys(cs)]
    verdicts = grade_problems(task, [p for p, _, _ in flat], [c for _, _, c in flat], progress=False)
    found = [(p, q, c) for (p, q, c), v in zip(flat, verdicts)
             if not v["correct"] and v["extracted"] is not None and task.steps(c)]
    return found[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(WORLD_DIR / "teacher"))
    parser.add_argument("--negatives", type=int, default=200)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model, device="cpu")
    stop = tuple(get_template("arith", "arith").stop)
    items = negatives(model, tokenizer, args.negatives, stop)
    params = StepValueParams(rollouts=args.rollouts, best_of=5, temperature=1.0, max_new_tokens=160, batch_size=256)
    results = {}
    runs = (("exhaustive", "exhaustive", None), ("exhaustive, other draws", "exhaustive", None),
            ("early_stop", "early_stop", None),
            ("first_success (exact)", "first_success", None), ("first_success, zero after 12", "first_success", 12),
            ("first_success, zero after 8", "first_success", 8), ("first_success, zero after 4", "first_success", 4),
            ("first_success, shared", "first_success", None),
            ("first_success, shared, zero after 12", "first_success", 12),
            ("first_success, shared, zero after 10", "first_success", 10),
            ("first_success, shared, zero after 8", "first_success", 8), ("bisect", "bisect", None))
    for name, strategy, zero_after in runs:
        started = time.perf_counter()
        values = value_traces(model, tokenizer, arith.ArithTask(), items,
                              replace(params, zero_after=zero_after, share="shared" in name),
                              strategy=strategy, seed=1 if "other draws" in name else 0, stop=stop)
        results[name] = (values, time.perf_counter() - started)
    independent = value_traces(model, tokenizer, arith.ArithTask(), items, params, strategy="exhaustive", seed=2,
                               stop=stop)
    exhaustive = results["exhaustive"][0]
    full = sum(v.tokens_generated for v in exhaustive)
    lines = [f"Step values of {len(items)} wrong traces of the micro teacher, {args.rollouts} rollouts per prefix, "
             f"best-of-5 values, critical step = the first step with the lowest value. Machine: {describe()}.", "",
             "| strategy | generated tokens | against exhaustive | same critical step, same draws | "
             "same critical step as exhaustive on other draws | seconds |",
             "|---|---:|---:|---:|---:|---:|"]
    for strategy, (values, seconds) in results.items():
        tokens = sum(v.tokens_generated for v in values)
        same = sum(v.critical_step == e.critical_step for v, e in zip(values, exhaustive))
        agree = sum(v.critical_step == e.critical_step for v, e in zip(values, independent))
        lines.append(f"| {strategy} | {tokens} | {tokens / full:.2f}x ({full / tokens:.1f}x cheaper) | "
                     f"{same}/{len(items)} ({same / len(items):.1%}) | {agree}/{len(items)} ({agree / len(items):.1%}) | "
                     f"{seconds:.0f} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table + "\n")


if __name__ == "__main__":
    main()
