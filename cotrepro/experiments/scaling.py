"""Step 06: test error against the amount of synthetic data, for SFT, RFT and per-step DPO
(Setlur et al. 2024, claims ST-1, ST-2, ST-3, ST-4, ST-5, ST-7).

For each ladder size n (synthetic training problems) and training seed:

- SFT: the student base + LoRA, trained on one teacher positive per problem (the teacher's first
  correct sample). The first n problems that have a positive form the n-problem set, so the sets
  are nested. The SFT model is also where RFT samples and DPO negatives come from.
- RFT (Setlur et al., after Yuan et al. 2023): `self_samples` samples per problem from the SFT
  model; the correct ones, deduplicated and capped at `rft_cap` per problem (`train.rft_dataset`),
  are added to the SFT data, and a fresh LoRA on the student base is trained on the union, as
  the SFT model was. (RFT data = SFT data + self-generated positives, trained from the base.)
- Per-step DPO: the incorrect samples of the SFT model (at most `negatives_per_problem` per
  problem) get Monte Carlo step values under the SFT model (best-of-K, the cheap strategy); each
  is cut after its critical step and paired with a correct trace of the problem (teacher or
  self-generated); the SFT adapter is merged into the base and a new LoRA is trained with DPO,
  so the adapter-disabled model, the reference, IS the SFT model.
- At `compare_size` only: standard DPO (random pairs of whole traces) and edit-distance DPO on
  the same negatives, and pass@k of SFT and per-step DPO.

Every model is evaluated greedily on the same test problems; per-problem outcomes are stored, so
every interval is a paired bootstrap over test problems (`cotrepro.stats`). Each training run,
sampled set and step-value record is stored as it finishes, so a killed run resumes.

Step values are computed for many traces at once: `batched_step_values` runs the library's
`stepvalues.step_values` with a rollout function that serves rollouts from a cache; whenever a
trace needs a prefix the cache lacks, the prefix is collected, and all collected prefixes are
sampled together in one batched `generate.sample` call (resumable through a store) before the
traces are valued again. The result is the one `step_values` would compute (same strategy, same
critical step); only the batching differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from cotrepro import stats
from cotrepro.generate import SamplingParams, sample
from cotrepro.params import param
from cotrepro.stepvalues import Rollout, StepValues, step_values
from cotrepro.tasks.prompts import get_template

METHODS = ("sft", "rft", "dpo_step", "dpo_random", "dpo_edit")


@dataclass(frozen=True)
class ScalingParams:
    """Step 06: the data ladder and the three methods of Setlur et al. 2024."""

    sizes: tuple[int, ...] = param((64, 128, 256, 512), "ladder of synthetic training problems "
                                   "(each with one teacher positive); the sets are nested", ge=1)
    seeds: tuple[int, ...] = param((0,), "training seeds of every (method, size)", ge=0)
    compare_size: int = param(64, "ladder size where the RFT and per-step DPO multipliers, the DPO "
                              "variants and pass@k are compared (the smallest size extrapolates least)", ge=1)
    pool_factor: float = param(2.0, "training problems offered to the teacher, as a multiple of the "
                               "largest size (some problems get no correct teacher sample)", ge=1.0)
    positives: Literal["teacher", "gold"] = param("teacher", "where the SFT positives come from: the teacher's "
                                                  "first correct sample, or the gold solution (an oracle teacher: "
                                                  "for smoke tests, whose teachers are never right)")
    teacher_samples: int = param(4, "teacher samples per problem; the first correct one is its positive", ge=1)
    teacher_temperature: float = param(0.7, "temperature of the teacher samples", ge=0.0)
    self_samples: int = param(8, "samples per problem from the SFT model: correct ones are RFT "
                              "positives, wrong ones DPO negatives", ge=1)
    self_temperature: float = param(1.0, "temperature of the SFT model's samples", gt=0.0)
    rft_cap: int = param(4, "self-generated positives kept per problem (distinct texts)", ge=1)
    rft_sizes: tuple[int, ...] = param((), "ladder sizes where RFT runs (empty = every size)", ge=1)
    dpo_sizes: tuple[int, ...] = param((), "ladder sizes where per-step DPO runs (empty = compare_size)", ge=1)
    min_steps: int = param(0, "fewest optimizer steps of any run: small sets get more epochs than train.epochs "
                           "(else the smallest ladder sizes are barely trained)", ge=0)
    dpo_lr: float | None = param(None, "DPO learning rate (null = train.lr)", gt=0.0)
    dpo_epochs: float | None = param(None, "DPO epochs (null = train.epochs)", gt=0.0)
    n_boot: int = param(2000, "bootstrap resamples of every interval", ge=100)

    def check(self) -> None:
        """One-line errors for sizes that do not fit the ladder."""
        if list(self.sizes) != sorted(set(self.sizes)) or len(self.sizes) < 2:
            raise ValueError(f"scaling.sizes must be at least two increasing sizes, got {list(self.sizes)}")
        for name, values in (("compare_size", (self.compare_size,)), ("rft_sizes", self.rft_sizes),
                             ("dpo_sizes", self.dpo_sizes)):
            off = [v for v in values if v not in self.sizes]
            if off:
                raise ValueError(f"scaling.{name}: {off} not on the ladder {list(self.sizes)}")

    def method_sizes(self, method: str) -> tuple[int, ...]:
        """The ladder sizes where `method` is trained."""
        if method == "sft":
            return self.sizes
        if method == "rft":
            return self.rft_sizes or self.sizes
        if method == "dpo_step":
            return tuple(sorted(set(self.dpo_sizes) | {self.compare_size}))
        return (self.compare_size,)


def epochs_for(epochs: float, n_examples: int, min_steps: int, batch: int) -> float:
    """`epochs`, raised so that a run over `n_examples` takes at least `min_steps` optimizer steps
    of `batch` examples (the smallest ladder sizes would otherwise get a handful of steps)."""
    return max(epochs, min_steps * batch / n_examples)


# ---------------------------------------------------------------------------------------------
# Batched Monte Carlo step values


class _MissingRollouts(Exception):
    """Raised by the cached rollout function for a context not sampled yet."""


def batched_step_values(model, tokenizer, task, items: list[tuple], *, rollouts: int, best_of: int | None,
                        strategy: str, temperature: float, max_new_tokens: int, stop: tuple[str, ...],
                        seed: int = 0, value_of_prompt: bool = False, batch_size: int = 64,
                        store=None, model_id: str = "") -> list[StepValues]:
    """`stepvalues.step_values` of every `(problem, prompt, trace)` in `items`, rollouts batched.

    Rounds: every unfinished trace is valued with the rollouts sampled so far; the first context
    each one lacks is collected, and all of them are sampled in one `generate.sample` call
    (`rollouts` samples each, resumable through `store`). A context shared by several traces is
    sampled once. Token counts are those of the re-tokenised rollout texts plus one for EOS.
    Rollouts are seeded per context by `generate.sample` (from `seed` and the context text), not
    by the step index as `step_values`' own sampler is; the strategy's logic is unchanged.
    """
    cache: dict[str, list[Rollout]] = {}
    sampling = SamplingParams(k=rollouts, temperature=temperature, max_new_tokens=max_new_tokens,
                              stop=stop, seed=seed, batch_size=batch_size)

    def cached(context: str, n: int, _seed: int) -> list[Rollout]:
        if context not in cache:
            raise _MissingRollouts(context)
        return cache[context]

    results: list[StepValues | None] = [None] * len(items)
    while True:
        wanted: dict[str, None] = {}
        for i, (problem, prompt, trace) in enumerate(items):
            if results[i] is not None:
                continue
            try:
                results[i] = step_values(model, tokenizer, task, problem, prompt, trace, rollouts=rollouts,
                                         best_of=best_of, strategy=strategy, seed=seed,
                                         value_of_prompt=value_of_prompt, rollout_fn=cached)
            except _MissingRollouts as missing:
                wanted[missing.args[0]] = None
        if not wanted:
            return results
        contexts = list(wanted)
        for context, texts in zip(contexts, sample(model, tokenizer, contexts, sampling, store=store,
                                                   model_id=model_id, progress=False)):
            cache[context] = [Rollout(t, len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1)
                              for t in texts]


def step_value_record(key: str, problem_id: str, trace: str, sv: StepValues, **extra) -> dict:
    """A JSON record of one trace's step values (what step 07 reads)."""
    return {"key": key, "problem_id": problem_id, "trace": trace, "steps": sv.steps, "q": sv.q, "Q": sv.Q,
            "advantages": sv.advantages, "critical_step": sv.critical_step,
            "tokens_generated": sv.tokens_generated, "rolled_out": sv.rolled_out, **extra}


def as_step_values(record: dict) -> StepValues:
    """The `StepValues` of a stored record (the inverse of `step_value_record`)."""
    from cotrepro.stepvalues import step_prefixes

    return StepValues(steps=record["steps"], prefixes=step_prefixes(record["trace"], record["steps"]),
                      q=record["q"], Q=record["Q"], advantages=record["advantages"],
                      critical_step=record["critical_step"], tokens_generated=record["tokens_generated"],
                      rolled_out=record["rolled_out"])


# ---------------------------------------------------------------------------------------------
# Training and evaluation, each stored as it finishes


class ScalingRun:
    """The models of step 06 for one experiment: trained, sampled and evaluated on demand, each
    result stored in the run directory and reused when present (so a killed run resumes)."""

    def __init__(self, P, run, run_root: str | Path):
        from cotrepro import world
        from cotrepro.tasks import get_task

        P.scaling.check()
        self.P, self.sp, self.run, self.run_root = P, P.scaling, run, Path(run_root)
        self.task = get_task(P.task.name)
        self.template = P.task.template
        self.stop = get_template(self.task.name, self.template).stop
        self.tests = world.test_problems(P)
        self.evals = run.jsonl("evals")
        self._train_set: list[dict] | None = None
        self._self_samples: dict[tuple[int, int], tuple[list[dict], dict[str, list[str]]]] = {}

    # -- data -------------------------------------------------------------------------------

    def sampling(self, k: int, temperature: float, seed: int) -> SamplingParams:
        return SamplingParams(k=k, temperature=temperature, max_new_tokens=self.P.sampling.max_new_tokens,
                              stop=self.stop, seed=seed, batch_size=self.P.sampling.batch_size)

    def teacher_positives(self) -> list[dict]:
        """SFT examples {prompt, completion, problem_id, problem}: the first correct teacher sample of
        each pool problem that has one, in pool order (the first n form the n-problem set)."""
        if self._train_set is None:
            from cotrepro import world

            pool = world.problems(self.P, self.P.task.train_split,
                                  math.ceil(max(self.sp.sizes) * self.sp.pool_factor))
            prompts = [self.task.prompt(p, self.template) for p in pool]
            if self.sp.positives == "gold":  # stepwise rendering where the task has one (arith)
                samples = [[p.meta.get("stepwise") or p.solution or ""] for p in pool]
            else:
                model, tokenizer = world.load_teacher(self.P, self.run_root)
                samples = sample(model, tokenizer, prompts,
                                 self.sampling(self.sp.teacher_samples, self.sp.teacher_temperature, self.P.seed),
                                 store=self.run.jsonl("teacher_samples"), model_id=f"teacher:{self.P.models.teacher}",
                                 progress=False)
            self._train_set = [
                {"prompt": prompt, "completion": good, "problem_id": problem.id, "problem": problem}
                for problem, prompt, completions in zip(pool, prompts, samples)
                for good in [next((c for c in completions if self.task.verify(problem, c).correct), None)]
                if good is not None]
            if len(self._train_set) < max(self.sp.sizes):
                raise ValueError(f"the teacher solved {len(self._train_set)} of {len(pool)} pool problems, fewer "
                                 f"than the largest ladder size {max(self.sp.sizes)}: raise scaling.pool_factor")
        return self._train_set

    def train_set(self, n: int) -> list[dict]:
        return self.teacher_positives()[:n]

    # -- models -----------------------------------------------------------------------------

    def adapter_dir(self, method: str, n: int, seed: int) -> Path:
        return self.run.path / "models" / f"{method}_n{n}_s{seed}"

    def load(self, adapters: list[Path]):
        """The student base with each adapter in turn loaded and merged into it."""
        from cotrepro import world
        from cotrepro.models import load_adapter, merge_adapter

        model, tokenizer = world.load_student(self.P, self.run_root)
        for adapter in adapters:
            model = merge_adapter(load_adapter(model, adapter / "final"))
        return model, tokenizer

    def _train(self, method: str, n: int, seed: int, data: list[dict], base: list[Path]) -> Path:
        from cotrepro.dpo import dpo
        from cotrepro.models import add_lora
        from cotrepro.train import sft

        out = self.adapter_dir(method, n, seed)
        if (out / "final" / "adapter_config.json").is_file():
            return out
        if not data:
            raise ValueError(f"{method} at n={n}, seed {seed}: no training data (no pairs: the SFT model "
                             f"had no wrong samples, or no problem had a correct trace)")
        model, tokenizer = self.load(base)
        model = add_lora(model, self.P.lora)
        t = self.P.train
        is_dpo = method.startswith("dpo")
        epochs = (self.sp.dpo_epochs or t.epochs) if is_dpo else t.epochs
        epochs = epochs_for(epochs, len(data), self.sp.min_steps, t.batch_size * t.grad_accum)
        params = replace(t, seed=seed, epochs=epochs, lr=(self.sp.dpo_lr or t.lr) if is_dpo else t.lr)
        if is_dpo:
            dpo(model, tokenizer, data, params, out, self.P.dpo)
        else:
            sft(model, tokenizer, [{"prompt": e["prompt"], "completion": e["completion"]} for e in data], params, out)
        (out / "data_size.json").write_text(str(len(data)))
        return out

    def sft(self, n: int, seed: int) -> Path:
        """SFT on the teacher positives of the n-problem set."""
        return self._train("sft", n, seed, self.train_set(n), [])

    def self_samples(self, n: int, seed: int) -> tuple[list[dict], dict[str, list[str]]]:
        """(RFT positives, negatives per problem id) sampled from the SFT model of (n, seed)."""
        from cotrepro.train import rft_dataset

        if (n, seed) in self._self_samples:
            return self._self_samples[n, seed]
        problems = [e["problem"] for e in self.train_set(n)]
        model, tokenizer = self.load([self.sft(n, seed)])
        sampling = self.sampling(self.sp.self_samples, self.sp.self_temperature, self.P.seed + seed)
        store, model_id = self.run.jsonl("self_samples"), f"sft_n{n}_s{seed}@{self.run.path.name}"
        positives = rft_dataset(model, tokenizer, self.task, problems, sampling, cap_per_problem=self.sp.rft_cap,
                                template=self.template, store=store, model_id=model_id)
        prompts = [self.task.prompt(p, self.template) for p in problems]
        samples = sample(model, tokenizer, prompts, sampling, store=store, model_id=model_id, progress=False)
        negatives: dict[str, list[str]] = {}
        for problem, completions in zip(problems, samples):
            wrong = [c for c in dict.fromkeys(completions) if self.task.steps(c)
                     and not self.task.verify(problem, c).correct]
            if wrong:
                negatives[problem.id] = wrong[:self.P.stepvalues.negatives_per_problem]
        self._self_samples[n, seed] = positives, negatives
        return positives, negatives

    def rft(self, n: int, seed: int) -> Path:
        """RFT: the SFT data plus the SFT model's own correct samples, trained from the base."""
        positives, _ = self.self_samples(n, seed)
        return self._train("rft", n, seed, self.train_set(n) + positives, [])

    def negative_values(self, n: int, seed: int) -> dict[str, list[StepValues]]:
        """Step values (under the SFT model) of every negative of (n, seed), stored per trace."""
        _, negatives = self.self_samples(n, seed)
        store = self.run.jsonl("stepvalues")
        problems = {e["problem_id"]: e for e in self.train_set(n)}
        keyed = [(f"n{n}/s{seed}/{pid}/{j}", pid, trace) for pid, traces in negatives.items()
                 for j, trace in enumerate(traces)]
        todo = [item for item in keyed if item[0] not in store]
        if todo:
            sv = self.P.stepvalues
            model, tokenizer = self.load([self.sft(n, seed)])
            items = [(problems[pid]["problem"], problems[pid]["prompt"], trace) for _, pid, trace in todo]
            values = batched_step_values(
                model, tokenizer, self.task, items, rollouts=sv.rollouts, best_of=sv.best_of, strategy=sv.strategy,
                temperature=sv.temperature, max_new_tokens=self.P.sampling.max_new_tokens, stop=self.stop,
                seed=self.P.seed + seed, batch_size=self.P.sampling.batch_size, store=self.run.jsonl("rollouts"),
                model_id=f"sft_n{n}_s{seed}@{self.run.path.name}")
            for (key, pid, trace), value in zip(todo, values):
                store.append(step_value_record(key, pid, trace, value, n=n, seed=seed))
        values: dict[str, list[StepValues]] = {}
        for key, pid, _ in keyed:
            values.setdefault(pid, []).append(as_step_values(store.get(key)))
        return values

    def dpo(self, method: str, n: int, seed: int) -> Path:
        """DPO from the SFT model of (n, seed): method dpo_step, dpo_random or dpo_edit."""
        from cotrepro import pairs

        positives, negatives = self.self_samples(n, seed)
        prompts = {e["problem_id"]: e["prompt"] for e in self.train_set(n)}
        correct: dict[str, list[str]] = {e["problem_id"]: [e["completion"]] for e in self.train_set(n)}
        for e in positives:
            correct[e["problem_id"]].append(e["completion"])
        if method == "dpo_step":
            data = pairs.per_step_pairs(prompts, correct, self.negative_values(n, seed), seed=seed)
        elif method == "dpo_random":
            data = pairs.random_pairs(prompts, correct, negatives, seed=seed)
        elif method == "dpo_edit":
            data = pairs.edit_distance_pairs(prompts, correct, negatives, self.task.steps, seed=seed)
        else:
            raise ValueError(f"unknown DPO method {method!r}; choose dpo_step, dpo_random or dpo_edit")
        return self._train(method, n, seed, data, [self.sft(n, seed)])

    def train(self, method: str, n: int, seed: int) -> list[Path]:
        """Train `method` at (n, seed) if not stored; the adapters to load, in order."""
        if method == "sft":
            return [self.sft(n, seed)]
        if method == "rft":
            return [self.rft(n, seed)]
        return [self.sft(n, seed), self.dpo(method, n, seed)]

    def evaluate(self, method: str, n: int, seed: int, k: int = 1) -> dict:
        """Greedy pass@1 (k=1) or pass@k of k samples of `method` at (n, seed) on the test problems."""
        from cotrepro.evaluate import evaluate

        key = f"{method}/n{n}/s{seed}/k{k}"
        if key in self.evals:
            return self.evals.get(key)
        model, tokenizer = self.load(self.train(method, n, seed))
        e = self.P.eval
        result = evaluate(model, tokenizer, self.task, self.tests, template=self.template,
                          max_new_tokens=e.max_new_tokens, k=k, temperature=0.0 if k == 1 else e.temperature,
                          seed=self.P.seed + seed, batch_size=e.batch_size)
        scores = [float(any(r["correct"])) for r in result.records]  # pass@k with k samples: any correct
        record = {"key": key, "method": method, "n": n, "seed": seed, "k": k, "score": float(np.mean(scores)),
                  "scores": scores, "ids": [r["id"] for r in result.records], "summary": result.summary,
                  "train_examples": int((self.adapter_dir(method, n, seed) / "data_size.json").read_text())}
        self.evals.append(record)
        return record

    def run_all(self, methods=METHODS, pass_k: int | None = None) -> list[dict]:
        """Train and evaluate every (method, size, seed) of the plan; pass@k at compare_size."""
        for method in methods:
            for n in self.sp.method_sizes(method):
                for seed in self.sp.seeds:
                    self.evaluate(method, n, seed)
        if pass_k:
            for method in ("sft", "dpo_step"):
                for seed in self.sp.seeds:
                    self.evaluate(method, self.sp.compare_size, seed, k=pass_k)
        return list(self.evals)


# ---------------------------------------------------------------------------------------------
# Analysis: outcomes, fits, multipliers, claims


def outcomes(evals: list[dict], method: str, k: int = 1) -> dict[int, np.ndarray]:
    """{size: per-test-problem score averaged over seeds} of `method` (greedy correctness for
    k=1, unbiased pass@k otherwise); every array follows the same test-problem order."""
    by_size: dict[int, list[np.ndarray]] = {}
    for r in evals:
        if r["method"] == method and r["k"] == k:
            by_size.setdefault(r["n"], []).append(np.asarray(r["scores"], dtype=float))
    return {n: np.mean(runs, axis=0) for n, runs in sorted(by_size.items())}


def upper_half(sizes) -> list[int]:
    """The upper half of a ladder, its median included (at least two sizes)."""
    sizes = sorted(sizes)
    return sizes[(len(sizes) - 1) // 2:] if len(sizes) > 2 else sizes


def exponent_ci(curve: dict[int, np.ndarray], n_boot: int, seed: int = 0,
                others: dict[int, np.ndarray] | None = None) -> stats.Interval:
    """CI of the fitted power-law exponent b of `curve` (minus that of `others`, if given) by a
    paired bootstrap over test problems. Resamples with a zero error are left out."""
    sizes = sorted(curve)
    table = np.array([curve[n] for n in sizes])
    other_sizes = sorted(others) if others else []
    other = np.array([others[n] for n in other_sizes]) if others else None

    def b(idx: np.ndarray) -> float:
        err = 1 - table[:, idx].mean(axis=1)
        if np.any(err <= 0):
            return math.nan
        value = stats.fit_power_law(sizes, err).b
        if other is not None:
            err_other = 1 - other[:, idx].mean(axis=1)
            if np.any(err_other <= 0):
                return math.nan
            value -= stats.fit_power_law(other_sizes, err_other).b
        return value

    n_items = table.shape[1]
    rng = np.random.default_rng(seed)
    boots = np.array([b(rng.integers(0, n_items, n_items)) for _ in range(n_boot)])
    defined = boots[~np.isnan(boots)]
    if defined.size == 0:
        raise ValueError("the exponent is undefined in every bootstrap resample (zero errors)")
    low, high = np.quantile(defined, [0.025, 0.975])
    return stats.Interval(b(np.arange(n_items)), float(low), float(high),
                          n_undefined=int(boots.size - defined.size))


def log_ratio_ci(sft_curve: dict[int, np.ndarray], n: int, a: np.ndarray, b: np.ndarray,
                 n_boot: int, seed: int = 0) -> stats.Interval:
    """CI of log(multiplier of a / multiplier of b), both trained on n problems, one paired
    bootstrap over test problems (> 0: method a is the more data-efficient)."""
    sizes = sorted(sft_curve)
    table = np.array([sft_curve[s] for s in sizes])

    def stat(idx: np.ndarray) -> float:
        err_sft, err_a, err_b = 1 - table[:, idx].mean(axis=1), 1 - a[idx].mean(), 1 - b[idx].mean()
        if np.any(err_sft <= 0) or err_a <= 0 or err_b <= 0:
            return math.nan
        fit = stats.fit_power_law(sizes, err_sft)
        return math.log(stats.iso_error_multiplier(fit, n, err_a) / stats.iso_error_multiplier(fit, n, err_b))

    rng = np.random.default_rng(seed)
    boots = np.array([stat(rng.integers(0, a.size, a.size)) for _ in range(n_boot)])
    defined = boots[~np.isnan(boots)]
    if defined.size == 0:
        raise ValueError("the multiplier ratio is undefined in every bootstrap resample")
    low, high = np.quantile(defined, [0.025, 0.975])
    return stats.Interval(stat(np.arange(a.size)), float(low), float(high),
                          n_undefined=int(boots.size - defined.size))


def claim(claim_id: str, interval: stats.Interval, verdict: str, *, unit: str, what: str, n: int, **extra) -> dict:
    """One claims.json entry."""
    return {"claim": claim_id, "effect": interval.estimate, "ci": [interval.low, interval.high], "unit": unit,
            "what": what, "verdict": verdict, "n": n, **extra}


def analyse(evals: list[dict], sp: ScalingParams, pass_k: int, seed: int = 0) -> dict:
    """Fits, multipliers and the claims ST-1..ST-5 and ST-7 from stored evaluations.

    Returns {"fits", "multipliers", "claims"}; see the module docstring for the comparisons.
    """
    sft, rft, step = outcomes(evals, "sft"), outcomes(evals, "rft"), outcomes(evals, "dpo_step")
    n_test = len(next(iter(sft.values())))
    n_seeds = len(sp.seeds)
    where = f"over {n_test} test problems, {n_seeds} seed(s)"
    size = sp.compare_size
    fit = stats.fit_power_law(sorted(sft), [1 - sft[n].mean() for n in sorted(sft)])
    b_ci = exponent_ci(sft, sp.n_boot, seed)
    claims = [claim("ST-1", b_ci, stats.verdict(b_ci, "greater", 0.0), unit="power-law exponent b",
                    what=f"SFT test error = {fit.a:.3g} * n^-b over n = {list(sorted(sft))} teacher-positive "
                         f"problems, greedy pass@1 {where}; b > 0 means error falls (the paper: shallow)", n=n_test)]
    fits = {"sft": {"a": fit.a, "b": fit.b}}
    for name, curve in (("rft", rft), ("dpo_step", step)):
        if len(curve) >= 2 and all(1 - v.mean() > 0 for v in curve.values()):
            f = stats.fit_power_law(sorted(curve), [1 - curve[n].mean() for n in sorted(curve)])
            fits[name] = {"a": f.a, "b": f.b}

    multipliers = {}
    for name, curve in (("rft", rft), ("dpo_step", step)):
        for n, scores in curve.items():
            try:
                m = stats.bootstrap_multiplier(sft, n, scores, n_boot=sp.n_boot, seed=seed)
            except ValueError:
                m = stats.Interval(math.nan, math.nan, math.nan)
            multipliers[f"{name}/{n}"] = {"method": name, "n": n, "multiplier": m.estimate, "low": m.low,
                                          "high": m.high, "n_undefined": m.n_undefined,
                                          "extrapolated": m.estimate * n > max(sft)}
    largest = max(sft)

    def mult(name: str) -> stats.Interval:
        m = multipliers.get(f"{name}/{size}")
        return stats.Interval(m["multiplier"], m["low"], m["high"]) if m else stats.Interval(math.nan, math.nan, math.nan)

    def mult_verdict(interval: stats.Interval) -> str:
        if math.isnan(interval.low) or math.isnan(interval.high):  # the bootstrap left it undefined
            return "inconclusive"
        return stats.verdict(interval, "greater", 1.0)

    m_rft = mult("rft")
    claims.append(claim(
        "ST-2", m_rft, mult_verdict(m_rft), unit="iso-error multiplier (x SFT problems)",
        what=f"RFT on n={size} problems reaches the error SFT reaches on {m_rft.estimate:.2g}x as many "
             f"(fitted SFT curve up to n={largest}; paper ~2x; reproduced if the CI is above 1), {where}",
        n=n_test))

    top = [n for n in upper_half(sft) if n in rft]
    if len(top) >= 2:
        flat = exponent_ci({n: sft[n] for n in top}, sp.n_boot, seed, others={n: rft[n] for n in top})
        claims.append(claim(
            "ST-3", flat, stats.verdict(flat, "greater", 0.0), unit="b(SFT) - b(RFT), upper half of the ladder",
            what=f"power-law exponent of SFT minus that of RFT over n = {top} (defined before the run: > 0 "
                 f"means RFT error flattens relative to SFT as self-generated data grows), {where}", n=n_test))

    m_step = mult("dpo_step")
    verdict = mult_verdict(m_step)
    ratio_note = ""
    if verdict == "reproduced" and size in rft:
        ratio = log_ratio_ci(sft, size, step[size], rft[size], sp.n_boot, seed)
        ratio_note = f"; log(multiplier per-step DPO / RFT) = {ratio}"
        verdict = {"reproduced": "reproduced", "not reproduced": "not reproduced"}.get(
            stats.verdict(ratio, "greater", 0.0), "inconclusive")
    claims.append(claim(
        "ST-4", m_step, verdict, unit="iso-error multiplier (x SFT problems)",
        what=f"per-step DPO on n={size} problems reaches the error SFT reaches on {m_step.estimate:.2g}x as many "
             f"(paper ~8x; reproduced if the CI is above 1 and the multiplier beats RFT's{ratio_note}), {where}",
        n=n_test))

    random_dpo, edit_dpo = outcomes(evals, "dpo_random"), outcomes(evals, "dpo_edit")
    if size in random_dpo and size in sft:
        diff = stats.diff_ci(1 - random_dpo[size], 1 - sft[size], paired=True, n_boot=sp.n_boot, seed=seed)
        # ST-5 claims NO gain: it holds unless standard DPO is clearly better than SFT.
        st5 = "not reproduced" if diff.high < 0 else "reproduced"
        errs = {m: float(1 - c[size].mean()) for m, c in (("standard", random_dpo), ("edit", edit_dpo),
                                                           ("per-step", step)) if size in c}
        between = ("edit" in errs and "per-step" in errs
                   and min(errs["standard"], errs["per-step"]) <= errs["edit"] <= max(errs["standard"], errs["per-step"]))
        claims.append(claim(
            "ST-5", diff, st5, unit="test error difference",
            what=f"error(standard DPO) - error(SFT) at n={size}, paired {where}; reproduced unless standard DPO "
                 f"is clearly better; errors {', '.join(f'{k} {v:.3f}' for k, v in errs.items())}: edit-distance "
                 f"DPO {'lies' if between else 'does not lie'} between standard and per-step DPO", n=n_test,
            edit_between=between))

    sft_k, step_k = outcomes(evals, "sft", pass_k), outcomes(evals, "dpo_step", pass_k)
    if size in sft_k and size in step_k:
        gain = stats.diff_ci(step_k[size], sft_k[size], paired=True, n_boot=sp.n_boot, seed=seed)
        claims.append(claim("ST-7", gain, stats.verdict(gain, "greater", 0.0), unit=f"pass@{pass_k} difference",
                            what=f"pass@{pass_k}(per-step DPO) - pass@{pass_k}(SFT) at n={size}, paired {where}",
                            n=n_test))
    measured = {c["claim"] for c in claims}
    nothing = stats.Interval(math.nan, math.nan, math.nan)
    for claim_id, needs in (("ST-3", "RFT at two or more sizes of the upper half of the ladder"),
                            ("ST-5", f"SFT and standard DPO at n={size}"),
                            ("ST-7", f"pass@{pass_k} of SFT and per-step DPO at n={size}")):
        if claim_id not in measured:
            claims.append(claim(claim_id, nothing, "inconclusive", unit="", n=n_test,
                                what=f"not measured: needs {needs}"))
    return {"fits": fits, "multipliers": list(multipliers.values()), "claims": claims}
