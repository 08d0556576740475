"""Sample k completions per prompt: bucketed batches, per-prompt seeds, stop strings, resumable.

`sample(model, tokenizer, prompts, SamplingParams(...), store=path)` is the one way cotrepro asks a
model to write. Three properties matter to the experiments:

- Reproducible per prompt. A sampled token is the argmax of `logits / T + Gumbel noise`, where the
  noise is a counter-based hash of (the prompt's seed, completion index, step, token id). The
  seed comes from hashing (seed, prompt), so a prompt gets the same completions whatever batch
  it lands in, in whatever order, and after a restart (up to float rounding differences between
  batch shapes). transformers' own sampler draws from one global generator, which would tie
  each prompt's output to its batch-mates.
- Resumable. Each finished prompt is appended to a crash-safe `JsonlStore` under a key made of
  `cache_key(model, sampling, backend)` and the prompt's hash; a rerun generates only the prompts
  the store lacks, so a job killed with SIGKILL loses at most the batch in flight.
- Efficient enough on CPU and GPU: prompts are sorted by token length and cut into batches of
  `batch_size` sequences, so little compute goes to left padding.

Backends: `HFBackend` (transformers `generate`) always works; `VLLMBackend` is used with
`backend="vllm"`, or with `"auto"` when vllm is importable and a GPU is present.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cotrepro.params import param
from cotrepro.store import JsonlStore, cache_key

_M32 = 0xFFFFFFFF


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: k completions per prompt."""

    k: int = param(1, "completions per prompt", ge=1)
    temperature: float = param(0.0, "softmax temperature; 0 = greedy", ge=0.0)
    top_p: float = param(1.0, "nucleus sampling: keep the smallest token set with this much probability", gt=0.0, le=1.0)
    max_new_tokens: int = param(256, "most tokens generated per completion", ge=1)
    stop: tuple[str, ...] = param((), "stop strings: generation ends at the first and the text is cut before it")
    seed: int = param(0, "sampling seed (each prompt derives its own from this and its text)", ge=0)
    batch_size: int = param(32, "sequences per generate call (prompts x k); does not change the outputs", ge=1)

    def identity(self) -> dict:
        """The fields that can change what is generated (batch size cannot): the cache key's part."""
        fields = asdict(self)
        fields.pop("batch_size")
        fields["stop"] = list(self.stop)
        return fields


def prompt_seed(seed: int, prompt: str) -> int:
    """The 32-bit seed of one prompt: a hash of the run seed and the prompt text."""
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()[:4], "little")


def truncate_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> str:
    """`text` cut before the earliest occurrence of any stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


def _fmix32(x: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finaliser on int64 tensors holding 32-bit values (avalanches every bit).

    Products may wrap past 2**63; the low 32 bits, which are all that is kept, are still exact.
    """
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _M32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _M32
    return x ^ (x >> 16)


def gumbel_noise(row_seeds: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """Standard Gumbel noise of shape (rows, vocab), a pure function of (row seed, step, token id)."""
    device = row_seeds.device
    base = _fmix32((row_seeds + step * 0x9E3779B1) & _M32)[:, None]
    tokens = torch.arange(vocab_size, device=device, dtype=torch.int64)[None, :]
    bits = _fmix32(_fmix32(base ^ tokens) ^ ((tokens * 0x27D4EB2F) & _M32))
    uniform = (bits.double() + 0.5) / 2**32
    return -torch.log(-torch.log(uniform))


class SeededSampler:
    """A transformers logits processor that samples each row from its own seed (see module doc).

    It leaves a 0 on the chosen token and -inf elsewhere, so greedy decoding emits the sample.
    """

    def __init__(self, row_seeds: list[int], temperature: float, top_p: float, prompt_length: int):
        self.row_seeds = torch.tensor(row_seeds, dtype=torch.int64)
        self.temperature = temperature
        self.top_p = top_p
        self.prompt_length = prompt_length  # padded prompt length: the step is counted from here

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            logits = _top_p_filter(logits, self.top_p)
        step = input_ids.shape[1] - self.prompt_length
        noise = gumbel_noise(self.row_seeds.to(scores.device), step, scores.shape[1])
        chosen = (logits.double() + noise).argmax(dim=1, keepdim=True)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen, 0.0)


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_logits, order = logits.sort(dim=1, descending=True)
    cumulative = sorted_logits.softmax(dim=1).cumsum(dim=1)
    drop_sorted = cumulative - sorted_logits.softmax(dim=1) >= top_p  # mass before this token already >= p
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class StopOnStrings:
    """A transformers stopping criterion: a row is done once its new text contains a stop string."""

    def __init__(self, tokenizer, stop: tuple[str, ...], prompt_length: int):
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.prompt_length = prompt_length
        # Every token decodes to at least one character (special tokens aside), so this many tail
        # tokens always cover a stop string that ends at the newest token.
        self.tail = max(len(s) for s in self.stop) + 2

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.Tensor:
        start = max(self.prompt_length, input_ids.shape[1] - self.tail)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stop) for t in tails], device=input_ids.device)


class HFBackend:
    """Generation with transformers `generate`, left padding, per-row seeds and stop strings."""

    name = "hf"

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    def token_lengths(self, prompts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]

    @torch.inference_mode()
    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[list[str]]:
        """k completions (text, stop strings cut) for each of `prompts`, as one batch."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        greedy = sampling.temperature == 0.0
        copies = 1 if greedy else sampling.k  # greedy copies would be identical: decode once
        rows = [p for p in prompts for _ in range(copies)]
        batch = self.tokenizer(rows, return_tensors="pt", padding=True).to(self.model.device)
        prompt_length = batch["input_ids"].shape[1]
        processors = LogitsProcessorList()
        if not greedy:
            seeds = [(prompt_seed(sampling.seed, p) + j * 0x632BE5AB) & _M32 for p in prompts for j in range(copies)]
            processors.append(SeededSampler(seeds, sampling.temperature, sampling.top_p, prompt_length))
        criteria = StoppingCriteriaList([StopOnStrings(self.tokenizer, sampling.stop, prompt_length)]
                                        if any(sampling.stop) else [])
        # Every decoding knob is set here so a checkpoint's generation_config (e.g. an instruct
        # model's repetition penalty) cannot change what cotrepro samples.
        output = self.model.generate(
            **batch, max_new_tokens=sampling.max_new_tokens, do_sample=False, num_beams=1,
            repetition_penalty=1.0, logits_processor=processors, stopping_criteria=criteria,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self._eos_ids(),
        )
        texts = self.tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
        texts = [truncate_at_stop(t, sampling.stop) for t in texts]
        per_prompt = [texts[i * copies:(i + 1) * copies] for i in range(len(prompts))]
        return [c * sampling.k if greedy else c for c in per_prompt]

    def _eos_ids(self) -> list[int]:
        configured = self.model.generation_config.eos_token_id
        ids = configured if isinstance(configured, list) else [configured] if configured is not None else []
        return sorted(set(ids) | {self.tokenizer.eos_token_id} - {None})


class VLLMBackend:
    """Generation with vLLM (GPU). Takes a path or hub id of a plain (merged) checkpoint."""

    name = "vllm"
    _engines: dict[str, object] = {}  # loading an engine takes minutes: keep one per model

    def __init__(self, model_path: str):
        from vllm import LLM

        if model_path not in self._engines:
            self._engines[model_path] = LLM(model=model_path, seed=0)
        self.engine = self._engines[model_path]
        self.tokenizer = self.engine.get_tokenizer()

    def token_lengths(self, prompts: list[str]) -> list[int]:
        return [len(self.tokenizer(p)["input_ids"]) for p in prompts]

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[list[str]]:
        from vllm import SamplingParams as VLLMSampling

        requests = [VLLMSampling(n=sampling.k, temperature=sampling.temperature, top_p=sampling.top_p,
                                 max_tokens=sampling.max_new_tokens, stop=list(sampling.stop),
                                 seed=prompt_seed(sampling.seed, p)) for p in prompts]
        outputs = self.engine.generate(prompts, requests, use_tqdm=False)
        return [[truncate_at_stop(c.text, sampling.stop) for c in out.outputs] for out in outputs]


def make_backend(model, tokenizer, backend: str = "hf"):
    """The backend named by `backend` ("hf", "vllm" or "auto")."""
    if backend not in ("hf", "vllm", "auto"):
        raise ValueError(f"unknown backend {backend!r}; choose hf, vllm or auto")
    if backend == "auto":
        backend = "vllm" if _vllm_available() and torch.cuda.is_available() else "hf"
    if backend == "hf":
        if isinstance(model, (str, Path)):
            raise ValueError("the hf backend needs a loaded model (see cotrepro.models.load_model), not a path")
        return HFBackend(model, tokenizer)
    if not _vllm_available():
        raise ValueError("backend 'vllm' needs vllm installed: pip install 'cotrepro[vllm]'")
    if hasattr(model, "peft_config"):
        raise ValueError("the vllm backend needs a merged checkpoint: merge_adapter, save_pretrained, pass its path")
    return VLLMBackend(str(model) if isinstance(model, (str, Path)) else model.name_or_path)


def _vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def sample(model, tokenizer, prompts: list[str], sampling: SamplingParams = SamplingParams(), *,
           store: str | Path | JsonlStore | None = None, backend: str = "hf", model_id: str = "",
           progress: bool = True) -> list[list[str]]:
    """k completions for each prompt (same order as `prompts`), resuming from `store` if given.

    `model_id` names the model in the cache key (default: the model's `name_or_path`); give a
    distinct id for an adapter or a fine-tuned state that shares its base's path.
    """
    runner = make_backend(model, tokenizer, backend)
    store = JsonlStore(store) if isinstance(store, (str, Path)) else store
    model_id = model_id or str(model if isinstance(model, (str, Path)) else getattr(model, "name_or_path", ""))
    run_key = cache_key(model=model_id, sampling=sampling.identity(), backend=runner.name)
    keys = {p: f"{run_key}-{hashlib.sha256(p.encode()).hexdigest()[:16]}" for p in prompts}
    results: dict[str, list[str]] = {}
    if store is not None:
        results = {p: store.get(key)["completions"] for p, key in keys.items() if key in store}
    pending = [p for p in dict.fromkeys(prompts) if p not in results]
    for batch in _length_buckets(pending, runner.token_lengths(pending) if pending else [],
                                 max(1, sampling.batch_size // sampling.k), progress):
        for prompt, completions in zip(batch, runner.generate(batch, sampling)):
            results[prompt] = completions
            if store is not None:
                store.append({"key": keys[prompt], "model": model_id, "prompt": prompt, "completions": completions})
    return [results[p] for p in prompts]


def _length_buckets(prompts: list[str], lengths: list[int], per_batch: int, progress: bool):
    """Batches of prompts of similar token length, longest first (an out-of-memory shows at once)."""
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    batches = [[prompts[i] for i in order[s:s + per_batch]] for s in range(0, len(order), per_batch)]
    if progress and batches:
        from tqdm.auto import tqdm

        return tqdm(batches, desc="sampling", unit="batch")
    return batches
