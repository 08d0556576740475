"""Sampling throughput of a micro model: cotrepro's `sample` against plain transformers `generate`.

    python bench/bench_sampling.py [--model DIR] [--prompts 64] [--k 4] [--threads 1]

Same model, same prompts (held-out arith test questions in the micro prompt), same run, three ways:
  1. per-prompt `model.generate(do_sample=True, num_return_sequences=k)`: the naive loop;
  2. unbucketed batches: `generate` on the prompts in their given order, `batch_size` sequences
     per call, left padding (what one writes without sorting by length);
  3. `cotrepro.generate.sample`: length-bucketed batches, per-prompt seeds, stop strings.
Tokens are the generated tokens up to EOS (for `sample`: the kept text's tokens plus one for the
EOS or the stop string it cut).
Prints a Markdown table and writes bench/results/sampling.md. Without --model it uses the default
micro world's teacher (pretraining it first, a few minutes, if it is not cached under runs/micro).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from _machine import describe, record_throughput
from cotrepro.generate import SamplingParams, sample
from cotrepro.micro import PretrainParams, pretrain_micro
from cotrepro.models import load_model
from cotrepro.tasks import arith
from cotrepro.tasks.prompts import get_template

RESULTS = Path(__file__).with_name("results") / "sampling.md"


def generated_tokens(output: torch.Tensor, prompt_length: int, eos_id: int) -> int:
    """Generated tokens of a `generate` output, up to and including each row's first EOS."""
    is_eos = (output[:, prompt_length:] == eos_id).int()
    return int((is_eos.cumsum(dim=1) - is_eos == 0).sum())



def run_generate(model, tokenizer, prompts: list[str], sampling: SamplingParams, per_call: int) -> int:
    """Plain `generate` over `prompts` in order, `per_call` prompts per call; returns tokens generated."""
    tokens = 0
    for start in range(0, len(prompts), per_call):
        batch = tokenizer(prompts[start:start + per_call], return_tensors="pt", padding=True)
        with torch.inference_mode():
            output = model.generate(**batch, do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                                    num_return_sequences=sampling.k, max_new_tokens=sampling.max_new_tokens,
                                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        tokens += generated_tokens(output, batch["input_ids"].shape[1], tokenizer.eos_token_id)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: the micro world's teacher)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per generate call")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model_dir = args.model or pretrain_micro(PretrainParams(), "runs/micro")["teacher"]
    model, tokenizer = load_model(model_dir, device="cpu")
    problems = arith.TASK.load("test", limit=args.prompts)
    prompts = [arith.TASK.prompt(p, "arith") for p in problems]
    sampling = SamplingParams(k=args.k, temperature=1.0, max_new_tokens=args.max_new_tokens,
                              stop=get_template("arith", "arith").stop, batch_size=args.batch_size)

    rows = []
    for name, run in [
        ("per-prompt `generate` (num_return_sequences=k)", lambda: run_generate(model, tokenizer, prompts, sampling, 1)),
        (f"unbucketed `generate` batches ({args.batch_size} seqs)",
         lambda: run_generate(model, tokenizer, prompts, sampling, max(1, args.batch_size // args.k))),
        (f"cotrepro `sample` (bucketed, {args.batch_size} seqs)", lambda: sum(
            len(tokenizer(c, add_special_tokens=False)["input_ids"]) + 1
            for cs in sample(model, tokenizer, prompts, sampling, progress=False) for c in cs)),
    ]:
        started = time.perf_counter()
        tokens = run()
        seconds = time.perf_counter() - started
        rows.append((name, tokens, seconds))

    machine = (f"{describe()}; model {Path(model_dir).name} ({model.num_parameters() / 1e6:.2f}M params)")
    lines = [f"Sampling throughput, {len(prompts)} arith prompts x k={args.k}, T=1.0, "
             f"max {args.max_new_tokens} new tokens. Machine: {machine}.", "",
             "| method | tokens | seconds | tokens/s | speed-up |", "|---|---:|---:|---:|---:|"]
    base = rows[0][1] / rows[0][2]
    for name, tokens, seconds in rows:
        lines.append(f"| {name} | {tokens} | {seconds:.1f} | {tokens / seconds:.0f} | {tokens / seconds / base:.1f}x |")
    table = "\n".join(lines)
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table + "\n")
    name, tokens, seconds = rows[-1]
    record_throughput(sample_tokens_per_s=round(tokens / seconds))


if __name__ == "__main__":
    main()
