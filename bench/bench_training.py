"""Training throughput on CPU: SFT and DPO, full and LoRA, in tokens per second.

Run: `.venv/bin/python bench/bench_training.py [--examples 256] [--threads 1]`
Prints a Markdown table and writes bench/results/training.md.

The model is the shipped micro student (`world/student`, or `--model DIR`); the data are arith
problems with their step-by-step traces, and for DPO each trace against a copy with a wrong final
step (half of them cut to a prefix, as per-step DPO's negatives are). Tokens counted: every non-padding token of the training sequences (for DPO,
prompt+chosen and prompt+rejected; the reference pass over them is extra forward-only work).
Seconds are wall time of `trainer.train()` (optimisation only: tokenisation happens before).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _machine import describe, record_throughput
from cotrepro.dpo import DPOParams, dpo_trainer
from cotrepro.models import LoraParams, add_lora, load_model
from cotrepro.paths import WORLD_DIR
from cotrepro.quiet import quiet_libraries
from cotrepro.tasks import get_task
from cotrepro.tasks.arith import generate_problems, render_stepwise
from cotrepro.train import TrainParams, run_trainer, sft_trainer

RESULTS = Path(__file__).resolve().parent / "results" / "training.md"



def data(n: int) -> tuple[list[dict], list[dict]]:
    """SFT examples and DPO pairs from `n` arith problems."""
    task = get_task("arith")
    examples, pairs = [], []
    for i, problem in enumerate(generate_problems(n, seed=0)):
        prompt, trace = task.prompt(problem, "arith"), render_stepwise(problem)
        examples.append({"prompt": prompt, "completion": trace})
        lines = trace.splitlines()
        wrong = "\n".join(lines[:-1] + [f"#### {int(problem.answer) + 1}"])
        is_prefix = i % 2 == 1
        rejected = "\n".join(lines[:-2]) if is_prefix else wrong
        pairs.append({"prompt": prompt, "chosen": trace, "rejected": rejected, "rejected_is_prefix": is_prefix})
    return examples, pairs


def sequence_tokens(trainer, kind: str) -> int:
    rows = trainer.train_dataset
    if kind == "sft":
        return sum(len(r["input_ids"]) for r in rows)
    return sum(2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(WORLD_DIR / "student"))
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_libraries()
    examples, pairs = data(args.examples)
    params = TrainParams(lr=1e-3, epochs=1.0, batch_size=8, grad_accum=1, save_steps=10_000, max_length=160)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, lora in (("SFT full", "sft", False), ("SFT LoRA r=16", "sft", True),
                                 ("DPO full", "dpo", False), ("DPO LoRA r=16", "dpo", True)):
            model, tokenizer = load_model(args.model, device="cpu")
            n_params = model.num_parameters()
            if lora:
                model = add_lora(model, LoraParams(r=16, alpha=32, dropout=0.0))
            out = Path(tmp) / name.replace(" ", "_")
            trainer = (sft_trainer(model, tokenizer, examples, params, out) if kind == "sft"
                       else dpo_trainer(model, tokenizer, pairs, params, out, DPOParams()))
            tokens = sequence_tokens(trainer, kind)
            started = time.perf_counter()
            result = run_trainer(trainer, out)
            seconds = time.perf_counter() - started
            rows.append((name, n_params, len(trainer.train_dataset), result.global_step, tokens,
                         seconds, tokens / seconds))
    lines = ["# Training throughput (CPU)", "", f"Machine: {describe()}", "",
             "| run | base params | sequences | steps | tokens | seconds | tokens/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {p:,} | {s} | {st} | {t:,} | {sec:.1f} | {tps:,.0f} |" for n, p, s, st, t, sec, tps in rows]
    lines += ["", "Batch 8, one epoch, fp32. DPO counts prompt+chosen and prompt+rejected tokens (the reference "
              "pass, a frozen copy for full DPO and the adapter disabled for LoRA, is extra forward-only work)."]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    full_sft = next(r for r in rows if r[0] == "SFT full")  # the micro experiments fine-tune fully
    record_throughput("bench/results/training.md, SFT full, micro student", train_tokens_per_s=round(full_sft[-1]))


if __name__ == "__main__":
    main()
