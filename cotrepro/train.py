"""Supervised fine-tuning (SFT) and rejection-sampling fine-tuning (RFT).

`sft` trains on prompt/completion pairs with the loss on completion tokens only (TRL's SFTTrainer
with `completion_only_loss`, which runs on transformers' Trainer, so accelerate handles DDP/FSDP
when launched with `accelerate launch`). Every run writes `out_dir/loss.json` and checkpoints every
`save_steps`; a run whose `out_dir` already holds a checkpoint resumes from the last one (after a
kill, or to extend training to more epochs). The model passed in is trained as is: wrap it in a
LoRA adapter first (`cotrepro.models.add_lora`) for parameter-efficient training.

RFT (Setlur et al. 2024, after Yuan et al. 2023): sample k completions per problem from the
current model, keep the verifier-correct ones, drop duplicates, cap the number kept per problem,
then `sft` on them. DPO and the pair builders live in `cotrepro.dpo` and `cotrepro.pairs`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from cotrepro.params import param


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings shared by SFT, RFT and DPO (Shape of Thought's release in comments)."""

    lr: float = param(1e-4, "peak learning rate (SoT full fine-tuning: 1e-6; LoRA needs ~1e-4 to 2e-4)", gt=0)
    epochs: float = param(1.0, "passes over the data (SoT: 10)", gt=0)
    batch_size: int = param(4, "examples per device per step (SoT: 4)", ge=1)
    grad_accum: int = param(1, "gradient accumulation steps (SoT: 16, effective batch 64)", ge=1)
    warmup_ratio: float = param(0.1, "share of steps with linear warmup (SoT: 0.1)", ge=0, le=0.9)
    weight_decay: float = param(0.0, "AdamW weight decay (SoT: 0.05)", ge=0)
    max_length: int = param(1024, "longest tokenised prompt+completion; longer ones are truncated (SoT: 1024)", ge=8)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = param(
        "linear", "learning-rate schedule after warmup (SoT: linear decay)")
    seed: int = param(42, "seed for initialisation of new weights and data order (SoT: 42)")
    logging_steps: int = param(1, "log the loss every this many optimiser steps", ge=1)
    save_steps: int = param(50, "write a resumable checkpoint every this many optimiser steps", ge=1)
    save_total_limit: int = param(2, "checkpoints kept on disk (older ones are deleted)", ge=1)
    precision: Literal["auto", "fp32", "bf16"] = param(
        "auto", "auto = bf16 mixed precision on a GPU that supports it, fp32 otherwise (always fp32 on CPU)")
    gradient_checkpointing: bool = param(False, "recompute activations in the backward pass to save memory")


@dataclass
class TrainResult:
    """What a training run produced."""

    model: Any  # the trained model (a PeftModel when an adapter was trained)
    out_dir: Path
    final_dir: Path  # out_dir/final: the saved model or adapter (save_pretrained format)
    global_step: int
    train_loss: float  # mean training loss over the run, as the Trainer reports it
    loss_curve: list[dict]  # one record per logged step: step, epoch, loss, learning_rate
    resumed_from: str | None  # the checkpoint this run resumed from, None for a fresh run
    runtime_s: float


def trainer_kwargs(params: TrainParams, out_dir: Path) -> dict:
    """The TrainingArguments fields common to SFTConfig and DPOConfig."""
    on_gpu = torch.cuda.is_available()
    bf16 = on_gpu and params.precision != "fp32" and torch.cuda.is_bf16_supported()
    if params.precision == "bf16" and not bf16:
        raise ValueError("precision 'bf16' needs a GPU with bf16 support; use 'auto' or 'fp32'")
    return dict(
        output_dir=str(out_dir), learning_rate=params.lr, num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size, gradient_accumulation_steps=params.grad_accum,
        warmup_steps=params.warmup_ratio,  # transformers reads a float below 1 as a share of the steps
        weight_decay=params.weight_decay,
        lr_scheduler_type=params.lr_scheduler, seed=params.seed, data_seed=params.seed,
        logging_steps=params.logging_steps, save_strategy="steps", save_steps=params.save_steps,
        save_total_limit=params.save_total_limit, bf16=bf16, fp16=False, use_cpu=not on_gpu,
        activation_checkpointing=params.gradient_checkpointing, max_length=params.max_length,
        report_to=[], disable_tqdm=True, dataloader_num_workers=0,
    )


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest `checkpoint-N` folder in `out_dir`, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out_dir)) if out_dir.is_dir() else None


def run_trainer(trainer, out_dir: Path) -> TrainResult:
    """Train (resuming from the last checkpoint in `out_dir` if any), save the model and loss curve."""
    resume = last_checkpoint(out_dir)
    output = trainer.train(resume_from_checkpoint=resume)
    curve = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"],
              "learning_rate": h.get("learning_rate")}
             for h in trainer.state.log_history if "loss" in h]
    if trainer.is_world_process_zero():
        (out_dir / "loss.json").write_text(json.dumps(curve, indent=1))
    final_dir = out_dir / "final"
    trainer.save_model(str(final_dir))
    return TrainResult(model=trainer.model, out_dir=out_dir, final_dir=final_dir,
                       global_step=trainer.state.global_step, train_loss=output.training_loss,
                       loss_curve=curve, resumed_from=resume,
                       runtime_s=output.metrics.get("train_runtime", math.nan))


def check_examples(examples: list[dict], keys: tuple[str, ...], what: str) -> None:
    """Raise a one-line ValueError unless every example has string fields `keys`."""
    if not examples:
        raise ValueError(f"{what}: no examples to train on")
    for i, ex in enumerate(examples):
        missing = [k for k in keys if not isinstance(ex.get(k), str)]
        if missing:
            raise ValueError(f"{what}: example {i} lacks string field(s) {', '.join(missing)}")


def sft_trainer(model, tokenizer, examples: list[dict], params: TrainParams, out_dir: str | Path):
    """The configured SFTTrainer behind `sft` (exposed so tests and benchmarks can inspect batches).

    Examples are `{"prompt", "completion"}` texts; TRL appends EOS to each completion, labels the
    completion and EOS, and sets prompt and padding labels to -100 (`completion_only_loss`).
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    check_examples(examples, ("prompt", "completion"), "sft")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if tokenizer.pad_token is None:
        raise ValueError("sft: the tokenizer has no pad token (load it with cotrepro.models.load_model)")
    config = SFTConfig(**trainer_kwargs(params, out_dir), completion_only_loss=True, packing=False,
                       shuffle_dataset=False)
    dataset = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]} for e in examples])
    return SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)


def sft(model, tokenizer, examples: list[dict], params: TrainParams, out_dir: str | Path) -> TrainResult:
    """Fine-tune `model` on prompt/completion examples, loss on completion tokens only."""
    trainer = sft_trainer(model, tokenizer, examples, params, out_dir)
    return run_trainer(trainer, Path(out_dir))


def rft_dataset(model, tokenizer, task, problems, sampling, *, cap_per_problem: int,
                template: str = "default", store=None, model_id: str = "") -> list[dict]:
    """Self-generated positives for RFT: sample `sampling.k` completions per problem from `model`,
    keep those the task's verifier marks correct, drop exact duplicates (after stripping
    whitespace at the ends), keep at most `cap_per_problem` per problem in sampling order.

    Returns SFT examples `{"prompt", "completion", "problem_id"}`. `store` makes sampling
    resumable (see `cotrepro.generate.sample`).
    """
    from cotrepro import generate

    if cap_per_problem < 1:
        raise ValueError(f"rft_dataset: cap_per_problem must be at least 1, got {cap_per_problem}")
    prompts = [task.prompt(p, template) for p in problems]
    samples = generate.sample(model, tokenizer, prompts, sampling, store=store, model_id=model_id,
                              progress=False)
    examples = []
    for problem, prompt, completions in zip(problems, prompts, samples):
        kept: set[str] = set()
        for completion in completions:
            if len(kept) == cap_per_problem:
                break
            key = completion.strip()
            if not key or key in kept:
                continue
            if task.verify(problem, completion).correct:
                kept.add(key)
                examples.append({"prompt": prompt, "completion": completion, "problem_id": problem.id})
    return examples
