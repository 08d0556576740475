"""Monte Carlo step values of traces (Setlur et al. 2024, section 5), many traces at once.

For each step i of a trace (as `task.steps` splits it), q_i is the share of rollouts from the
prefix ending at step i (prompt + trace through step i) that the task's verifier marks correct.
With `best_of=K`, Q_i = 1 - (1 - q_i)^K: the chance that the best of K rollouts succeeds, which is
how Setlur et al. value a step (best-of-5); otherwise Q_i = q_i. The advantage of step i is
A_i = Q_i - Q_(i-1) (for the first step the value of the bare prompt is needed: rolled out only
with `value_of_prompt=True`, else A_0 is None). The critical step is the FIRST step with the
lowest Q: where an incorrect trace loses its chance of success.

Rollout j of a context is seeded by (seed, context, j) (`generate.sample`'s per-prompt seeds), so
it is the same rollout whichever strategy asks for it, in whatever batch. The strategies differ
only in which rollouts they draw:

- "exhaustive": every rollout of every prefix, as Setlur et al. describe.
- "early_stop": prefixes in order, stopping at the first whose Q is 0 (every rollout failed). Q
  cannot fall below 0, so that prefix is the first with the lowest Q: exact.
- "first_success": early_stop, and each prefix's rollouts are drawn a few at a time and stop at
  the first success: Q > 0 is all the search needs to move on. When a later prefix reaches Q = 0
  it is the critical step, exactly as above, and the unfinished prefixes before it keep the
  partial counts (their q is a lower bound, flagged in `exact`). When no prefix reaches 0, the
  prefixes race: each is drawn a chunk at a time only while its final q could still be the
  lowest (`_Valuer._race`). Exact in every case: the same critical step as exhaustive rollouts
  with the same draws (`bench/bench_stepvalues.py` measures the cost and the agreement).
- "bisect": assumes Q never rises again after it falls; a binary search for the first step at the
  last step's Q. Not exact when a later step repairs an earlier slip (kept for the benchmark).

With `share=True` (early_stop and first_success), a rollout from one prefix that writes the
trace's next steps word for word is also a rollout of each later prefix it passes through: its
continuation from there is a draw from the model given that prefix, so it is counted there, with
its outcome, at no extra tokens (`_shared`). A model sampling near its own trace repeats it often,
so a prefix is often decided before it is rolled out. The counts then mix draws of two contexts,
so the result is no longer the exhaustive search's on the same draws: an approximation whose
agreement the benchmark measures.

`value_traces` values many traces in rounds: each round gathers what every unfinished trace
needs next and samples all of it in one batched call, so the batches stay full. Rollouts are
stored (`store`) as they are sampled, so a killed valuation resumes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cotrepro.sections import StepValueParams  # noqa: F401 (re-exported)

STRATEGIES = ("exhaustive", "early_stop", "first_success", "bisect")


@dataclass(frozen=True)
class Rollout:
    """One sampled continuation and the number of tokens generated for it (EOS included)."""

    text: str
    n_tokens: int


# (context text, first rollout index, number of rollouts) -> rollouts continuing the context
RolloutFn = Callable[[str, int, int], list[Rollout]]


@dataclass(frozen=True)
class StepValues:
    """Step values of one trace. Entries a cheap strategy never rolled out are None."""

    steps: list[str]
    prefixes: list[str]  # prefixes[i]: the trace text through the end of step i
    q: list[float | None]  # success rate of the rollouts drawn from each prefix
    Q: list[float | None]  # q after the best-of-K transform (Q = q without best_of)
    advantages: list[float | None]  # A_i = Q_i - Q_(i-1)
    critical_step: int  # index of the first step with the lowest Q
    tokens_generated: int  # tokens generated over all rollouts
    rolled_out: int  # rollouts drawn (the bare prompt's included when valued)
    exact: list[bool] | None = None  # per step: q computed from all its rollouts

    def to_record(self) -> dict:
        return {"steps": self.steps, "q": self.q, "Q": self.Q, "advantages": self.advantages,
                "critical_step": self.critical_step, "tokens_generated": self.tokens_generated,
                "rolled_out": self.rolled_out, "exact": self.exact}


def from_record(record: dict, trace: str) -> StepValues:
    """The `StepValues` of a stored record (the inverse of `to_record`)."""
    return StepValues(steps=record["steps"], prefixes=step_prefixes(trace, record["steps"]), q=record["q"],
                      Q=record["Q"], advantages=record["advantages"], critical_step=record["critical_step"],
                      tokens_generated=record["tokens_generated"], rolled_out=record["rolled_out"],
                      exact=record.get("exact"))


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


class _Valuer:
    """The strategy of one trace as a state machine: `wanted()` lists the rollouts it needs next
    as (prefix index, first rollout index, count); `feed` records their outcomes. Prefix -1 is
    the bare prompt."""

    def __init__(self, n_steps: int, rollouts: int, strategy: str, value_of_prompt: bool, chunk: int,
                 zero_after: int | None = None, share: bool = False):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        self.n, self.R, self.strategy, self.chunk = n_steps, rollouts, strategy, max(1, min(chunk, rollouts))
        self.zero_after = rollouts if zero_after is None else min(zero_after, rollouts)
        self.wins = {i: 0 for i in range(-1 if value_of_prompt else 0, n_steps)}
        self.drawn = dict.fromkeys(self.wins, 0)  # outcomes counted, shared ones included
        self.own = dict.fromkeys(self.wins, 0)  # rollouts drawn from the prefix itself: the next index
        self.value_of_prompt = value_of_prompt
        self.share = share and strategy in ("early_stop", "first_success")
        self.pos = 0  # the prefix a sequential strategy is at
        self.lo, self.hi = 0, n_steps - 1  # bisection bounds
        self.completing = False  # first_success found no zero: draw everything left
        self.critical: int | None = None

    def full(self, i: int) -> bool:
        return self.drawn[i] >= self.R

    def zero(self, i: int) -> bool:
        """All rollouts failed (first_success: the first `zero_after` of them, an approximation)."""
        need = self.zero_after if self.strategy == "first_success" else self.R
        return self.drawn[i] >= need and self.wins[i] == 0

    def _all(self, indices) -> list[tuple[int, int, int]]:
        return [(i, self.own[i], self.R - self.drawn[i]) for i in indices if not self.full(i)]

    def wanted(self) -> list[tuple[int, int, int]]:
        if self.value_of_prompt and not self.full(-1):
            return self._all([-1])
        if self.critical is not None:
            return []
        s = self.strategy
        if s == "exhaustive":
            need = self._all(range(self.n))
            if not need:
                self.critical = self._lowest()
            return need
        if self.completing:
            return self._race()
        if s == "bisect":
            return self._bisect()
        while self.pos < self.n:  # early_stop and first_success walk the prefixes in order
            i = self.pos
            if self.zero(i):
                self.critical = i
                return []
            if self.full(i) or (s == "first_success" and self.wins[i] > 0):
                self.pos += 1
                continue
            count = self.R - self.drawn[i] if s == "early_stop" else min(self.chunk, self.R - self.drawn[i])
            return [(i, self.own[i], count)]
        if s == "early_stop":
            self.critical = self._lowest()
            return []
        self.completing = True  # first_success: no prefix reached 0: race for the lowest
        return self.wanted()

    def _race(self) -> list[tuple[int, int, int]]:
        """The first lowest q with as few rollouts as that takes. With w wins in d of R rollouts a
        prefix's final q lies in [w/R, (w + R - d)/R]; a prefix whose lower bound exceeds another's
        upper bound (or equals that of an earlier one: ties go to the first) cannot be the first
        lowest, and draws no more. The exhaustive search's answer is never ruled out, so this
        finds it; candidates are drawn a chunk at a time until one is left or all are full."""
        low = {i: self.wins[i] / self.R for i in range(self.n)}
        high = {i: (self.wins[i] + self.R - self.drawn[i]) / self.R for i in range(self.n)}
        best = min(high.values())
        candidates = [i for i in range(self.n)
                      if low[i] <= best and not any(high[j] <= low[i] for j in range(i))]
        if len(candidates) == 1 or all(self.full(i) for i in candidates):
            self.critical = min(candidates, key=lambda i: (self.wins[i] / self.R, i))
            return []
        return [(i, self.own[i], min(self.chunk, self.R - self.drawn[i])) for i in candidates if not self.full(i)]

    def _bisect(self) -> list[tuple[int, int, int]]:
        last = self.n - 1
        if not self.full(last):
            return self._all([last])
        floor = best_of_k(self.wins[last] / self.R, 5)
        while self.lo < self.hi:
            mid = (self.lo + self.hi) // 2
            if not self.full(mid):
                return self._all([mid])
            if best_of_k(self.wins[mid] / self.R, 5) <= floor:
                self.hi = mid
            else:
                self.lo = mid + 1
        self.critical = self.lo
        return []

    def _lowest(self) -> int:
        values = [self.wins[i] / self.drawn[i] for i in range(self.n)]
        return values.index(min(values))

    def feed(self, i: int, successes: int, count: int) -> None:
        self.wins[i] += successes
        self.drawn[i] += count
        self.own[i] += count

    def feed_rollouts(self, i: int, prefixes: list[str], texts: list[str], correct: list[bool]) -> None:
        """The outcomes of rollouts drawn from prefix i (`texts`: the trace's text through step i
        plus each rollout). With `share`, each also counts for the later prefixes it passes
        through, while they still lack rollouts (so no count exceeds `rollouts`)."""
        self.feed(i, sum(correct), len(texts))
        for text, ok in zip(texts, correct) if self.share else ():
            for k in _shared(prefixes, i, text):
                if not self.full(k):
                    self.wins[k] += ok
                    self.drawn[k] += 1

    def result(self, steps: list[str], prefixes: list[str], best_of: int | None, tokens: int) -> StepValues:
        q = [self.wins[i] / self.drawn[i] if self.drawn[i] else None for i in range(self.n)]
        Q = [None if v is None else best_of_k(v, best_of) for v in q]
        before = best_of_k(self.wins[-1] / self.drawn[-1], best_of) if self.value_of_prompt else None
        advantages = [None if Q[i] is None or prev is None else Q[i] - prev
                      for i, prev in enumerate([before] + Q[:-1])]
        return StepValues(steps=steps, prefixes=prefixes, q=q, Q=Q, advantages=advantages,
                          critical_step=self.critical, tokens_generated=tokens, rolled_out=sum(self.drawn.values()),
                          exact=[self.full(i) for i in range(self.n)])


def _shared(prefixes: list[str], i: int, text: str) -> list[int]:
    """The later prefixes that `text` (prefix i's text plus one rollout) passes through word for
    word, ending where a token can end (the text ends there or goes on with whitespace: "= 38"
    is not passed through by "= 380")."""
    return [k for k in range(i + 1, len(prefixes))
            if text.startswith(prefixes[k]) and text[len(prefixes[k]):len(prefixes[k]) + 1] in ("", " ", "\n")]


def step_values(model, tokenizer, task, problem, prompt: str, trace: str, *, rollouts: int,
                best_of: int | None = None, strategy: str = "exhaustive", max_new_tokens: int = 256,
                seed: int = 0, temperature: float = 1.0, stop: tuple[str, ...] = (), value_of_prompt: bool = False,
                chunk: int = 4, zero_after: int | None = None, share: bool = False,
                rollout_fn: RolloutFn | None = None) -> StepValues:
    """Monte Carlo values of every step of one `trace` (the completion of `prompt` for `problem`).

    `rollout_fn(context, first, count)` replaces the model's sampler (tests inject one with known
    outcomes); by default rollouts come from `value_traces`' sampler. See the module docstring.
    """
    if rollouts < 1:
        raise ValueError(f"rollouts must be at least 1, got {rollouts}")
    if rollout_fn is None:
        from cotrepro.sections import StepValueParams

        params = StepValueParams(rollouts=rollouts, best_of=best_of, strategy="exhaustive", temperature=temperature,
                                 max_new_tokens=max_new_tokens, zero_after=zero_after, share=share)
        return value_traces(model, tokenizer, task, [(problem, prompt, trace)], params, seed=seed, stop=stop,
                            value_of_prompt=value_of_prompt, strategy=strategy, chunk=chunk)[0]
    steps = task.steps(trace)
    if not steps:
        raise ValueError("the trace has no steps")
    prefixes = step_prefixes(trace, steps)
    valuer = _Valuer(len(steps), rollouts, strategy, value_of_prompt, chunk, zero_after, share)
    tokens = 0
    while wanted := valuer.wanted():
        for i, first, count in wanted:
            prefix = "" if i < 0 else prefixes[i]
            outs = rollout_fn(prompt + prefix, first, count)
            tokens += sum(r.n_tokens for r in outs)
            texts = [prefix + r.text for r in outs]
            valuer.feed_rollouts(i, prefixes, texts, [task.verify(problem, t).correct for t in texts])
    return valuer.result(steps, prefixes, best_of, tokens)


def value_traces(model, tokenizer, task, items: Sequence[tuple], params, *, seed: int = 0,
                 stop: tuple[str, ...] = (), value_of_prompt: bool = False, strategy: str | None = None,
                 chunk: int = 4, store=None, model_id: str = "", progress: bool = False) -> list[StepValues]:
    """`StepValues` of every `(problem, prompt, trace)` in `items`, rollouts batched across traces.

    `params` is a `StepValueParams`; `strategy` overrides its strategy. Each round gathers the
    rollouts every unfinished trace wants next (a context several traces share is sampled once),
    samples them in one `generate.sample` call, and grades them through `cotrepro.grade`.
    """
    from cotrepro.generate import sample_range
    from cotrepro.grade import grade_problems

    strategy = strategy or params.strategy
    states = []
    for problem, prompt, trace in items:
        steps = task.steps(trace)
        if not steps:
            raise ValueError(f"problem {problem.id}: the trace has no steps")
        prefixes = step_prefixes(trace, steps)
        states.append((problem, prompt, steps, prefixes,
                       _Valuer(len(steps), params.rollouts, strategy, value_of_prompt, chunk,
                               params.zero_after, params.share), [0]))
    while True:
        requests = []  # (state index, prefix index, first, count)
        for s, (_, _, _, _, valuer, _) in enumerate(states):
            requests += [(s, i, first, count) for i, first, count in valuer.wanted()]
        if not requests:
            break
        contexts = [(states[s][1] + ("" if i < 0 else states[s][3][i]), first, count) for s, i, first, count in requests]
        outputs = sample_range(model, tokenizer, contexts, temperature=params.temperature,
                               max_new_tokens=params.max_new_tokens, stop=stop, seed=seed,
                               batch_size=params.batch_size, store=store, model_id=model_id)
        flat_problems, flat_texts = [], []
        for (s, i, _, _), rollouts in zip(requests, outputs):
            prefix = "" if i < 0 else states[s][3][i]
            flat_problems += [states[s][0]] * len(rollouts)
            flat_texts += [prefix + r.text for r in rollouts]
        verdicts = grade_problems(task, flat_problems, flat_texts, workers=1, progress=False)
        start = 0
        for (s, i, _, _), rollouts in zip(requests, outputs):
            end = start + len(rollouts)
            states[s][4].feed_rollouts(i, states[s][3], flat_texts[start:end],
                                       [bool(v["correct"]) for v in verdicts[start:end]])
            states[s][5][0] += sum(r.n_tokens for r in rollouts)
            start = end
    return [valuer.result(steps, prefixes, params.best_of, tokens[0])
            for _, _, steps, prefixes, valuer, tokens in states]


def critical_positions(values: Sequence[StepValues]) -> list[float]:
    """Where the critical step falls, as a share of the trace (0 = first step, 1 = last)."""
    return [sv.critical_step / max(1, len(sv.steps) - 1) for sv in values]


def tokens_per_trace(values: Sequence[StepValues]) -> float:
    return sum(sv.tokens_generated for sv in values) / max(1, len(values))


def relative_cost(cheap: Sequence[StepValues], exhaustive: Sequence[StepValues]) -> float:
    """Generated tokens of a cheap strategy over those of exhaustive rollouts, on the same traces."""
    total = sum(sv.tokens_generated for sv in exhaustive)
    return math.nan if not total else sum(sv.tokens_generated for sv in cheap) / total


def summary(records: Sequence[dict]) -> list[dict]:
    """What figures keep of stored step-value records: each trace's steps, critical step and cost."""
    return [{k: r[k] for k in ("critical_step", "steps", "tokens_generated", "rolled_out")} for r in records]


def value_job(spec: dict, out_dir) -> None:
    """A `cotrepro.jobs` job: step values of `spec["items"]` ({problem, prompt, trace}) under the
    model `spec["model"]`, with `spec["params"]` (a StepValueParams dict); writes `values.json`, one
    record per item (its trace, problem id and `StepValues.to_record()`). Rollouts are stored in
    `rollouts.jsonl` as they are sampled, so a killed job resumes."""
    import json
    from pathlib import Path

    from cotrepro import specs
    from cotrepro.params import from_dict
    from cotrepro.quiet import quiet_libraries
    from cotrepro.sections import TaskSection
    from cotrepro.tasks.base import Problem

    quiet_libraries()
    out_dir = Path(out_dir)
    task = specs.get_task(from_dict(TaskSection, spec["task"]))
    params = from_dict(StepValueParams, spec["params"])
    model, tokenizer = specs.load(spec["model"], out_dir.parents[2])
    items = [(Problem(**i["problem"]), i["prompt"], i["trace"]) for i in spec["items"]]
    values = value_traces(model, tokenizer, task, items, params, seed=spec["seed"], stop=tuple(spec["stop"]),
                          value_of_prompt=spec.get("value_of_prompt", False), store=out_dir / "rollouts.jsonl",
                          model_id="valued")
    records = [{"problem_id": p.id, "trace": trace, **sv.to_record()} for (p, _, trace), sv in zip(items, values)]
    (out_dir / "values.json").write_text(json.dumps(records))
