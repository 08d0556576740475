"""Loading models, LoRA adapters (save, load, merge) and the errors a user sees on bad input."""

from __future__ import annotations

import pytest
import torch

from cotrepro.generate import SamplingParams, sample
from cotrepro.models import LoraParams, ModelLoadError, add_lora, load_adapter, load_model, merge_adapter, save_adapter
from cotrepro.tiny import MicroModelParams, build_micro_model, build_tokenizer, tiny_random_model

torch.set_num_threads(1)


def _logits(model, tokenizer, text="12 + 5 = 17\nThe quick brown fox"):
    batch = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def _perturb_lora(model, seed=0):
    """LoRA B starts at zero (the adapter is a no-op); give it weights so the test can fail."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.5)


def test_micro_model_round_trips_through_load_model(tmp_path):
    tokenizer = build_tokenizer(["12 + 5 = 17\nQuestion: Ann has 3 apples.\n"] * 10, vocab_size=300)
    model = build_micro_model(MicroModelParams(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64), tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_model(tmp_path, device="cpu")
    assert loaded_tokenizer.padding_side == "left" and loaded_tokenizer.pad_token is not None
    assert loaded_tokenizer("3 + 4 = 7")["input_ids"] == tokenizer("3 + 4 = 7")["input_ids"]
    assert torch.equal(_logits(model.eval(), tokenizer), _logits(loaded, loaded_tokenizer))


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gemma2"])
def test_tiny_real_architectures_generate_and_take_lora(arch, tmp_path):
    tiny_random_model(arch, tmp_path)
    model, tokenizer = load_model(tmp_path, device="cpu")
    assert model.config.model_type == arch
    out = sample(model, tokenizer, ["12 + 5 =", "Problem:"], SamplingParams(max_new_tokens=5), progress=False)
    assert len(out) == 2 and all(isinstance(c[0], str) for c in out)
    peft_model = add_lora(model, LoraParams(r=4, alpha=8))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    wrapped = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable}
    assert {"q_proj", "v_proj", "down_proj"} <= wrapped  # all-linear reaches attention and MLP
    assert "lm_head" not in wrapped


def test_adapter_save_load_merge_keep_the_logits(tmp_path):
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    tiny_random_model("qwen2", base_dir)
    model, tokenizer = load_model(base_dir, device="cpu")
    base_logits = _logits(model, tokenizer)
    peft_model = add_lora(model, LoraParams(r=4, alpha=8, dropout=0.0))
    _perturb_lora(peft_model)
    peft_model.eval()
    adapted = _logits(peft_model, tokenizer)
    assert not torch.allclose(adapted, base_logits, atol=1e-3)
    save_adapter(peft_model, adapter_dir)

    fresh, _ = load_model(base_dir, device="cpu")
    reloaded = load_adapter(fresh, adapter_dir)
    assert torch.allclose(_logits(reloaded, tokenizer), adapted, atol=1e-5)
    merged = merge_adapter(reloaded)
    assert not hasattr(merged, "peft_config")
    assert torch.allclose(_logits(merged, tokenizer), adapted, atol=1e-4)


def test_adapter_for_another_architecture_is_refused(tmp_path):
    tiny_random_model("llama", tmp_path / "llama")
    tiny_random_model("gemma2", tmp_path / "gemma2")
    llama, _ = load_model(tmp_path / "llama", device="cpu")
    save_adapter(add_lora(llama, LoraParams(r=4)), tmp_path / "adapter")
    gemma, _ = load_model(tmp_path / "gemma2", device="cpu")
    with pytest.raises(ModelLoadError, match="another base model: model_type='llama'"):
        load_adapter(gemma, tmp_path / "adapter")


def test_missing_adapter_and_bad_model_path_give_one_line_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="no such directory") as error:
        load_model(tmp_path / "does-not-exist")
    assert "\n" not in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="cannot load") as error:
        load_model(tmp_path / "empty")
    assert "\n" not in str(error.value)
    model, _ = tiny_random_model("llama")
    with pytest.raises(ModelLoadError, match="no adapter_config.json"):
        load_adapter(model, tmp_path / "empty")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_4bit_on_cpu_is_refused_clearly(tmp_path):
    tiny_random_model("llama", tmp_path)
    with pytest.raises(ModelLoadError, match="load_in_4bit needs a CUDA GPU"):
        load_model(tmp_path, load_in_4bit=True)
