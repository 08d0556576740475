"""The builders of small real-architecture models and their tokenizers (`cotrepro.tiny`)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from cotrepro.models import load_model
from cotrepro.tiny import (BOS, EOS, PAD, MicroModelParams, build_micro_model, build_symbol_tokenizer, build_tokenizer,
                           build_word_tokenizer, tiny_random_model)

torch.set_num_threads(1)


def test_tokenizer_splits_digits_round_trips_and_reloads(tmp_path):
    texts = ["Question: Ann has 12 apples.\nAnswer:\n12 + 345 = 357\n#### 357"] * 20
    tokenizer = build_tokenizer(texts, vocab_size=320, out_dir=tmp_path)
    ids = tokenizer("12345")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert [tokenizer.decode([i]) for i in ids[1:]] == list("12345")
    odd = "  tabs\tand ünïcode ✓\n\nline"
    assert tokenizer.decode(tokenizer(odd)["input_ids"], skip_special_tokens=True) == odd
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(texts[0])["input_ids"] == tokenizer(texts[0])["input_ids"]
    assert {reloaded.bos_token, reloaded.eos_token, reloaded.pad_token} == {"<|bos|>", "<|eos|>", "<|pad|>"}
    assert tokenizer.padding_side == "left"


def test_micro_model_shape_and_bad_heads():
    tokenizer = build_tokenizer(["1 + 2 = 3"] * 5, vocab_size=300)
    params = MicroModelParams(arch="qwen2", n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64)
    model = build_micro_model(params, tokenizer, seed=1)
    assert model.config.model_type == "qwen2" and model.config.vocab_size == len(tokenizer)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
    same = build_micro_model(params, tokenizer, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    other = build_micro_model(params, tokenizer, seed=2)
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))
    with pytest.raises(ValueError, match="must divide"):
        build_micro_model(MicroModelParams(d_model=30, n_heads=4), tokenizer)
    with pytest.raises(ValueError, match="must divide"):
        build_micro_model(MicroModelParams(d_model=32, n_heads=4, n_kv_heads=3), tokenizer)


def test_word_tokenizer_has_one_token_per_number_and_word(tmp_path):
    texts = ["Question: Ann has 12 apples.\nAnswer:\n12 + 5 = 17\n#### 17", "Now she has 3*4=<<3*4=12>>12."]
    tokenizer = build_word_tokenizer(texts, max_number=120, out_dir=tmp_path)
    for n in (0, 7, 99, 100, 120):  # every number up to max_number, with and without a space
        assert len(tokenizer(str(n))["input_ids"]) == 2 and len(tokenizer(f" {n}")["input_ids"]) == 2
    ids = tokenizer("12 + 5 = 17")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert [tokenizer.decode([i]) for i in ids[1:]] == ["12", " +", " 5", " =", " 17"]
    for text in texts:
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    assert "<<" in [tokenizer.decode([i]) for i in tokenizer(texts[1])["input_ids"]]
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(texts[0])["input_ids"] == tokenizer(texts[0])["input_ids"]
    assert (reloaded.bos_token, reloaded.eos_token, reloaded.pad_token) == (BOS, EOS, PAD)


def test_symbol_tokenizer_reads_one_token_per_node_label():
    tokenizer = build_symbol_tokenizer([str(i) for i in range(50)] + list(",|/=\n"))
    ids = tokenizer("12,7|33")["input_ids"]
    assert [tokenizer.decode([i]) for i in ids[1:]] == ["12", ",", "7", "|", "33"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "12,7|33"
    assert len(tokenizer) == 3 + 50 + 5


def test_symbol_tokenizer_can_read_a_label_and_its_comma_as_one_token():
    labels = [str(i) for i in range(50)]
    tokenizer = build_symbol_tokenizer(labels + [f"{label}," for label in labels] + list(",|/=\n"), label_comma=True)
    ids = tokenizer("12,7|33,12/33,7=33,12,7")["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids[1:]]
    # an edge's end follows its start directly; the end of an edge ("7") differs from a start ("7,")
    assert pieces == ["12,", "7", "|", "33,", "12", "/", "33,", "7", "=", "33,", "12,", "7"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "12,7|33,12/33,7=33,12,7"


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gemma2"])
def test_tiny_random_model_is_deterministic_and_saves_like_a_checkpoint(arch, tmp_path):
    model, tokenizer = tiny_random_model(arch, tmp_path)
    assert model.config.model_type == arch and not model.training
    assert model.config.vocab_size == len(tokenizer) and model.num_parameters() < 100_000
    again, _ = tiny_random_model(arch)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    loaded, loaded_tokenizer = load_model(tmp_path, device="cpu")
    batch = loaded_tokenizer(["12 + 5 = 17"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    with pytest.raises(ValueError, match="unknown architecture"):
        tiny_random_model("gpt2")
