"""DPO, standard and per-step, from a reference model (for per-step DPO, the SFT model: Setlur et
al. 2024).

The policy starts as the reference. With LoRA it is the reference with a fresh adapter on top:
TRL's DPOTrainer, given `ref_model=None` and a PeftModel, computes reference log-probs with the
adapter disabled, so no second copy of the model is held. With full fine-tuning TRL keeps a frozen
copy as the reference. `dpo_finetune` is the unit the experiments use: it saves a plain merged
checkpoint, as `train.finetune` does.

Pairs are `{"prompt", "chosen", "rejected", "rejected_is_prefix"}`. Per-step DPO's rejected side
is the prefix of an incorrect trace ending at its critical step: the trace goes on after it, so
ending it with EOS would teach the model that the prefix is a whole response. TRL appends EOS to
every rejected text (`DPOTrainer._prepare_dataset`), so this module overrides that one method:
EOS goes after the chosen side and after a complete rejected side, never after a prefix.
Everything else (collation, loss, reference pass, checkpoints) is TRL's.
"""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path

from cotrepro.sections import DPOParams, DPOSection, TrainParams
from cotrepro.train import (TrainResult, check_examples, is_main_process, prepare, run_trainer, save_trained,
                            trainer_kwargs)


def tokenize_pair(tokenizer, pair: dict) -> dict:
    """Token ids of one pair as DPOTrainer's collator wants them: prompt_ids, chosen_ids, rejected_ids.

    The prompt and each response are tokenised together and split where the token sequences
    diverge from the prompt's own, as TRL does; EOS follows the chosen response, and the rejected
    one unless `pair["rejected_is_prefix"]`.
    """
    from trl.data_utils import common_prefix_length

    prompt_ids = tokenizer(pair["prompt"])["input_ids"]
    chosen_full = tokenizer(pair["prompt"] + pair["chosen"])["input_ids"]
    rejected_full = tokenizer(pair["prompt"] + pair["rejected"])["input_ids"]
    n = min(common_prefix_length(prompt_ids, chosen_full), common_prefix_length(prompt_ids, rejected_full))
    eos = [tokenizer.eos_token_id]
    return {"prompt_ids": prompt_ids[:n], "chosen_ids": chosen_full[n:] + eos,
            "rejected_ids": rejected_full[n:] + ([] if pair["rejected_is_prefix"] else eos)}


@cache
def prefix_aware_trainer_class():
    """DPOTrainer whose tokenisation leaves EOS off rejected prefixes (see the module docstring).

    Built on first use: importing TRL takes seconds, which `cotrepro validate` and every notebook
    that never trains with DPO should not pay.
    """
    from trl import DPOTrainer
    from trl.trainer.utils import global_then_local_main_first

    class PrefixAwareDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            with global_then_local_main_first():  # as TRL does: the main process fills the datasets cache first
                dataset = dataset.map(lambda pair: tokenize_pair(processing_class, pair),
                                      desc=f"Tokenizing {dataset_name} pairs")
                if args.max_length is not None:  # as TRL does: a prompt filling max_length leaves nothing to learn
                    dataset = dataset.filter(lambda ex: len(ex["prompt_ids"]) < args.max_length)
            return dataset

    return PrefixAwareDPOTrainer


def __getattr__(name: str):
    if name == "PrefixAwareDPOTrainer":
        return prefix_aware_trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dpo_trainer(model, tokenizer, pairs: list[dict], params: TrainParams, out_dir: str | Path,
                dpo_params: DPOParams = DPOParams(), seed: int = 0):
    """The configured trainer behind `dpo` (exposed so tests can inspect batches and log-probs).

    A PeftModel trains its adapter against itself with the adapter off; any other model trains
    every weight against a frozen copy of itself, which TRL makes when `ref_model` is None.
    """
    from datasets import Dataset
    from peft import PeftModel
    from trl import DPOConfig

    check_examples(pairs, ("prompt", "chosen", "rejected"), "dpo")
    for i, pair in enumerate(pairs):
        if not isinstance(pair.get("rejected_is_prefix"), bool):
            raise ValueError(f"dpo: pair {i} lacks the boolean field rejected_is_prefix")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = DPOConfig(**trainer_kwargs(params, out_dir, seed), beta=dpo_params.beta,
                       loss_type=[dpo_params.loss_type], dataset_num_proc=None)
    keys = ("prompt", "chosen", "rejected", "rejected_is_prefix")
    dataset = Dataset.from_list([{k: p[k] for k in keys} for p in pairs])
    # Full fine-tuning: the reference is a frozen copy of the model as it is now (TRL, given None,
    # would reload the checkpoint its config names, not the weights in memory).
    reference = None if isinstance(model, PeftModel) else _frozen_copy(model)
    return prefix_aware_trainer_class()(model=model, ref_model=reference, args=config, train_dataset=dataset,
                                 processing_class=tokenizer)


def _frozen_copy(model):
    import copy

    reference = copy.deepcopy(model).eval()
    for weight in reference.parameters():
        weight.requires_grad_(False)
    return reference


def dpo(model, tokenizer, pairs: list[dict], params: TrainParams, out_dir: str | Path,
        dpo_params: DPOParams = DPOParams(), seed: int = 0) -> TrainResult:
    """Train `model` with DPO on `pairs` (see `dpo_trainer` for the reference)."""
    trainer = dpo_trainer(model, tokenizer, pairs, params, out_dir, dpo_params, seed)
    return run_trainer(trainer, Path(out_dir))


def dpo_finetune(model, tokenizer, pairs: list[dict], section: DPOSection, seed: int, out_dir: Path) -> Path:
    """DPO from `model` (also the reference of the loss); the plain trained checkpoint at
    `out_dir/model`. Resumable as `train.finetune` is."""
    out = Path(out_dir) / "model"
    if (out / "config.json").is_file():
        return out
    model = prepare(model, section.method, section.lora, seed)
    result = dpo(model, tokenizer, pairs, section.train, Path(out_dir) / "train", section.dpo, seed)
    if not is_main_process():
        return out
    save_trained(result.model, tokenizer, section.method, out)
    shutil.copy(Path(out_dir) / "train" / "loss.json", Path(out_dir) / "loss.json")
    shutil.rmtree(Path(out_dir) / "train")
    return out


def dpo_job(spec: dict, out_dir: Path) -> None:
    """A `cotrepro.jobs` job: spec = {"reference": model ref, "pairs": [...], "dpo": section dict, "seed"}."""
    from cotrepro import specs
    from cotrepro.params import from_dict
    from cotrepro.quiet import quiet_libraries

    quiet_libraries()
    root = Path(out_dir).parents[2]
    section = from_dict(DPOSection, spec["dpo"])
    if not (Path(out_dir) / "model" / "config.json").is_file():
        model, tokenizer = specs.load(spec["reference"], root, training=True)
        dpo_finetune(model, tokenizer, spec["pairs"], section, spec["seed"], Path(out_dir))
    if is_main_process():
        (Path(out_dir) / "data.json").write_text(json.dumps({"n_pairs": len(spec["pairs"])}))
