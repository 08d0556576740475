"""Monte Carlo step values of a trace (Setlur et al. 2024, section 5).

For each step i of a trace (as `task.steps` splits it), q_i is the share of rollouts from the
prefix ending at step i (prompt + trace through step i) that the task's verifier marks correct.
With `best_of=K`, Q_i = 1 - (1 - q_i)^K: the chance that the best of K rollouts succeeds, which
is how Setlur et al. value a step (best-of-5); otherwise Q_i = q_i. The advantage of step i is
A_i = Q_i - Q_(i-1); for the first step the value of the bare prompt is needed, which is rolled
out only when `value_of_prompt=True` (else A_0 is None). The critical step is the FIRST step
with the lowest Q: where an incorrect trace loses its chance of success.

Rollouts from one prefix share its KV cache: the prefix is run through the model once, its cache
repeated over the rollouts, and `generate` continues from it (`generate(num_return_sequences=n)`
would instead expand the prompt before the prefill and compute it n times).

Strategies (which prefixes get rolled out):
- "exhaustive": every step, as Setlur et al. describe.
- "early_stop": steps in order, stopping at the first step whose Q is 0. Q cannot fall below 0,
  so that step is the first with the lowest Q: exact with respect to the same estimates (the
  rollouts of step i are seeded by i, so they match those of an exhaustive run).
- "bisect": assumes Q never rises again after it falls (once the trace has gone wrong, later
  steps do not repair it). Then the lowest Q is the last step's and the first step reaching it is
  found by bisection, rolling out from 1 + ceil(log2(n)) prefixes instead of n. The assumption
  can fail (a later step may fix an earlier slip); `bench/bench_stepvalues.py` measures how often
  bisection then names a different critical step than the exhaustive search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

STRATEGIES = ("exhaustive", "early_stop", "bisect")


@dataclass(frozen=True)
class Rollout:
    """One sampled continuation and the number of tokens generated for it (EOS included)."""

    text: str
    n_tokens: int


# (context text, number of rollouts, seed) -> rollouts continuing the context
RolloutFn = Callable[[str, int, int], list[Rollout]]


@dataclass(frozen=True)
class StepValues:
    """Step values of one trace. Entries for prefixes a cheap strategy skipped are None."""

    steps: list[str]
    prefixes: list[str]  # prefixes[i]: the trace text through the end of step i
    q: list[float | None]  # success rate of the rollouts from each prefix
    Q: list[float | None]  # q after the best-of-K transform (Q = q without best_of)
    advantages: list[float | None]  # A_i = Q_i - Q_(i-1)
    critical_step: int  # index of the first step with the lowest Q
    tokens_generated: int  # tokens generated over all rollouts
    rolled_out: int  # prefixes rolled out (the bare prompt included when valued)


def step_prefixes(trace: str, steps: list[str]) -> list[str]:
    """The text of `trace` through the end of each step, found in order (raises if one is missing)."""
    prefixes, pos = [], 0
    for i, step in enumerate(steps):
        start = trace.find(step.strip(), pos)
        if start < 0:
            raise ValueError(f"step {i} ({step.strip()[:40]!r}) does not occur in the trace after position {pos}")
        pos = start + len(step.strip())
        prefixes.append(trace[:pos])
    return prefixes


def best_of_k(q: float, k: int | None) -> float:
    """Q = 1 - (1 - q)^k: chance that at least one of k rollouts succeeds (q itself when k is None)."""
    return q if k is None else 1.0 - (1.0 - q) ** k


@torch.no_grad()
def sample_rollouts(model, tokenizer, context: str, n: int, seed: int, *, max_new_tokens: int,
                    temperature: float = 1.0, top_p: float = 1.0, stop: tuple[str, ...] = ()) -> list[Rollout]:
    """Sample `n` continuations of `context`, computing the context's KV cache once for all of them."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids = tokenizer(context, return_tensors="pt")["input_ids"].to(device)
    cache = DynamicCache(config=model.config)
    if ids.shape[1] > 1:
        # Prefill all but the last token: generate feeds that one itself and starts from the cache.
        model(input_ids=ids[:, :-1], past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(n)
    torch.manual_seed(seed)
    out = model.generate(input_ids=ids.expand(n, -1), attention_mask=torch.ones_like(ids).expand(n, -1),
                         past_key_values=cache, do_sample=True, temperature=temperature, top_p=top_p,
                         max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    rollouts = []
    for row in out[:, ids.shape[1]:].tolist():
        n_tokens = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
        text = tokenizer.decode(row[:n_tokens], skip_special_tokens=True)
        for s in stop:
            text = text.split(s, 1)[0]
        rollouts.append(Rollout(text, n_tokens))
    return rollouts


def step_values(model, tokenizer, task, problem, prompt: str, trace: str, *, rollouts: int,
                best_of: int | None = None, strategy: Literal["exhaustive", "early_stop", "bisect"] = "exhaustive",
                max_new_tokens: int = 256, seed: int = 0, temperature: float = 1.0,
                stop: tuple[str, ...] = (), value_of_prompt: bool = False,
                rollout_fn: RolloutFn | None = None) -> StepValues:
    """Monte Carlo values of every step of `trace` (the completion of `prompt` for `problem`).

    `rollouts` continuations are sampled per prefix at `temperature`; `rollout_fn` replaces the
    model's sampler (tests inject one with known outcomes). See the module docstring for
    `strategy`, `best_of` and `value_of_prompt`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if rollouts < 1:
        raise ValueError(f"rollouts must be at least 1, got {rollouts}")
    if best_of is not None and best_of < 1:
        raise ValueError(f"best_of must be at least 1 or None, got {best_of}")
    steps = task.steps(trace)
    if not steps:
        raise ValueError("the trace has no steps")
    prefixes = step_prefixes(trace, steps)
    if rollout_fn is None:
        def rollout_fn(context: str, n: int, s: int) -> list[Rollout]:
            return sample_rollouts(model, tokenizer, context, n, s, max_new_tokens=max_new_tokens,
                                   temperature=temperature, stop=stop)

    n = len(steps)
    q: list[float | None] = [None] * n
    spent = {"tokens": 0, "prefixes": 0}

    def value(prefix: str, index: int) -> float:
        # Seeded by the prefix index so every strategy draws the same rollouts for the same step.
        outs = rollout_fn(prompt + prefix, rollouts, seed * 100_003 + index + 1)
        spent["tokens"] += sum(r.n_tokens for r in outs)
        spent["prefixes"] += 1
        return sum(task.verify(problem, prefix + r.text).correct for r in outs) / len(outs)

    def at(i: int) -> float:
        if q[i] is None:
            q[i] = value(prefixes[i], i)
        return q[i]

    if strategy == "exhaustive":
        for i in range(n):
            at(i)
        Q_known = [best_of_k(v, best_of) for v in q]
        critical = Q_known.index(min(Q_known))
    elif strategy == "early_stop":
        critical, lowest = 0, float("inf")
        for i in range(n):
            Qi = best_of_k(at(i), best_of)
            if Qi < lowest:
                critical, lowest = i, Qi
            if Qi == 0.0:
                break
    else:  # bisect for the first step whose Q is down to the last step's
        floor = best_of_k(at(n - 1), best_of)
        lo, hi = 0, n - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if best_of_k(at(mid), best_of) <= floor:
                hi = mid
            else:
                lo = mid + 1
        critical = lo

    Q = [None if v is None else best_of_k(v, best_of) for v in q]
    before = best_of_k(value("", -1), best_of) if value_of_prompt else None
    advantages = [None if Q[i] is None or prev is None else Q[i] - prev
                  for i, prev in enumerate([before] + Q[:-1])]
    return StepValues(steps=steps, prefixes=prefixes, q=q, Q=Q, advantages=advantages,
                      critical_step=critical, tokens_generated=spent["tokens"], rolled_out=spent["prefixes"])
