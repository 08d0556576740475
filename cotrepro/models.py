"""Load models and tokenizers, and attach, save, load and merge LoRA adapters.

Micro models trained here and hub checkpoints go through the same calls: a micro model is saved
with `save_pretrained` next to its tokenizer, so `load_model(dir)` treats it exactly like
`load_model("Qwen/Qwen2.5-1.5B")`. Every failure to load is a `ModelLoadError` with one line
saying what was asked for and why it failed.
"""

from __future__ import annotations

import json
from pathlib import Path

from cotrepro.sections import Dtype, LoraParams
_ADAPTER_META = "cotrepro_adapter.json"  # base-architecture fingerprint written beside each adapter


class ModelLoadError(RuntimeError):
    """A model, tokenizer or adapter could not be loaded. The message is one line."""


def default_device() -> str:
    """The device models go to when none is given: the GPU if there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_dtype(dtype: Dtype, device: str):
    import torch

    if dtype == "auto":
        # bf16 matmuls are slow on most CPUs, so CPU runs stay in float32.
        return torch.float32 if device == "cpu" else "auto"
    return getattr(torch, dtype)


def _looks_local(name_or_path: str) -> bool:
    return name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or Path(name_or_path).exists()


def load_tokenizer(name_or_path: str, *, revision: str | None = None):
    """The tokenizer of a checkpoint, with a pad token and left padding (for batched generation)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
    except Exception as e:  # noqa: BLE001 - transformers raises OSError, ValueError, HF hub errors
        raise ModelLoadError(f"cannot load tokenizer {name_or_path!r}: {_first_line(e)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(name_or_path: str | Path, *, revision: str | None = None, dtype: Dtype = "auto",
               load_in_4bit: bool = False, device: str | None = None):
    """Load `(model, tokenizer)` from the hub or a local directory, in eval mode on `device`.

    `load_in_4bit` quantises the base to NF4 with bitsandbytes (QLoRA); it needs a CUDA GPU.
    """
    from transformers import AutoModelForCausalLM

    name_or_path = str(name_or_path)
    device = device or default_device()
    if _looks_local(name_or_path) and not Path(name_or_path).expanduser().is_dir():
        raise ModelLoadError(f"cannot load model {name_or_path!r}: no such directory")
    kwargs: dict = {"revision": revision, "dtype": _torch_dtype(dtype, device)}
    if load_in_4bit:
        kwargs.update(_four_bit_kwargs(device))
    tokenizer = load_tokenizer(name_or_path, revision=revision)
    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"cannot load model {name_or_path!r}: {_first_line(e)}") from None
    if not load_in_4bit:  # bitsandbytes places the weights itself
        model.to(device)
    model.eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _four_bit_kwargs(device: str) -> dict:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise ModelLoadError("load_in_4bit needs a CUDA GPU (bitsandbytes NF4); set load_in_4bit: false on CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelLoadError("load_in_4bit needs bitsandbytes: pip install 'cotrepro[gpu]'") from None
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=compute)
    return {"quantization_config": config, "device_map": {"": device}, "dtype": compute}


def add_lora(model, lora: LoraParams = LoraParams()):
    """Wrap `model` in a trainable LoRA adapter (a `PeftModel`); the base weights stay frozen."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model)
    targets = lora.target_modules if lora.target_modules == "all-linear" else [
        name.strip() for name in lora.target_modules.split(",") if name.strip()]
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def _fingerprint(model) -> dict:
    """What an adapter depends on in its base: the architecture and the shapes LoRA wraps."""
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    return {"model_type": config.model_type, "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers,
            "intermediate_size": getattr(config, "intermediate_size", None)}


def save_adapter(model, path: str | Path) -> Path:
    """Save only the adapter weights of a `PeftModel` (plus the base fingerprint) to `path`."""
    path = Path(path)
    model.save_pretrained(path)
    (path / _ADAPTER_META).write_text(json.dumps(_fingerprint(model), indent=2))
    return path


def load_adapter(base_model, path: str | Path, *, trainable: bool = False):
    """Attach the adapter saved at `path` to `base_model` and return the `PeftModel`.

    An adapter saved on another architecture raises `ModelLoadError` instead of failing later
    with a shape mismatch (or, worse, loading with missing keys).
    """
    from peft import PeftModel

    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ModelLoadError(f"cannot load adapter {str(path)!r}: no adapter_config.json there")
    meta_file = path / _ADAPTER_META
    if meta_file.is_file():
        saved, here = json.loads(meta_file.read_text()), _fingerprint(base_model)
        if saved != here:
            diff = ", ".join(f"{k}={saved.get(k)!r} (base has {here.get(k)!r})" for k in here if saved.get(k) != here[k])
            raise ModelLoadError(f"adapter {str(path)!r} was trained on another base model: {diff}")
    try:
        return PeftModel.from_pretrained(base_model, path, is_trainable=trainable)
    except Exception as e:  # noqa: BLE001 - shape mismatches surface as RuntimeError deep in torch
        raise ModelLoadError(f"cannot load adapter {str(path)!r} onto this base model: {_first_line(e)}") from None


def merge_adapter(model):
    """Fold a `PeftModel`'s LoRA weights into its base and return the plain transformers model."""
    if not hasattr(model, "merge_and_unload"):
        raise ValueError("merge_adapter needs a PeftModel (a model with a LoRA adapter)")
    return model.merge_and_unload()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
