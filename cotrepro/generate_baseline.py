"""The transformers `generate` path: `GenerateBackend`, the baseline `DecodeBackend` is measured
against (`bench/bench_sampling.py`) and its reference in the tests, with the logits processor and
stopping criterion that give `generate` cotrepro's per-row seeds and stop strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cotrepro.generate import (
    _eos_ids,
    _top_p_filter,
    gumbel_noise,
    row_seeds,
    truncate_at_stop,
)
from cotrepro.sections import SamplingParams

if TYPE_CHECKING:
    import torch


class SeededSampler:
    """A transformers logits processor that samples each row from its own seed (see module doc).

    It leaves a 0 on the chosen token and -inf elsewhere, so greedy decoding emits the sample.
    """

    def __init__(self, row_seeds: list[int], temperature: float, top_p: float, prompt_length: int):
        import torch

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
        out = scores.new_full(scores.shape, float("-inf"))
        return out.scatter_(1, chosen, 0.0)


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
        import torch

        return torch.tensor([any(s in t for s in self.stop) for t in tails], device=input_ids.device)


class GenerateBackend:
    """Generation with transformers `generate`, left padding, per-row seeds and stop strings: the
    baseline the decoder is measured against, and its reference in the tests."""

    name = "generate"

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    def token_lengths(self, prompts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[list[str]]:
        """k completions (text, stop strings cut) for each of `prompts`, as one batch."""
        import torch

        with torch.inference_mode():
            return self._generate(prompts, sampling)

    def _generate(self, prompts: list[str], sampling: SamplingParams) -> list[list[str]]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        greedy = sampling.temperature == 0.0
        copies = 1 if greedy else sampling.k  # greedy copies would be identical: decode once
        rows = [p for p in prompts for _ in range(copies)]
        batch = self.tokenizer(rows, return_tensors="pt", padding=True).to(self.model.device)
        prompt_length = batch["input_ids"].shape[1]
        processors = LogitsProcessorList()
        if not greedy:
            seeds = [s for p in prompts for s in row_seeds(sampling.seed, p, 0, copies)]
            processors.append(SeededSampler(seeds, sampling.temperature, sampling.top_p, prompt_length))
        criteria = StoppingCriteriaList([StopOnStrings(self.tokenizer, sampling.stop, prompt_length)]
                                        if any(sampling.stop) else [])
        # Every decoding knob is set here so a checkpoint's generation_config (e.g. an instruct
        # model's repetition penalty) cannot change what cotrepro samples.
        output = self.model.generate(
            **batch, max_new_tokens=sampling.max_new_tokens, do_sample=False, num_beams=1,
            repetition_penalty=1.0, logits_processor=processors, stopping_criteria=criteria,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=_eos_ids(self.model, self.tokenizer),
        )
        texts = self.tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
        texts = [truncate_at_stop(t, sampling.stop) for t in texts]
        per_prompt = [texts[i * copies:(i + 1) * copies] for i in range(len(prompts))]
        return [c * sampling.k if greedy else c for c in per_prompt]
