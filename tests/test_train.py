"""SFT label masking, LoRA SFT learning, resuming after a kill, and the RFT data filter."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from cotrepro import generate
from cotrepro.tasks.base import Problem, Verdict
from cotrepro.train import TrainParams, rft_dataset, sft, sft_trainer
from _tiny import char_tokenizer, tiny_llama, with_lora

torch.set_num_threads(1)

EXAMPLES = [{"prompt": "Q: 1+2=?\n", "completion": "1+2=3\nA: 3"},
            {"prompt": "Q: 10+20=?\n", "completion": "10+20=30\nA: 30"},
            {"prompt": "Q: 4+4=?\n", "completion": "4+4=8\nA: 8"},
            {"prompt": "Q: 7+1=?\n", "completion": "7+1=8\nA: 8"}]


def fast(**overrides) -> TrainParams:
    base = dict(lr=1e-2, epochs=1.0, batch_size=2, warmup_ratio=0.0, save_steps=100, max_length=64)
    return TrainParams(**{**base, **overrides})


def batch_loss(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        return model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss.item()


def test_sft_labels_only_completion_and_eos(tmp_path):
    tok = char_tokenizer()
    trainer = sft_trainer(tiny_llama(tok), tok, EXAMPLES[:2], fast(), tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    width = batch["labels"].shape[1]
    for row, ex in enumerate(EXAMPLES[:2]):
        prompt_ids = tok(ex["prompt"])["input_ids"]  # BOS + one token per character
        completion_ids = tok(ex["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n_pad = width - len(prompt_ids) - len(completion_ids)
        expected = [-100] * len(prompt_ids) + completion_ids + [-100] * n_pad
        assert batch["labels"][row].tolist() == expected
        assert batch["input_ids"][row].tolist()[:len(prompt_ids) + len(completion_ids)] == prompt_ids + completion_ids
        assert batch["attention_mask"][row].tolist() == [1] * (width - n_pad) + [0] * n_pad


def test_train_params_reach_the_trainer(tmp_path):
    tok = char_tokenizer()
    params = TrainParams(lr=3e-4, epochs=2.0, batch_size=3, grad_accum=5, warmup_ratio=0.2, weight_decay=0.05,
                         lr_scheduler="cosine", seed=7, save_steps=9, max_length=77)
    args = sft_trainer(tiny_llama(tok), tok, EXAMPLES, params, tmp_path).args
    assert (args.learning_rate, args.num_train_epochs, args.per_device_train_batch_size) == (3e-4, 2.0, 3)
    assert (args.gradient_accumulation_steps, args.warmup_steps, args.weight_decay) == (5, 0.2, 0.05)
    assert (args.lr_scheduler_type, args.seed, args.save_steps, args.max_length) == ("cosine", 7, 9, 77)
    assert args.completion_only_loss and not args.bf16  # fp32 on CPU


def test_lora_sft_lowers_loss_and_saves_curve(tmp_path):
    tok = char_tokenizer()
    model = with_lora(tiny_llama(tok))
    trainer = sft_trainer(model, tok, EXAMPLES, fast(), tmp_path / "probe")
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(EXAMPLES))])
    before = batch_loss(model, batch)
    result = sft(model, tok, EXAMPLES, fast(epochs=8.0), tmp_path / "run")
    after = batch_loss(result.model, batch)
    assert after < before - 0.2
    curve = json.loads((tmp_path / "run" / "loss.json").read_text())
    assert [r["step"] for r in curve] == list(range(1, result.global_step + 1))
    assert curve == result.loss_curve
    assert (result.final_dir / "adapter_config.json").exists()


class KillAt(TrainerCallback):
    """Stands in for SIGKILL: stops the process's training abruptly at a given step."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_sft_resumes_after_a_kill_and_matches_an_uninterrupted_run(tmp_path):
    tok = char_tokenizer()
    params = fast(epochs=2.0, batch_size=1, save_steps=2)  # 8 steps, checkpoints at 2, 4, 6, 8
    straight = sft(with_lora(tiny_llama(tok)), tok, EXAMPLES, params, tmp_path / "straight")

    killed = sft_trainer(with_lora(tiny_llama(tok)), tok, EXAMPLES, params, tmp_path / "killed")
    killed.add_callback(KillAt(5))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    resumed = sft(with_lora(tiny_llama(tok)), tok, EXAMPLES, params, tmp_path / "killed")

    assert resumed.resumed_from.endswith("checkpoint-4")
    assert resumed.global_step == straight.global_step == 8
    assert [r["step"] for r in resumed.loss_curve] == list(range(1, 9))
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        if "lora_" in name:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_sft_rejects_an_example_without_completion(tmp_path):
    tok = char_tokenizer()
    with pytest.raises(ValueError, match="example 1 lacks string field"):
        sft(tiny_llama(tok), tok, [EXAMPLES[0], {"prompt": "Q"}], fast(), tmp_path)


class AnswerTask:
    """A stand-in task: a completion is correct when its last line is 'A: <gold answer>'."""

    name = "toy"

    def prompt(self, problem: Problem, template: str = "default") -> str:
        return f"Q: {problem.question}\n"

    def verify(self, problem: Problem, completion: str) -> Verdict:
        last = completion.strip().splitlines()[-1] if completion.strip() else ""
        return Verdict(correct=last == f"A: {problem.answer}", extracted=last or None)


def test_rft_dataset_keeps_correct_unique_completions_up_to_the_cap(monkeypatch):
    problems = [Problem("p1", "1+2", "3"), Problem("p2", "2+2", "4"), Problem("p3", "5+5", "10")]
    canned = {"Q: 1+2\n": ["1+2=3\nA: 3", "A: 4", " 1+2=3\nA: 3\n", "2+1=3\nA: 3", "3\nA: 3"],
              "Q: 2+2\n": ["A: 5", "2+2=4\nA: 4"],
              "Q: 5+5\n": ["A: 11", ""]}
    seen = {}

    def fake_sample(model, tokenizer, prompts, sampling, **kwargs):
        seen["prompts"], seen["k"] = prompts, sampling.k
        return [canned[p] for p in prompts]

    monkeypatch.setattr(generate, "sample", fake_sample)
    examples = rft_dataset(None, None, AnswerTask(), problems, generate.SamplingParams(k=5), cap_per_problem=2)
    assert seen == {"prompts": ["Q: 1+2\n", "Q: 2+2\n", "Q: 5+5\n"], "k": 5}
    assert examples == [
        {"prompt": "Q: 1+2\n", "completion": "1+2=3\nA: 3", "problem_id": "p1"},  # the copy with spaces is a duplicate
        {"prompt": "Q: 1+2\n", "completion": "2+1=3\nA: 3", "problem_id": "p1"},  # capped at 2: "3\nA: 3" dropped
        {"prompt": "Q: 2+2\n", "completion": "2+2=4\nA: 4", "problem_id": "p2"},
    ]
