"""Supervised fine-tuning (SFT, and RFT, which is SFT on self-generated positives).

`sft` trains on prompt/completion pairs with the loss on completion tokens only (TRL's SFTTrainer
with `completion_only_loss`; it runs on transformers' Trainer, so `accelerate launch` gives DDP or
FSDP with no code of ours). `finetune` is the unit every experiment uses: load a base model, train
every weight or a fresh LoRA adapter (initialised from the run's seed, the same way everywhere),
merge the adapter, and save a plain checkpoint (`out_dir/model`) that loads like any other model.

Resuming: a run checkpoints every `save_steps`; rerun into the same `out_dir` and it continues
from the newest COMPLETE checkpoint. A checkpoint is complete when its trainer state (written
last) parses and its weights and optimizer state are there; a process killed while writing one
leaves an incomplete folder, which is deleted (transformers would otherwise refuse to resume from
it: "Can't find a valid checkpoint").
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cotrepro.sections import FinetuneSection, LoraParams, TrainParams  # noqa: F401 (re-exported)


@dataclass
class TrainResult:
    """What a training run produced."""

    model: Any  # the trained model (a PeftModel when an adapter was trained)
    out_dir: Path
    global_step: int
    train_loss: float  # mean training loss over the run, as the Trainer reports it
    loss_curve: list[dict]  # one record per logged step: step, epoch, loss, learning_rate
    resumed_from: str | None  # the checkpoint this run resumed from, None for a fresh run


def trainer_kwargs(params: TrainParams, out_dir: Path, seed: int) -> dict:
    """The TrainingArguments fields common to SFTConfig and DPOConfig."""
    import torch

    on_gpu = torch.cuda.is_available()
    bf16 = on_gpu and params.precision != "fp32" and torch.cuda.is_bf16_supported()
    if params.precision == "bf16" and not bf16:
        raise ValueError("precision 'bf16' needs a GPU with bf16 support; use 'auto' or 'fp32'")
    return dict(
        output_dir=str(out_dir), learning_rate=params.lr, num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size, gradient_accumulation_steps=params.grad_accum,
        warmup_steps=params.warmup_ratio,  # transformers reads a float below 1 as a share of the steps
        weight_decay=params.weight_decay, lr_scheduler_type=params.lr_scheduler, seed=seed, data_seed=seed,
        logging_steps=1, save_strategy="steps", save_steps=params.save_steps, save_total_limit=2,
        bf16=bf16, fp16=False, use_cpu=not on_gpu, **{_checkpointing_argument(): params.gradient_checkpointing},
        max_length=params.max_length, report_to=[], disable_tqdm=True, dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
    )


@cache
def _checkpointing_argument() -> str:
    """TrainingArguments' name for activation checkpointing: `activation_checkpointing` from
    transformers 5.23, `gradient_checkpointing` before (the engines environment pins 5.19, the
    newest vLLM allows; the old name is a deprecated alias in newer releases)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def is_main_process() -> bool:
    """False on the ranks other than 0 of a multi-process launch: only rank 0 writes results."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _complete(checkpoint: Path, step: int) -> bool:
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    weights = any((checkpoint / name).is_file() for name in ("model.safetensors", "adapter_model.safetensors",
                                                             "pytorch_model.bin"))
    return state.get("global_step") == step and weights and (checkpoint / "optimizer.pt").is_file()


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest complete `checkpoint-N` folder of `out_dir` (incomplete ones are deleted)."""
    if not out_dir.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in out_dir.iterdir()
                    if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
    for step, path in found:
        if _complete(path, step):
            return str(path)
        shutil.rmtree(path)  # killed while it was being written
    return None


def run_trainer(trainer, out_dir: Path) -> TrainResult:
    """Train (resuming from the newest complete checkpoint in `out_dir`), save the loss curve."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the loss curve goes to loss.json, not to stdout
    resume = last_checkpoint(out_dir)
    output = trainer.train(resume_from_checkpoint=resume)
    curve = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"], "learning_rate": h.get("learning_rate")}
             for h in trainer.state.log_history if "loss" in h]
    if trainer.is_world_process_zero():
        (out_dir / "loss.json").write_text(json.dumps(curve, indent=1))
    return TrainResult(model=trainer.model, out_dir=out_dir, global_step=trainer.state.global_step,
                       train_loss=output.training_loss, loss_curve=curve, resumed_from=resume)


def check_examples(examples: list[dict], keys: tuple[str, ...], what: str) -> None:
    """Raise a one-line ValueError unless every example has string fields `keys`."""
    if not examples:
        raise ValueError(f"{what}: no examples to train on")
    for i, ex in enumerate(examples):
        missing = [k for k in keys if not isinstance(ex.get(k), str)]
        if missing:
            raise ValueError(f"{what}: example {i} lacks string field(s) {', '.join(missing)}")


def sft_trainer(model, tokenizer, examples: list[dict], params: TrainParams, out_dir: str | Path, seed: int = 0):
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
    config = SFTConfig(**trainer_kwargs(params, out_dir, seed), completion_only_loss=True, packing=False,
                       shuffle_dataset=False, dataset_num_proc=None)
    dataset = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]} for e in examples])
    return SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)


def sft(model, tokenizer, examples: list[dict], params: TrainParams, out_dir: str | Path, seed: int = 0) -> TrainResult:
    """Fine-tune `model` on prompt/completion examples, loss on completion tokens only."""
    trainer = sft_trainer(model, tokenizer, examples, params, out_dir, seed)
    return run_trainer(trainer, Path(out_dir))


def prepare(model, method: str, lora: LoraParams | None, seed: int):
    """The model to train: itself (full fine-tuning) or wrapped in a fresh LoRA adapter whose
    initialisation is drawn from `seed` (so a run's seed fixes its adapter as well as its data order)."""
    if method == "full":
        model.train()
        return model
    import torch

    from cotrepro.models import add_lora

    torch.manual_seed(seed)
    return add_lora(model, lora or LoraParams())


def save_trained(model, tokenizer, method: str, out: Path) -> Path:
    """Merge a LoRA adapter (if any) and save a plain checkpoint with its tokenizer."""
    from cotrepro.models import merge_adapter

    if method == "lora":
        model = merge_adapter(model)
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def finetune(model, tokenizer, examples: list[dict], section: FinetuneSection, seed: int, out_dir: Path) -> Path:
    """SFT of `model` on `examples`; the plain trained checkpoint at `out_dir/model`.

    Resumable: a finished model is returned as is; an interrupted run continues from its last
    complete checkpoint in `out_dir/train`.
    """
    out = Path(out_dir) / "model"
    if (out / "config.json").is_file():
        return out
    model = prepare(model, section.method, section.lora, seed)
    result = sft(model, tokenizer, examples, section.train, Path(out_dir) / "train", seed)
    if not is_main_process():
        return out
    save_trained(result.model, tokenizer, section.method, out)
    shutil.copy(Path(out_dir) / "train" / "loss.json", Path(out_dir) / "loss.json")
    shutil.rmtree(Path(out_dir) / "train")  # checkpoints are only for resuming
    return out


def finetune_job(spec: dict, out_dir: Path) -> None:
    """A `cotrepro.jobs` job: spec = {"base": model ref, "examples": [...], "finetune": section dict,
    "seed": int}. The run root is the one the job folder lies in."""
    from cotrepro import specs
    from cotrepro.params import from_dict
    from cotrepro.quiet import quiet_libraries

    quiet_libraries()
    root = Path(out_dir).parents[2]
    section = from_dict(FinetuneSection, spec["finetune"])
    if not (Path(out_dir) / "model" / "config.json").is_file():
        model, tokenizer = specs.load(spec["base"], root, training=True)
        finetune(model, tokenizer, spec["examples"], section, spec["seed"], Path(out_dir))
    if is_main_process():
        (Path(out_dir) / "data.json").write_text(json.dumps({"n_examples": len(spec["examples"])}))


def optimizer_steps(n_examples: int, params: TrainParams) -> float:
    """Optimizer steps a run over `n_examples` takes (`ceil(n / batch) * epochs`), for budgets."""
    return math.ceil(n_examples / (params.batch_size * params.grad_accum)) * params.epochs


def rft_data(positives: list[dict], samples: list[dict], n: int, cap: int, first: int | None = None) -> list[dict]:
    """SFT data of rung n plus the self-generated positives: per problem, the distinct correct
    samples (among the first `first` samples, if given), at most `cap`, in sampling order."""
    by_problem: dict[str, list[dict]] = {}
    for s in samples:
        by_problem.setdefault(s["problem_id"], []).append(s)
    data = list(positives[:n])
    for e in positives[:n]:
        kept: list[str] = []
        for s in by_problem.get(e["problem_id"], [])[:first]:
            text = s["completion"].strip()
            if s["correct"] and text and text not in kept and len(kept) < cap:
                kept.append(text)
                data.append({"prompt": e["prompt"], "completion": s["completion"], "problem_id": e["problem_id"]})
    return data
