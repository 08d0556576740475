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

Backends: "hf" (`DecodeBackend`, the package's decode loop over a transformers model's forward
pass and KV cache: finished rows leave the batch, a context shared by several samples is run
once) always works; "generate" (`cotrepro.generate_baseline.GenerateBackend`, transformers
`generate`) is the baseline the benchmark measures it against; "vllm" (`cotrepro.vllm_backend.VLLMBackend`), or "auto" when vllm is importable and a GPU
is present. `sample_range` draws samples j..j+n of each context: the Monte Carlo rollouts.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING

from cotrepro.sections import SamplingParams
from cotrepro.store import JsonlStore, cache_key

if TYPE_CHECKING:
    import torch

_M32 = 0xFFFFFFFF


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
    import torch

    device = row_seeds.device
    base = _fmix32((row_seeds + step * 0x9E3779B1) & _M32)[:, None]
    tokens = torch.arange(vocab_size, device=device, dtype=torch.int64)[None, :]
    bits = _fmix32(_fmix32(base ^ tokens) ^ ((tokens * 0x27D4EB2F) & _M32))
    uniform = (bits.double() + 0.5) / 2**32
    return -torch.log(-torch.log(uniform))


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_logits, order = logits.sort(dim=1, descending=True)
    cumulative = sorted_logits.softmax(dim=1).cumsum(dim=1)
    drop_sorted = cumulative - sorted_logits.softmax(dim=1) >= top_p  # mass before this token already >= p
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def row_seeds(seed: int, prompt: str, first: int, count: int) -> list[int]:
    """The seeds of completions first..first+count-1 of `prompt`: completion j always gets the same
    seed, whatever batch or range it is drawn in."""
    base = prompt_seed(seed, prompt)
    return [(base + j * 0x632BE5AB) & _M32 for j in range(first, first + count)]


class DecodeBackend:
    """The package's decoder over a transformers model: its forward pass and KV cache, with
    left-padded batches, per-row seeds and stop strings (the default "hf" backend).

    Against `model.generate` (kept as `generate_baseline.GenerateBackend`, the benchmark's baseline) it saves the
    work `generate` spends on rows that are already finished (they leave the batch, cache and all,
    as they end) and on its per-step hooks; and when several samples continue one context (k
    samples of a prompt, rollouts of a prefix) the context is run through the model once and its
    cache repeated. Greedy outputs equal `generate`'s (tests/test_generate.py).
    """

    name = "hf"

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos = _eos_ids(model, tokenizer)
        self._pieces: list[str] | None = None

    def token_lengths(self, prompts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[list[str]]:
        """k completions (text, stop strings cut) for each of `prompts`, as one batch."""
        greedy = sampling.temperature == 0.0
        copies = 1 if greedy else sampling.k  # greedy copies would be identical: decode once
        seeds = [row_seeds(sampling.seed, p, 0, copies) for p in prompts]
        outs = self.decode(prompts, seeds, sampling)
        return [[text for text, _ in o] * (sampling.k if greedy else 1) for o in outs]

    def decode(self, contexts: list[str], seeds: list[list[int]], sampling: SamplingParams
               ) -> list[list[tuple[str, int]]]:
        """For each context, one (text, tokens generated) per seed in `seeds[i]`."""
        import torch

        with torch.inference_mode():
            return self._decode(contexts, seeds, sampling)

    def _piece_table(self) -> list[str]:
        if self._pieces is None:  # each token's text, for the stop-string check on a row's tail
            self._pieces = [self.tokenizer.decode([i]) for i in range(len(self.tokenizer))]
        return self._pieces

    def _decode(self, contexts, seeds, sampling):
        import torch
        from transformers import DynamicCache

        model, device = self.model, self.model.device
        batch = self.tokenizer(contexts, return_tensors="pt", padding=True).to(device)
        mask = batch["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        # The KV cache's keyword is `cache` from transformers 5.24, `past_key_values` before (the
        # engines environment pins 5.19); an unknown keyword is swallowed by **kwargs, so the
        # decoder would silently run without a cache.
        cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        logits = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions,
                       use_cache=True, logits_to_keep=1, **{cache_kw: cache}).logits[:, -1, :]
        owner = torch.tensor([c for c, row in enumerate(seeds) for _ in row], device=device)
        if len(owner) != len(contexts) or bool((owner != torch.arange(len(contexts), device=device)).any()):
            cache.reorder_cache(owner)  # one copy of the context's cache per sample
            logits, mask, positions = logits[owner], mask[owner], positions[owner]
        flat_seeds = torch.tensor([s for row in seeds for s in row], dtype=torch.int64, device=device)
        n_rows = len(flat_seeds)
        active = torch.arange(n_rows, device=device)  # which original rows are still in the batch
        generated: list[list[int]] = [[] for _ in range(n_rows)]
        tails = [""] * n_rows
        stops = [x for x in sampling.stop if x]
        pieces = self._piece_table() if stops else None
        eos = torch.tensor(self.eos, device=device)
        next_position = positions[:, -1] + 1
        for step in range(sampling.max_new_tokens):
            tokens = self._choose(logits, flat_seeds[active], step, sampling)
            finished = torch.isin(tokens, eos)
            for r, t in zip(active.tolist(), tokens.tolist()):
                generated[r].append(t)
            if stops:
                for k, (r, t) in enumerate(zip(active.tolist(), tokens.tolist())):
                    tails[r] = (tails[r] + pieces[t])[-64:]
                    if any(x in tails[r] for x in stops):
                        finished[k] = True
            keep = (~finished).nonzero().squeeze(-1)
            if keep.numel() == 0 or step == sampling.max_new_tokens - 1:
                break
            if keep.numel() < active.numel():
                cache.reorder_cache(keep)
                active, tokens, mask, next_position = active[keep], tokens[keep], mask[keep], next_position[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_position[:, None],
                           use_cache=True, **{cache_kw: cache}).logits[:, -1, :]
            next_position = next_position + 1
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        results, r = [], 0
        for row in seeds:
            results.append([(truncate_at_stop(texts[r + j], sampling.stop), len(generated[r + j]))
                            for j in range(len(row))])
            r += len(row)
        return results

    def _choose(self, logits, seeds, step: int, sampling: SamplingParams):
        if sampling.temperature == 0.0:
            return logits.argmax(dim=-1)
        scaled = logits.float() / sampling.temperature
        if sampling.top_p < 1.0:
            scaled = _top_p_filter(scaled, sampling.top_p)
        return (scaled.double() + gumbel_noise(seeds, step, scaled.shape[1])).argmax(dim=-1)


def _eos_ids(model, tokenizer) -> list[int]:
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured] if configured is not None else []
    return sorted(set(ids) | {tokenizer.eos_token_id} - {None})


def resolve_backend(backend: str) -> str:
    """"auto" made concrete: "vllm" when vllm is importable and a GPU is present, else "hf"."""
    import importlib.util

    import torch

    if backend not in ("hf", "generate", "vllm", "auto"):
        raise ValueError(f"unknown backend {backend!r}; choose hf, vllm or auto")
    if backend == "auto":
        return "vllm" if importlib.util.find_spec("vllm") and torch.cuda.is_available() else "hf"
    return backend


def load_for(backend: str, ref: dict, root):
    """(model, tokenizer) for a job's model reference: loaded for the hf backends; for vllm the
    checkpoint folder alone (vLLM loads it itself, and a transformers copy on the same GPU would
    take the memory vLLM's KV cache needs)."""
    from cotrepro import specs

    if resolve_backend(backend) == "vllm":
        return specs.model_path(ref, root), None
    return specs.load(ref, root)


def make_backend(model, tokenizer, backend: str = "hf"):
    """The backend named by `backend` ("hf", "vllm" or "auto").

    "vllm" (`cotrepro.vllm_backend`) takes a checkpoint folder (or hub id), or a loaded model
    whose `name_or_path` is one.
    """
    backend = resolve_backend(backend)
    if backend in ("hf", "generate"):
        if isinstance(model, (str, Path)):
            raise ValueError("the hf backend needs a loaded model (see cotrepro.models.load_model), not a path")
        if backend == "generate":
            from cotrepro.generate_baseline import GenerateBackend

            return GenerateBackend(model, tokenizer)
        return DecodeBackend(model, tokenizer)
    from cotrepro.vllm_backend import vllm_backend

    return vllm_backend(model)


def sample(model, tokenizer, prompts: list[str], sampling: SamplingParams = SamplingParams(), *,
           store: str | Path | JsonlStore | None = None, backend: str | None = None, model_id: str = "",
           progress: bool = True) -> list[list[str]]:
    """k completions for each prompt (same order as `prompts`), resuming from `store` if given.

    `backend` overrides `sampling.backend`. `model_id` names the model in the cache key (default:
    the model's `name_or_path`); give a distinct id for a fine-tuned state that shares a path.
    """
    runner = make_backend(model, tokenizer, backend or sampling.backend)
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


def sample_range(model, tokenizer, requests: list[tuple[str, int, int]], *, temperature: float,
                 max_new_tokens: int, stop: tuple[str, ...] = (), seed: int = 0, batch_size: int = 256,
                 store: str | Path | JsonlStore | None = None, model_id: str = "") -> list[list]:
    """Samples `first..first+count-1` of each `(context, first, count)`: the rollouts of
    `cotrepro.stepvalues`. Sample j of a context is the one `sample` draws as completion j (same
    seed), so a range asked for in pieces equals the range asked for at once. Each context is run
    through the model once for all its samples in a batch. Returns `stepvalues.Rollout`s; with a
    `store`, each (context, range) is stored as it finishes and read back on a rerun."""
    from cotrepro.stepvalues import Rollout

    sampling = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, stop=tuple(stop), seed=seed,
                              batch_size=batch_size)
    store = JsonlStore(store) if isinstance(store, (str, Path)) else store
    run_key = cache_key(model=model_id or getattr(model, "name_or_path", ""), sampling=sampling.identity(),
                        backend="hf-range")
    keys = [f"{run_key}-{hashlib.sha256(c.encode()).hexdigest()[:16]}-{first}-{count}" for c, first, count in requests]
    results: dict[str, list] = {}
    if store is not None:
        results = {k: [Rollout(t, n) for t, n in store.get(k)["rollouts"]] for k in keys if k in store}
    first_of = {}
    for i, k in enumerate(keys):
        if k not in results:
            first_of.setdefault(k, i)
    todo = list(first_of.values())  # request indices still to sample, one per distinct key
    if todo:
        backend = DecodeBackend(model, tokenizer)
        lengths = dict(zip(todo, backend.token_lengths([requests[i][0] for i in todo])))
        todo.sort(key=lambda i: -lengths[i])  # similar lengths share a batch: little padding
        batch: list[int] = []
        for position, i in enumerate(todo):
            batch.append(i)
            rows = sum(requests[b][2] for b in batch)
            following = todo[position + 1] if position + 1 < len(todo) else None
            if following is not None and rows + requests[following][2] <= batch_size:
                continue
            outs = backend.decode([requests[b][0] for b in batch],
                                  [row_seeds(seed, requests[b][0], requests[b][1], requests[b][2]) for b in batch],
                                  sampling)
            for b, out in zip(batch, outs):
                results[keys[b]] = [Rollout(t, n) for t, n in out]
                if store is not None:
                    store.append({"key": keys[b], "rollouts": out})
            batch = []
    return [results[k] for k in keys]


def _length_buckets(prompts: list[str], lengths: list[int], per_batch: int, progress: bool):
    """Batches of prompts of similar token length, longest first (an out-of-memory shows at once)."""
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    batches = [[prompts[i] for i in order[s:s + per_batch]] for s in range(0, len(order), per_batch)]
    if progress and batches:
        from tqdm.auto import tqdm

        return tqdm(batches, desc="sampling", unit="batch")
    return batches


def sample_job(spec: dict, out_dir: Path) -> None:
    """A `cotrepro.jobs` job: the model `spec["model"]` samples each problem of `spec["problems"]`
    ({id, question, answer, solution, meta}) with `spec["sampling"]`; every sample is graded
    (through `cotrepro.grade`) and written to `samples.json` as {problem_id, index, completion,
    correct, parsed}. Sampling resumes from `generations.jsonl`."""
    import json

    from cotrepro import specs
    from cotrepro.grade import grade_problems
    from cotrepro.params import from_dict
    from cotrepro.quiet import quiet_libraries
    from cotrepro.sections import TaskSection
    from cotrepro.tasks.base import Problem

    quiet_libraries()
    root = Path(out_dir).parents[2]
    section = from_dict(TaskSection, spec["task"])
    task = specs.get_task(section)
    problems = [Problem(**p) for p in spec["problems"]]
    sampling = from_dict(SamplingParams, spec["sampling"])
    model, tokenizer = load_for(sampling.backend, spec["model"], root)
    outputs = sample(model, tokenizer, [task.prompt(p, section.template) for p in problems], sampling,
                     store=Path(out_dir) / "generations.jsonl", model_id="sampled", progress=False)
    flat = [(p, i, c) for p, completions in zip(problems, outputs) for i, c in enumerate(completions)]
    verdicts = grade_problems(task, [p for p, _, _ in flat], [c for _, _, c in flat], workers=1, progress=False)
    records = [{"problem_id": p.id, "index": i, "completion": c, "correct": bool(v["correct"]),
                "parsed": v["extracted"] is not None} for (p, i, c), v in zip(flat, verdicts)]
    (Path(out_dir) / "samples.json").write_text(json.dumps(records))
