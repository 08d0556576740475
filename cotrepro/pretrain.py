"""Training a micro model from scratch: the transformers Trainer on (prompt, completion) texts.

Used by `cotrepro.micro` to pretrain the world's models: loss on the completion and EOS (a prompt
of "" makes the whole document the target), AdamW, cosine decay to zero, 5% warmup, batches of
similar length, and a held-out accuracy curve written as the run goes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def _collate(pad_id: int):
    """Right-padded batches; labels -100 on padding and on each example's prompt tokens."""
    import torch

    def collate(features: list[dict]) -> dict:
        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), pad_id, dtype=torch.long)
        labels = torch.full((len(features), longest), -100, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"])
            mask[row, :n] = 1
            labels[row, f["n_prompt"]:n] = ids[row, f["n_prompt"]:n]
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
    return collate


def train_from_scratch(model, tokenizer, examples: list[tuple[str, str]], *, steps: int, lr: float,
                       batch_size: int, seed: int, out_dir: Path, curve=None, curve_every: int = 0) -> dict:
    """Train `model` on (prompt, completion) texts, loss on the completion and EOS (a prompt of ""
    makes the whole document the target), with the transformers Trainer: AdamW, cosine decay to
    zero, 5% warmup, batches of similar length (`group_by_length`: little compute on padding).

    `curve(model)` is called every `curve_every` steps and at the end; returns the loss curve and
    the curve's points.
    """
    from transformers import (
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    max_len = model.config.max_position_embeddings
    dataset = []
    for prompt, completion in examples:
        prompt_ids = tokenizer(prompt)["input_ids"] if prompt else []
        ids = tokenizer(prompt + completion)["input_ids"] + [tokenizer.eos_token_id]
        if len(ids) > max_len:
            raise ValueError(f"a training document has {len(ids)} tokens, more than max_seq_len {max_len}")
        dataset.append({"input_ids": ids, "n_prompt": len(prompt_ids), "length": len(ids)})
    points: list[dict] = []
    out_dir.mkdir(parents=True, exist_ok=True)

    class Curve(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if curve is not None and curve_every and state.global_step % curve_every == 0 \
                    and state.global_step < steps:
                _point(kwargs["model"], state.global_step)

    def _point(m, step):
        m.eval()
        points.append({"step": step, **curve(m)})
        m.train()
        with open(out_dir / "curve.jsonl", "a") as f:  # readable while a long run goes on
            f.write(json.dumps(points[-1]) + "\n")

    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"), max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.01,
        logging_steps=max(1, steps // 100), save_strategy="no", report_to="none", use_cpu=True, seed=seed,
        data_seed=seed, disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
        train_sampling_strategy="group_by_length",
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=_collate(tokenizer.pad_token_id),
                      callbacks=[Curve()])
    trainer.remove_callback(PrinterCallback)  # the loss curve is saved to curves.json instead
    trainer.train()
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)  # nothing is checkpointed there
    if curve is not None:
        _point(model, steps)
        (out_dir / "curve.jsonl").unlink()
    model.eval()
    return {"loss": [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h],
            "accuracy": points}
