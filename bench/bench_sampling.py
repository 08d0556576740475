"""Sampling throughput on the micro teacher: cotrepro's decoder against batched `generate`.

    python bench/bench_sampling.py [--model DIR] [--prompts 256] [--k 4] [--threads 1]

Same model, same prompts (held-out arith questions in the micro prompt), same per-prompt seeds
(cotrepro's counter-based Gumbel noise), same stop strings, same length-sorted batches of
`--batch-size` sequences, in one run:
  1. baseline: transformers `generate` (`generate_baseline.GenerateBackend`: the honest batched baseline);
  2. cotrepro's decoder (`generate.DecodeBackend`, the default "hf" backend): finished rows leave
     the batch, and the k samples of a prompt share one prefill of the prompt.
Also, for scale, per-prompt `generate(num_return_sequences=k)` on the first quarter of prompts.
The two batched runs produce the same completions (checked): the ratio of their tokens/s is the
speed-up. Writes bench/results/sampling.md and the decoder's rate to throughput.json (for `plan`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from _machine import describe, record_throughput
from cotrepro.generate import SamplingParams, sample
from cotrepro.models import load_model
from cotrepro.paths import WORLD_DIR
from cotrepro.tasks import arith
from cotrepro.tasks.prompts import get_template

RESULTS = Path(__file__).with_name("results") / "sampling.md"


def tokens_of(tokenizer, outputs: list[list[str]]) -> int:
    """Tokens generated: each kept text's tokens plus one for the EOS or stop string that ended it."""
    return sum(len(tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for cs in outputs for c in cs)


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(WORLD_DIR / "teacher"), help="model folder (default: the micro teacher)")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=256, help="sequences per batch, both methods")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model, device="cpu")
    task = arith.ArithTask()
    prompts = [task.prompt(p, "arith") for p in task.load("test", limit=args.prompts)]
    sampling = SamplingParams(k=args.k, temperature=0.7, max_new_tokens=args.max_new_tokens,
                              stop=get_template("arith", "arith").stop, batch_size=args.batch_size)
    sample(model, tokenizer, prompts[:8], sampling, backend="hf", progress=False)  # warm-up
    baseline, base_s = timed(lambda: sample(model, tokenizer, prompts, sampling, backend="generate", progress=False))
    ours, ours_s = timed(lambda: sample(model, tokenizer, prompts, sampling, backend="hf", progress=False))
    same = sum(a == b for a, b in zip(baseline, ours))
    quarter = prompts[: max(1, len(prompts) // 4)]
    per_prompt, per_s = timed(lambda: [sample(model, tokenizer, [p], SamplingParams(
        k=args.k, temperature=0.7, max_new_tokens=args.max_new_tokens, stop=sampling.stop, batch_size=args.k),
        backend="generate", progress=False)[0] for p in quarter])

    rows = [(f"per-prompt `generate` ({len(quarter)} prompts)", tokens_of(tokenizer, per_prompt), per_s),
            (f"batched `generate` (baseline, {args.batch_size} seqs)", tokens_of(tokenizer, baseline), base_s),
            (f"cotrepro decoder ({args.batch_size} seqs)", tokens_of(tokenizer, ours), ours_s)]
    rate = {name: tokens / seconds for name, tokens, seconds in rows}
    base = rows[1][1] / rows[1][2]
    machine = f"{describe()}; model {Path(args.model).name} ({model.num_parameters() / 1e6:.2f}M params)"
    lines = [f"Sampling throughput: {len(prompts)} arith prompts x k={args.k}, T=0.7, at most {args.max_new_tokens} "
             f"new tokens, same per-prompt seeds. Machine: {machine}. The decoder's completions equal the "
             f"baseline's for {same} of {len(prompts)} prompts.", "",
             "| method | tokens | seconds | tokens/s | against batched `generate` |", "|---|---:|---:|---:|---:|"]
    for name, tokens, seconds in rows:
        lines.append(f"| {name} | {tokens} | {seconds:.1f} | {rate[name]:.0f} | {rate[name] / base:.2f}x |")
    table = "\n".join(lines)
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table + "\n")
    record_throughput("bench/results/sampling.md, micro teacher", sample_tokens_per_s=round(rows[2][1] / rows[2][2]))


if __name__ == "__main__":
    main()
