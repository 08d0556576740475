"""SFT label masking, LoRA SFT learning, resuming after a kill (`sft`, `last_checkpoint`,
`finetune`), and the RFT data filter (`train.rft_data`)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from transformers import TrainerCallback

from cotrepro import train
from cotrepro.grade import grade_problems
from cotrepro.models import load_model
from cotrepro.sections import FinetuneSection, LoraParams
from cotrepro.tasks.base import Problem, Verdict
from cotrepro.train import TrainParams, finetune, last_checkpoint, prepare, rft_data, sft, sft_trainer
from _tiny import char_tokenizer, tiny_llama, with_lora

torch.set_num_threads(1)

EXAMPLES = [{"prompt": "Q: 1+2=?\n", "completion": "1+2=3\nA: 3"},
            {"prompt": "Q: 10+20=?\n", "completion": "10+20=30\nA: 30"},
            {"prompt": "Q: 4+4=?\n", "completion": "4+4=8\nA: 8"},
            {"prompt": "Q: 7+1=?\n", "completion": "7+1=8\nA: 8"}]


def fast(**overrides) -> TrainParams:
    # grad_accum=1: one optimiser step per batch (the TrainParams default is SoT's 16)
    base = dict(lr=1e-2, epochs=1.0, batch_size=2, grad_accum=1, warmup_ratio=0.0, save_steps=100, max_length=64)
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
    # the seed is no longer a TrainParams field (each step trains over its own seeds): sft takes it
    params = TrainParams(lr=3e-4, epochs=2.0, batch_size=3, grad_accum=5, warmup_ratio=0.2, weight_decay=0.05,
                         lr_scheduler="cosine", save_steps=9, max_length=77)
    args = sft_trainer(tiny_llama(tok), tok, EXAMPLES, params, tmp_path, seed=7).args
    assert (args.learning_rate, args.num_train_epochs, args.per_device_train_batch_size) == (3e-4, 2.0, 3)
    assert (args.gradient_accumulation_steps, args.warmup_steps, args.weight_decay) == (5, 0.2, 0.05)
    assert (args.lr_scheduler_type, args.seed, args.save_steps, args.max_length) == ("cosine", 7, 9, 77)
    assert args.data_seed == 7
    assert args.completion_only_loss and not args.bf16  # fp32 on CPU
    # logging every step and keeping two checkpoints are fixed now, not params
    assert (args.logging_steps, args.save_total_limit) == (1, 2)
    assert not {"seed", "logging_steps", "save_total_limit"} & {f.name for f in dataclasses.fields(TrainParams)}


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
    # sft no longer saves a final adapter folder (finetune merges and saves): it returns the
    # trained PeftModel, and the run folder holds only resumable checkpoints and the curve
    assert hasattr(result.model, "peft_config") and result.resumed_from is None
    assert result.out_dir == tmp_path / "run"
    assert {p.name for p in (tmp_path / "run").iterdir() if p.name.startswith("checkpoint-")} == \
        {f"checkpoint-{result.global_step}"}


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
    needs_code_execution = False
    bounded_verify = True  # graded in process by cotrepro.grade

    def prompt(self, problem: Problem, template: str = "default") -> str:
        return f"Q: {problem.question}\n"

    def verify(self, problem: Problem, completion: str) -> Verdict:
        last = completion.strip().splitlines()[-1] if completion.strip() else ""
        return Verdict(correct=last == f"A: {problem.answer}", extracted=last or None)


def test_rft_data_keeps_correct_unique_completions_up_to_the_cap():
    """`rft_dataset` is gone: RFT data is now the SFT positives plus the graded self-samples
    (`generate.sample_job` grades them through `cotrepro.grade`), filtered by `rft_data`."""
    task = AnswerTask()
    problems = [Problem("p1", "1+2", "3"), Problem("p2", "2+2", "4"), Problem("p3", "5+5", "10")]
    canned = {"p1": ["1+2=3\nA: 3", "A: 4", " 1+2=3\nA: 3\n", "2+1=3\nA: 3", "3\nA: 3"],
              "p2": ["A: 5", "2+2=4\nA: 4"],
              "p3": ["A: 11", ""]}
    flat = [(p, i, c) for p in problems for i, c in enumerate(canned[p.id])]
    verdicts = grade_problems(task, [p for p, _, _ in flat], [c for _, _, c in flat], workers=1, progress=False)
    samples = [{"problem_id": p.id, "index": i, "completion": c, "correct": v["correct"]}
               for (p, i, c), v in zip(flat, verdicts)]
    positives = [{"prompt": task.prompt(p), "completion": f"gold {p.id}", "problem_id": p.id} for p in problems]
    examples = rft_data(positives, samples, n=3, cap=2)
    assert examples[:3] == positives  # the SFT data of the rung comes first
    assert examples[3:] == [
        {"prompt": "Q: 1+2\n", "completion": "1+2=3\nA: 3", "problem_id": "p1"},  # the copy with spaces is a duplicate
        {"prompt": "Q: 1+2\n", "completion": "2+1=3\nA: 3", "problem_id": "p1"},  # capped at 2: "3\nA: 3" dropped
        {"prompt": "Q: 2+2\n", "completion": "2+2=4\nA: 4", "problem_id": "p2"},
    ]
    # only the first `first` samples of each problem count; only the first n problems' samples
    assert [e["completion"] for e in rft_data(positives, samples, n=3, cap=8, first=1)[3:]] == ["1+2=3\nA: 3"]
    assert rft_data(positives, samples, n=1, cap=8)[1:] == [
        {"prompt": "Q: 1+2\n", "completion": c, "problem_id": "p1"} for c in ("1+2=3\nA: 3", "2+1=3\nA: 3", "3\nA: 3")]


# ---------------------------------------------------------------- checkpoints and finetune


def _two_checkpoints(tmp_path):
    """A real run with a checkpoint after every step: checkpoint-3 and -4 are kept (limit 2)."""
    tok = char_tokenizer()
    result = sft(tiny_llama(tok), tok, EXAMPLES, fast(batch_size=1, save_steps=1), tmp_path / "run")
    assert result.global_step == 4
    return tmp_path / "run"


def test_last_checkpoint_discards_incomplete_checkpoints_and_returns_the_newest_complete(tmp_path):
    run = _two_checkpoints(tmp_path)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    assert last_checkpoint(run) == str(run / "checkpoint-4")
    (run / "checkpoint-9").mkdir()  # killed right after creating the folder
    truncated = run / "checkpoint-7"
    shutil.copytree(run / "checkpoint-4", truncated)  # killed while writing its trainer state (written last)
    state = truncated / "trainer_state.json"
    state.write_text(state.read_text()[:50])
    no_optimizer = run / "checkpoint-6"
    shutil.copytree(run / "checkpoint-4", no_optimizer)
    (no_optimizer / "optimizer.pt").unlink()
    wrong_step = run / "checkpoint-5"  # a state that is not this checkpoint's
    shutil.copytree(run / "checkpoint-4", wrong_step)
    (run / "not-a-checkpoint").mkdir()
    assert last_checkpoint(run) == str(run / "checkpoint-4")
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    assert (run / "not-a-checkpoint").is_dir()
    # the newest complete one itself truncated: the one before it
    state = run / "checkpoint-4" / "trainer_state.json"
    state.write_text(state.read_text()[:-20])
    assert last_checkpoint(run) == str(run / "checkpoint-3")
    assert [p.name for p in run.glob("checkpoint-*")] == ["checkpoint-3"]
    assert last_checkpoint(tmp_path / "absent") is None
    empty = tmp_path / "empty"
    (empty / "checkpoint-1").mkdir(parents=True)
    assert last_checkpoint(empty) is None and not (empty / "checkpoint-1").exists()


def _base(tmp_path):
    tok = char_tokenizer()
    base = tmp_path / "base"
    tiny_llama(tok).save_pretrained(base)
    tok.save_pretrained(base)
    return str(base)


def _state(path):
    model, _ = load_model(path, device="cpu")
    return model.state_dict()


@pytest.mark.parametrize("method", ["full", "lora"])
def test_finetune_killed_after_a_checkpoint_resumes_to_the_uninterrupted_weights(tmp_path, method, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # CPU, one thread: bit-exact on any machine
    base = _base(tmp_path)
    params = fast(epochs=2.0, batch_size=1, warmup_ratio=0.25, save_steps=1)  # 8 steps, a checkpoint after each
    section = FinetuneSection(method=method, train=params, lora=LoraParams(r=4, alpha=8) if method == "lora" else None)
    straight = finetune(*load_model(base, device="cpu"), EXAMPLES, section, 3, tmp_path / "straight")
    assert straight == tmp_path / "straight" / "model" and (straight / "config.json").is_file()
    assert not (straight / "adapter_config.json").exists()  # a plain (merged) checkpoint
    assert not (tmp_path / "straight" / "train").exists()  # checkpoints are only for resuming
    assert len(json.loads((tmp_path / "straight" / "loss.json").read_text())) == 8

    # the same run, killed during step 6: checkpoints 4 and 5 on disk, no model/
    model, tokenizer = load_model(base, device="cpu")
    killed = sft_trainer(prepare(model, method, section.lora, 3), tokenizer, EXAMPLES, params,
                         tmp_path / "killed" / "train", 3)
    killed.add_callback(KillAt(6))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    folder = tmp_path / "killed" / "train"
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-5"]
    assert not (tmp_path / "killed" / "model").exists()
    state = folder / "checkpoint-5" / "trainer_state.json"  # the newest was being written
    state.write_text(state.read_text()[: len(state.read_text()) // 2])
    (folder / "checkpoint-6").mkdir()

    seen = []
    monkeypatch.setattr(train, "last_checkpoint", lambda d: seen.append(last_checkpoint(d)) or seen[-1])
    resumed = finetune(*load_model(base, device="cpu"), EXAMPLES, section, 3, tmp_path / "killed")
    assert seen == [str(folder / "checkpoint-4")]  # it resumed, from the newest complete checkpoint
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    original = _state(base)
    assert not all(torch.equal(a[k], original[k]) for k in a)  # it trained
    assert json.loads((tmp_path / "killed" / "loss.json").read_text()) == \
        json.loads((tmp_path / "straight" / "loss.json").read_text())
    # a finished fine-tune is returned as it is
    monkeypatch.setattr(train, "sft", lambda *a, **k: pytest.fail("trained again"))
    assert finetune(*load_model(base, device="cpu"), EXAMPLES, section, 3, tmp_path / "killed") == resumed
