"""DPO: EOS never follows a rejected prefix, the reference is the adapter-disabled base model (LoRA)
or a frozen copy (full fine-tuning), the loss falls, `dpo_finetune` saves a plain checkpoint; and
the random / edit-distance pair builders."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from cotrepro.dpo import DPOParams, dpo, dpo_finetune, dpo_trainer, tokenize_pair
from cotrepro.models import load_model
from cotrepro.pairs import edit_distance_pairs, random_pairs, step_edit_distance
from cotrepro.sections import DPOSection, LoraParams
from cotrepro.train import TrainParams
from _tiny import char_tokenizer, tiny_llama, with_lora

torch.set_num_threads(1)

PAIRS = [{"prompt": "Q: 1+2=?\n", "chosen": "1+2=3\nA: 3", "rejected": "1+2=4\nA: 4", "rejected_is_prefix": False},
         {"prompt": "Q: 2+2=?\n", "chosen": "2+2=4\nA: 4", "rejected": "2+2=5", "rejected_is_prefix": True}]
PARAMS = TrainParams(lr=1e-2, epochs=8.0, batch_size=2, grad_accum=1, warmup_ratio=0.0, save_steps=100,
                     max_length=64)


def chars(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_eos_follows_chosen_and_complete_rejected_but_not_a_prefix(tmp_path):
    tok = char_tokenizer()
    eos = tok.eos_token_id
    complete, prefix = (tokenize_pair(tok, p) for p in PAIRS)
    assert complete["prompt_ids"] == tok(PAIRS[0]["prompt"])["input_ids"]
    assert complete["chosen_ids"] == chars(tok, PAIRS[0]["chosen"]) + [eos]
    assert complete["rejected_ids"] == chars(tok, PAIRS[0]["rejected"]) + [eos]
    assert prefix["chosen_ids"] == chars(tok, PAIRS[1]["chosen"]) + [eos]
    assert prefix["rejected_ids"] == chars(tok, "2+2=5")
    # ... and the trainer really tokenises with it (TRL alone would append EOS to the prefix).
    trainer = dpo_trainer(with_lora(tiny_llama(tok)), tok, PAIRS, PARAMS, tmp_path)
    assert trainer.train_dataset[1]["rejected_ids"] == chars(tok, "2+2=5")
    assert trainer.train_dataset[0]["rejected_ids"][-1] == eos


def sequence_logps(model, batch) -> torch.Tensor:
    """Sum of log-probs of the completion tokens of each row (chosen rows first, then rejected)."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    token_logps = F.log_softmax(logits[:, :-1].float(), -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    return (token_logps * batch["completion_mask"][:, 1:]).sum(-1)


def test_reference_is_the_adapter_disabled_base_and_loss_falls(tmp_path):
    tok = char_tokenizer()
    base = tiny_llama(tok)
    frozen_base = copy.deepcopy(base).eval()
    trainer = dpo_trainer(with_lora(base), tok, PAIRS, PARAMS, tmp_path, DPOParams(beta=0.1))
    result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start: -log sigmoid(0)
    assert losses[-1] < losses[0] - 0.03 and result.training_loss < losses[0]

    trainer.model.eval()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    ref_chosen, ref_rejected = trainer.compute_ref_log_probs(trainer.model, batch)
    expected = sequence_logps(frozen_base, batch)
    torch.testing.assert_close(torch.cat([ref_chosen, ref_rejected]), expected, rtol=1e-4, atol=1e-4)
    policy = sequence_logps(trainer.model, batch)  # adapter on: trained away from the reference
    assert (policy[:2] - expected[:2]).min() > 0.01  # chosen made likelier


def test_dpo_needs_the_prefix_flag(tmp_path):
    tok = char_tokenizer()
    unflagged = [{k: v for k, v in PAIRS[0].items() if k != "rejected_is_prefix"}]
    with pytest.raises(ValueError, match="rejected_is_prefix"):
        dpo(with_lora(tiny_llama(tok)), tok, unflagged, PARAMS, tmp_path)
    with pytest.raises(ValueError, match="no examples"):
        dpo(with_lora(tiny_llama(tok)), tok, [], PARAMS, tmp_path)


def _saved_base(tmp_path):
    tok = char_tokenizer()
    base = tmp_path / "base"
    tiny_llama(tok).save_pretrained(base)
    tok.save_pretrained(base)
    return base


@pytest.mark.parametrize("method", ["full", "lora"])
def test_dpo_finetune_from_a_reference_saves_a_plain_checkpoint_that_prefers_chosen(tmp_path, method):
    """A full (non-PEFT) policy is allowed now (it needed a PeftModel): TRL keeps a frozen copy as
    the reference. Either way the loss starts at -log sigmoid(0) and falls, and the saved model
    (merged for LoRA) makes the chosen sides likelier than the reference does."""
    base = _saved_base(tmp_path)
    section = DPOSection(method=method, train=PARAMS, lora=LoraParams(r=4, alpha=8, dropout=0.0)
                         if method == "lora" else None, dpo=DPOParams(beta=0.1))
    out = dpo_finetune(*load_model(base, device="cpu"), PAIRS, section, 0, tmp_path / "run")
    assert out == tmp_path / "run" / "model" and not (out / "adapter_config.json").exists()
    assert not (tmp_path / "run" / "train").exists()
    losses = [r["loss"] for r in json.loads((tmp_path / "run" / "loss.json").read_text())]
    assert losses[0] == pytest.approx(0.6931, abs=1e-3) and losses[-1] < losses[0] - 0.03
    reference, tok = load_model(base, device="cpu")
    trained, _ = load_model(out, device="cpu")
    trainer = dpo_trainer(with_lora(tiny_llama(tok)), tok, PAIRS, PARAMS, tmp_path / "probe")
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    before, after = sequence_logps(reference, batch), sequence_logps(trained, batch)
    assert (after[:2] - before[:2]).min() > 0.01  # chosen made likelier
    assert ((after[:2] - before[:2]) - (after[2:] - before[2:])).min() > 0  # ... more than rejected
    changed = {n for n, w in trained.state_dict().items() if not torch.equal(w, reference.state_dict()[n])}
    assert changed and (method == "lora" or any("embed_tokens" in n for n in changed))  # full: every weight
    assert dpo_finetune(*load_model(base, device="cpu"), PAIRS, section, 0, tmp_path / "run") == out  # done


_FROZEN_COPY_BUG = (
    "library bug: cotrepro/dpo.py:95 passes ref_model=None for a full (non-PEFT) model, and TRL 1.16 then "
    "builds the reference by reloading config._name_or_path from disk (trl/trainer/dpo_trainer.py:926-927), "
    "not as 'a frozen copy of itself' (dpo_trainer's docstring)")


def test_full_dpo_of_a_model_in_memory_uses_a_frozen_copy_as_reference(tmp_path):
    tok = char_tokenizer()
    model = tiny_llama(tok)
    frozen = copy.deepcopy(model).eval()
    trainer = dpo_trainer(model, tok, PAIRS, PARAMS, tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    torch.testing.assert_close(torch.cat(trainer.compute_ref_log_probs(trainer.ref_model, batch)),
                               sequence_logps(frozen, batch), rtol=1e-4, atol=1e-4)


def test_full_dpo_of_a_changed_model_uses_its_current_weights_as_reference(tmp_path):
    base = _saved_base(tmp_path)
    model, tok = load_model(base, device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            weight.add_(torch.randn(weight.shape, generator=generator) * 0.05)
    frozen = copy.deepcopy(model).eval()
    trainer = dpo_trainer(model, tok, PAIRS, PARAMS, tmp_path / "run")
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    torch.testing.assert_close(torch.cat(trainer.compute_ref_log_probs(trainer.ref_model, batch)),
                               sequence_logps(frozen, batch), rtol=1e-4, atol=1e-4)


PROMPTS = {"a": "Q: a\n", "b": "Q: b\n", "c": "Q: c\n"}
CORRECT = {"a": ["x\ny\nA: 1", "p\nq\nr\ns\nA: 1"], "b": ["A: 2"], "c": []}
INCORRECT = {"a": ["x\ny\nA: 9", "x\nz\nA: 8"], "b": ["A: 7"], "c": ["A: 0"]}


def lines(trace: str) -> list[str]:
    return trace.splitlines()


def test_step_edit_distance_counts_whole_steps():
    assert step_edit_distance(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert step_edit_distance(["a", "b", "c"], ["a", "x", "c"]) == 1
    assert step_edit_distance(["a", "b"], ["a", "b", "c", "d"]) == 2
    assert step_edit_distance([], ["a"]) == 1


def test_pair_builders_give_one_pair_per_incorrect_trace():
    farthest = edit_distance_pairs(PROMPTS, CORRECT, INCORRECT, lines, seed=0)
    assert [(p["problem_id"], p["rejected"], p["chosen"]) for p in farthest] == [
        ("a", "x\ny\nA: 9", "p\nq\nr\ns\nA: 1"),  # distance 5 beats 1
        ("a", "x\nz\nA: 8", "p\nq\nr\ns\nA: 1"),
        ("b", "A: 7", "A: 2"),
    ]  # "c" has no correct trace, so no pair
    assert all(p["prompt"] == PROMPTS[p["problem_id"]] and not p["rejected_is_prefix"] for p in farthest)

    rand = random_pairs(PROMPTS, CORRECT, INCORRECT, seed=3)
    assert [(p["problem_id"], p["rejected"]) for p in rand] == [(p["problem_id"], p["rejected"]) for p in farthest]
    assert all(p["chosen"] in CORRECT[p["problem_id"]] for p in rand)
    assert rand == random_pairs(PROMPTS, CORRECT, INCORRECT, seed=3)
    many = {"a": ["A: 9"] * 40}
    chosen = {p["chosen"] for p in random_pairs(PROMPTS, CORRECT, many, seed=0)}
    assert chosen == set(CORRECT["a"])  # draws from every correct trace, not always the first
