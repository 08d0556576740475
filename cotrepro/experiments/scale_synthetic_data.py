"""Step 06: test error against the amount of synthetic data, for SFT, RFT and per-step DPO
(Setlur et al. 2024; claims ST-1, ST-2, ST-3, ST-4, ST-5, ST-7).

The recipe, in the order the notebook runs it (each stage is stored, so a killed run resumes):

1. `teacher_positives`: the teacher samples a pool of training problems; the first correct sample
   of each problem is its positive, and the first n problems with one form the n-problem set
   (the sets are nested).
2. `sft_models`: the student fine-tuned on each ladder size, with each seed. Every rung trains
   for the same number of EPOCHS, so a rung's data, not its compute, is what varies.
3. `self_samples`: the SFT model of (n, seed) samples its own training problems.
4. `rft_models`: RFT = the SFT data plus the SFT model's distinct correct samples (capped per
   problem), trained from the base as SFT was; for ST-3, RFT from the first 1, 4, 16 samples.
5. `negative_values`: up to `negatives_per_problem` distinct wrong samples per problem get
   best-of-5 Monte Carlo step values under their SFT model (`stepvalues.value_traces`).
6. `dpo_pairs`: per-step pairs (a correct trace against a negative cut after its critical step),
   and at the compare size standard (random) and edit-distance pairs on the same negatives.
7. `dpo_models`: DPO from the SFT model, which is also the reference.
8. `evaluations`: every model greedily on the same test problems; pass@k (unbiased, from several
   samples) of SFT and per-step DPO at the compare size.

Claims (tests in `cotrepro/claims.yaml`; two-level bootstraps over seeds, then test problems):
ST-1 SFT's exponent; ST-2/ST-4 multipliers read off SFT's MEASURED curve inside the ladder; ST-3
more self-generated positives at a fixed problem set; ST-5 standard DPO against SFT; ST-7 pass@k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from cotrepro import claims, jobs, multipliers, pairs, specs, stats, train, verdicts
from cotrepro.conditions import (dpo_job, evaluation_job, finetune_job, matrix, run_batch, sampling_job,
                                 stepvalue_job)
from cotrepro.params import Invalid, param
from cotrepro.sections import (ComputeSection, DataSection, DPOSection, EvalSection, FinetuneSection, ModelSpec,
                               PassAtK, SamplingParams, StepValueParams, TaskSection)
from cotrepro.steps import Cost, Degenerate


@dataclass(frozen=True, kw_only=True)
class LadderSection:
    """The data ladder and the sampling of Setlur et al.'s three methods."""

    sizes: tuple[int, ...] = param((64, 128, 256, 512, 1024), "synthetic training problems per rung (nested)", ge=1)
    compare_size: int = param(64, "rung where RFT and per-step DPO are read against SFT's curve: the ladder must "
                                  "reach 8x above it, so the claimed 8x is read inside", ge=1)
    pool_factor: float = param(1.5, "training problems offered to the teacher, per problem of the largest rung", ge=1.0)
    teacher: SamplingParams = param(default_factory=lambda: SamplingParams(k=4, temperature=0.7),
                                    help="the teacher's samples (its first correct one is a problem's positive)")
    self_sampling: SamplingParams = param(default_factory=lambda: SamplingParams(k=16, temperature=1.0),
                                          help="the SFT model's samples of its own problems: RFT positives and DPO "
                                               "negatives")
    rft_cap: int = param(4, "self-generated positives kept per problem (distinct texts)", ge=1)
    rft_sizes: tuple[int, ...] = param((64, 128, 256), "rungs where RFT runs", ge=1)
    dpo_sizes: tuple[int, ...] = param((64, 128), "rungs where per-step DPO runs", ge=1)
    negatives_per_problem: int = param(8, "distinct wrong samples per problem that get step values (Setlur: 8)", ge=1)
    st3_size: int = param(128, "rung of the ST-3 test (RFT with more and more self-generated positives)", ge=1)
    st3_samples: tuple[int, ...] = param((1, 4, 16), "self-samples per problem whose correct ones RFT adds (ST-3)", ge=1)

    def check(self) -> None:
        if list(self.sizes) != sorted(set(self.sizes)) or len(self.sizes) < 3:
            raise Invalid("sizes", f"must be at least three increasing sizes, got {list(self.sizes)}")
        for name, values in (("compare_size", (self.compare_size,)), ("rft_sizes", self.rft_sizes),
                             ("dpo_sizes", self.dpo_sizes), ("st3_size", (self.st3_size,))):
            off = [v for v in values if v not in self.sizes]
            if off:
                raise Invalid(name, f"{off} not on the ladder {list(self.sizes)}")
        if self.compare_size not in self.rft_sizes or self.compare_size not in self.dpo_sizes:
            raise Invalid("compare_size", "RFT and per-step DPO must both run at the compare size")
        if max(self.sizes) < 8 * self.compare_size:
            raise Invalid("sizes", f"the ladder ends at {max(self.sizes)}, below 8 x compare_size = "
                                   f"{8 * self.compare_size}: the claimed 8x could only be extrapolated")
        if max(self.st3_samples) > self.self_sampling.k:
            raise Invalid("st3_samples", f"{max(self.st3_samples)} exceeds self_sampling.k = {self.self_sampling.k}")


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 06: the ladder, the models, the methods and their evaluation."""

    scale: Literal["micro", "smoke", "paper"] = param(help="micro, smoke or paper")
    data: DataSection = param(default_factory=DataSection, help="where the benchmarks are")
    task: TaskSection = param(default_factory=TaskSection, help="training pool and test problems")
    student: ModelSpec = param(help="the base model")
    teacher: ModelSpec = param(help="the capable model whose positives are the synthetic data")
    finetune: FinetuneSection = param(default_factory=FinetuneSection, help="SFT and RFT")
    dpo: DPOSection = param(default_factory=DPOSection, help="DPO from the SFT model")
    ladder: LadderSection = param(default_factory=LadderSection, help="the data ladder and the sampling")
    stepvalues: StepValueParams = param(default_factory=StepValueParams, help="Monte Carlo step values")
    eval: EvalSection = param(default_factory=EvalSection, help="greedy evaluation")
    pass_at_k: PassAtK = param(default_factory=PassAtK, help="sampled evaluation of SFT and per-step DPO (ST-7)")
    seeds: tuple[int, ...] = param((0, 1, 2), "training seeds of every model", ge=0)
    n_boot: int = param(2000, "bootstrap resamples", ge=100)
    compute: ComputeSection = param(default_factory=ComputeSection, help="parallel jobs and threads")


# 1-2: teacher positives and SFT


def teacher_positives(run) -> list[dict]:
    """SFT examples {prompt, completion, problem_id, problem}: the teacher's first correct sample
    of each pool problem that has one, in pool order (the first n form the n-problem set)."""
    P = run.params
    task = specs.get_task(P.task)
    pool = specs.problems(P.task, P.data, P.task.train_split, math.ceil(max(P.ladder.sizes) * P.ladder.pool_factor))
    samples = _samples(run, {"teacher": (specs.spec_ref(P.teacher), pool)}, P.ladder.teacher, "teacher samples")["teacher"]
    first = {}
    for s in samples:
        if s["correct"]:
            first.setdefault(s["problem_id"], s["completion"])
    positives = [{"prompt": task.prompt(p, P.task.template), "completion": first[p.id], "problem_id": p.id,
                  "problem": p.to_record()} for p in pool if p.id in first]
    if len(positives) < max(P.ladder.sizes):
        raise Degenerate(f"the teacher solved {len(positives)} of {len(pool)} pool problems, fewer than the largest "
                         f"rung {max(P.ladder.sizes)}: raise ladder.pool_factor or ladder.teacher.k")
    return positives


def _samples(run, wanted: dict, sampling, label: str) -> dict:
    """{key: graded samples} of {key: (model reference, problems)}: one stored job each, run in
    parallel; the task's stop strings are added to `sampling`, whose seed is the key's seed."""
    P = run.params
    sampling = specs.with_task_stops(sampling, P.task)
    batch = {key: sampling_job(model, P.task, problems,
                               replace(sampling, seed=key[-1] if isinstance(key, tuple) else sampling.seed),
                               f"{label} {key}")
             for key, (model, problems) in wanted.items()}
    return run_batch(batch, run.root, P.compute, label, "samples.json")


def sft_models(run, positives: list[dict]) -> dict[tuple[int, int], jobs.Job]:
    """{(n, seed): fine-tune job} of SFT on the first n positives, every rung and seed (trained)."""
    P = run.params
    base = specs.spec_ref(P.student)
    models = {(n, s): finetune_job(base, positives[:n], P.finetune, s, f"sft n={n} s={s}")
              for n in P.ladder.sizes for s in P.seeds}
    return run_batch(models, run.root, P.compute, "SFT")


# 3-4: self-samples and RFT


def self_samples(run, positives: list[dict], sft: Mapping[tuple[int, int], jobs.Job]) -> dict:
    """{(n, seed): graded samples in sampling order} of the SFT model of (n, seed) on its own n
    problems, at every rung where RFT or DPO needs them."""
    P = run.params
    sizes = sorted(set(P.ladder.rft_sizes) | set(P.ladder.dpo_sizes) | {P.ladder.st3_size})
    wanted = {(n, s): (specs.finetune_ref(sft[(n, s)].key), [e["problem"] for e in positives[:n]])
              for n in sizes for s in P.seeds}
    return _samples(run, wanted, P.ladder.self_sampling, "self-samples")


def rft_models(run, positives: list[dict], samples: Mapping) -> dict[tuple, jobs.Job]:
    """{("rft", n, seed): job} at every RFT rung, and {("rft_first", k, seed): job} for ST-3."""
    P, L = run.params, run.params.ladder
    base = specs.spec_ref(P.student)
    models = {("rft", n, s): finetune_job(base, train.rft_data(positives, samples[(n, s)], n, L.rft_cap), P.finetune, s,
                                          f"rft n={n} s={s}") for n in L.rft_sizes for s in P.seeds}
    models.update({("rft_first", k, s): finetune_job(
        base, train.rft_data(positives, samples[(L.st3_size, s)], L.st3_size, cap=k, first=k), P.finetune, s,
        f"rft first {k} n={L.st3_size} s={s}") for k in L.st3_samples for s in P.seeds})
    return run_batch(models, run.root, P.compute, "RFT")


# 5-7: step values, pairs, DPO


def negative_values(run, positives: list[dict], sft: Mapping, samples: Mapping) -> dict[tuple[int, int], list[dict]]:
    """{(n, seed): [step-value record]} of the negatives of every DPO rung, under the SFT model."""
    P = run.params
    by_id = {e["problem_id"]: e for e in positives}
    batch, steps = {}, specs.get_task(P.task).steps
    for n in P.ladder.dpo_sizes:
        for s in P.seeds:
            wrong = pairs.negatives(samples[(n, s)], P.ladder.negatives_per_problem, steps)
            items = [{"problem": by_id[pid]["problem"], "prompt": by_id[pid]["prompt"], "trace": trace}
                     for pid, traces in sorted(wrong.items()) for trace in traces]
            batch[(n, s)] = stepvalue_job(specs.finetune_ref(sft[(n, s)].key), P.task, items, P.stepvalues, seed=s,
                                          stop=specs.stop_strings(P.task), label=f"step values n={n} s={s}")
    return run_batch(batch, run.root, P.compute, "step values", "values.json")


def dpo_pairs(run, positives: list[dict], samples: Mapping, values: Mapping) -> dict[tuple, list[dict]]:
    """{(method, n, seed): pairs}: per-step pairs at every DPO rung; standard and edit-distance
    pairs at the compare size, on the same negatives."""
    from cotrepro.stepvalues import from_record

    P = run.params
    task = specs.get_task(P.task)
    out = {}
    for (n, s), records in values.items():
        prompts = {e["problem_id"]: e["prompt"] for e in positives[:n]}
        correct = {e["problem_id"]: [e["completion"]] + [x["completion"] for x in samples[(n, s)]
                                                         if x["problem_id"] == e["problem_id"] and x["correct"]]
                   for e in positives[:n]}
        by_problem: dict[str, list] = {}
        for r in records:
            by_problem.setdefault(r["problem_id"], []).append(from_record(r, r["trace"]))
        out[("dpo_step", n, s)] = pairs.per_step_pairs(prompts, correct, by_problem, seed=s)
        if n == P.ladder.compare_size:
            wrong = pairs.negatives(samples[(n, s)], P.ladder.negatives_per_problem, task.steps)
            out[("dpo_random", n, s)] = pairs.random_pairs(prompts, correct, wrong, seed=s)
            out[("dpo_edit", n, s)] = pairs.edit_distance_pairs(prompts, correct, wrong, task.steps, seed=s)
    return out


def dpo_models(run, sft: Mapping, all_pairs: Mapping) -> dict[tuple, jobs.Job]:
    """{(method, n, seed): DPO job}, each from the SFT model of (n, seed) (also its reference)."""
    P = run.params
    models = {}
    for (method, n, s), data in all_pairs.items():
        if not data:
            raise Degenerate(f"{method} at n={n}, seed {s}: no pairs (the SFT model made no wrong sample with steps): "
                             f"raise ladder.self_sampling.k")
        models[(method, n, s)] = dpo_job(specs.finetune_ref(sft[(n, s)].key), data, P.dpo, s, f"{method} n={n} s={s}")
    return run_batch(models, run.root, P.compute, "DPO")


# 8: evaluation


def model_name(key: tuple) -> str:
    """("sft", 64, 0) -> "sft/n64/s0"; ("rft_first", 4, 0) -> "rft_first4/s0"."""
    method, n, s = key
    return f"rft_first{n}/s{s}" if method == "rft_first" else f"{method}/n{n}/s{s}"


def evaluations(run, models: Mapping[tuple, jobs.Job]) -> dict[str, dict]:
    """{model name: outcomes} of every model greedily, and pass@k samples of SFT and per-step DPO
    at the compare size (names suffixed "@k")."""
    P = run.params
    greedy = {model_name(key): evaluation_job(specs.finetune_ref(job.key), P.task, P.data, P.eval, label=model_name(key))
              for key, job in models.items()}
    greedy["base"] = evaluation_job(specs.spec_ref(P.student), P.task, P.data, P.eval, label="base")
    k = P.pass_at_k
    sampled = {f"{model_name(key)}@k": evaluation_job(specs.finetune_ref(job.key), P.task, P.data, P.eval,
                                                      samples=k.samples, temperature=k.temperature, seed=key[2],
                                                      label=f"{model_name(key)} pass@{k.k}")
               for key, job in models.items() if key[0] in ("sft", "dpo_step") and key[1] == P.ladder.compare_size}
    sampled["base@k"] = evaluation_job(specs.spec_ref(P.student), P.task, P.data, P.eval, samples=k.samples,
                                       temperature=k.temperature, label=f"base pass@{k.k}")
    return run_batch({**greedy, **sampled}, run.root, P.compute, "evaluations", "outcomes.json")


def curve(evals: Mapping[str, dict], method: str, sizes, seeds, k: int | None = None) -> dict[int, np.ndarray]:
    """{n: (seeds, problems) scores} of `method` at the given rungs."""
    suffix = "@k" if k else ""
    return {n: matrix([evals[f"{method}/n{n}/s{s}{suffix}"] for s in seeds], k) for n in sizes}


# Claims


def _context(evals: Mapping[str, dict], P: Params, chance: float) -> dict:
    return {"n_test": evals["base"]["summary"]["n"], "seeds": len(P.seeds), "chance": chance,
            "base": 1 - evals["base"]["summary"]["accuracy"]}


def st1_claim(evals, P: Params, chance_error: float, seed: int = 0) -> dict:
    """ST-1: the exponent b of SFT's error = a n^-b over the ladder: above 0 and below max_b."""
    max_b = claims.test("ST-1")["max_b"]
    sft = curve(evals, "sft", P.ladder.sizes, P.seeds)
    b = multipliers.exponent_ci(sft, n_boot=P.n_boot, seed=seed)
    errors = [1 - m.mean() for m in sft.values()]
    fit = multipliers.power_law_fit_check(list(sft), errors)
    verdict = verdicts.both(verdicts.verdict(b, "greater", 0.0), verdicts.verdict(b, "less", max_b))
    return claims.measured(
        "ST-1", b, verdict, unit="power-law exponent b", **_context(evals, P, chance_error),
        what=f"SFT test error = {fit['a']:.3g} n^-b over n = {list(sft)} (errors "
             f"{', '.join(f'{e:.3f}' for e in errors)}; log-space R^2 {fit['r2']:.2f}), every rung "
             f"{P.finetune.train.epochs:g} epochs, {b.kind}; claimed: 0 < b < {max_b} (falls, shallowly)")


def st2_claim(evals, P: Params, chance_error: float, seed: int = 0) -> dict:
    """ST-2: RFT's multiplier at the compare size: above 1 and consistent with 2 (read inside the
    ladder; a censored end still decides where it can, `MultiplierInterval.decide`)."""
    factor = claims.test("ST-2")["factor"]
    n = P.ladder.compare_size
    sft, m, why, falls = _multiplier(evals, P, "rft", seed)
    return _multiplier_row("ST-2", m, claims.multiplier_verdict(m, factor), falls, **_context(evals, P, chance_error),
                           what=f"RFT on n={n} problems reaches the error SFT reaches on {claims.fmt_multiplier(m)} as "
                                f"many, read off SFT's measured curve n = {list(sft)} (inside it: {m.range_low:g}x to "
                                f"{m.range_high:g}x; 0 and inf mark read-offs below and above it), {m.kind}; {why}; "
                                f"claimed: above 1 and about {factor}x (the interval contains {factor})")


def st4_claim(evals, P: Params, chance_error: float, seed: int = 0) -> dict:
    """ST-4: per-step DPO's multiplier at the compare size: above 1, about 8x, and a lower error
    than RFT's (tested on the errors, so it stays defined when RFT reads beyond the ladder)."""
    t = claims.test("ST-4")
    n = P.ladder.compare_size
    _, m, why, falls = _multiplier(evals, P, "dpo_step", seed)
    step, rft = (curve(evals, method, [n], P.seeds)[n] for method in ("dpo_step", "rft"))
    over_rft = stats.hier_diff_ci(step, rft, n_boot=P.n_boot, seed=seed)  # accuracy(step) - accuracy(RFT)
    verdict = verdicts.both(claims.multiplier_verdict(m, t["factor"], t["min_factor"]),
                            verdicts.verdict(over_rft, "greater", 0.0))
    return _multiplier_row("ST-4", m, verdict, falls, **_context(evals, P, chance_error),
                           accuracy_over_rft=[over_rft.estimate, over_rft.low, over_rft.high],
                           what=f"per-step DPO on n={n} problems reaches the error SFT reaches on "
                                f"{claims.fmt_multiplier(m)} as many (inside the ladder: {m.range_low:g}x to "
                                f"{m.range_high:g}x), {m.kind}; accuracy over RFT at n={n}: {over_rft}; {why}; "
                                f"claimed: above 1, above RFT, and about {t['factor']}x (contains it, or above "
                                f"{t['min_factor']})")


def _multiplier(evals, P: Params, method: str, seed: int):
    """SFT's measured curve, `method`'s iso-error multiplier at the compare size, SFT's gain across
    the ladder as text, and whether that gain is above 0 (ST-2/ST-4 are askable only then)."""
    n = P.ladder.compare_size
    sft = curve(evals, "sft", P.ladder.sizes, P.seeds)
    m = multipliers.bootstrap_multiplier(sft, curve(evals, method, [n], P.seeds)[n], n, n_boot=P.n_boot, seed=seed)
    gain = multipliers.curve_gain(sft, n_boot=P.n_boot, seed=seed)
    why = f"SFT accuracy at n={max(sft)} over n={min(sft)}: {gain}"
    return sft, m, why, verdicts.verdict(gain, "greater", 0.0) == "reproduced"


def _multiplier_row(claim_id: str, m, verdict: str, falls: bool, **context) -> dict:
    """The ST-2/ST-4 row: "not askable" unless SFT's curve falls across the ladder (claims v4)."""
    fields = dict(unit="iso-error multiplier (x SFT problems)", **context, **claims.multiplier_fields(m))
    if not falls:
        return claims.not_askable(claim_id, m, "SFT's curve does not fall across the ladder: no curve to read a "
                                               "multiplier off", **fields)
    return claims.measured(claim_id, m, verdict, **fields)


def st3_claim(evals, P: Params, chance_error: float, seed: int = 0) -> dict:
    """ST-3: the gain from many over few self-generated positives per problem, below the margin."""
    margin = claims.test("ST-3")["margin"]
    ks = sorted(P.ladder.st3_samples)
    few, many = ks[-2], ks[-1]
    m = {k: matrix([evals[f"rft_first{k}/s{s}"] for s in P.seeds]) for k in ks}
    gain = stats.hier_diff_ci(m[many], m[few], n_boot=P.n_boot, seed=seed)  # error(few) - error(many)
    errors = ", ".join(f"{k}: {1 - m[k].mean():.3f}" for k in ks)
    n = P.ladder.st3_size
    learned = stats.hier_diff_ci(curve(evals, "sft", [n], P.seeds)[n], matrix([evals["base"]]), n_boot=P.n_boot, seed=seed)
    context = dict(unit="error difference", **_context(evals, P, chance_error),
                   what=f"error(RFT, correct ones of the first {few} self-samples per problem) - error(first {many}) "
                        f"at n={n} problems (errors by self-samples {errors}), {gain.kind}; SFT at n={n} against the "
                        f"untuned base: accuracy gain {learned}; claimed: below {margin} (more self-generated "
                        f"positives do not help)")
    if verdicts.verdict(learned, "greater", 0.0) != "reproduced":
        return claims.not_askable("ST-3", gain, f"SFT at n={n} does not beat the untuned base: a flat curve there is "
                                                "the floor, not a flattening", **context)
    return claims.measured("ST-3", gain, verdicts.nonsuperiority(gain, margin), **context)


def st5_claim(evals, P: Params, chance_error: float, seed: int = 0) -> dict:
    """ST-5: standard DPO does not beat SFT (non-superiority), askable when per-step DPO does."""
    margin = claims.test("ST-5")["margin"]
    n = P.ladder.compare_size
    get = {m: curve(evals, m, [n], P.seeds)[n] for m in ("sft", "dpo_random", "dpo_edit", "dpo_step")}
    gain = stats.hier_diff_ci(get["dpo_random"], get["sft"], n_boot=P.n_boot, seed=seed)  # err(SFT) - err(std)
    step_gain = stats.hier_diff_ci(get["dpo_step"], get["sft"], n_boot=P.n_boot, seed=seed)
    edit_vs_std = stats.hier_diff_ci(get["dpo_edit"], get["dpo_random"], n_boot=P.n_boot, seed=seed)
    step_vs_edit = stats.hier_diff_ci(get["dpo_step"], get["dpo_edit"], n_boot=P.n_boot, seed=seed)
    errors = ", ".join(f"{k} {1 - v.mean():.3f}" for k, v in get.items())
    context = dict(unit="error difference", **_context(evals, P, chance_error),
                   what=f"error(SFT) - error(standard DPO) at n={n}, {gain.kind} (errors: {errors}); accuracy gains: "
                        f"per-step DPO over SFT {step_gain}, edit over standard {edit_vs_std}, per-step over edit "
                        f"{step_vs_edit}; claimed: below {margin}",
                   step_gain=[step_gain.estimate, step_gain.low, step_gain.high])
    if verdicts.verdict(step_gain, "greater", 0.0) != "reproduced":
        return claims.not_askable("ST-5", gain, "per-step DPO does not beat SFT in this run, so the contrast the "
                                                "claim draws is absent", **context)
    return claims.measured("ST-5", gain, verdicts.nonsuperiority(gain, margin), **context)


def st7_claim(evals, P: Params, chance_pass: float, seed: int = 0) -> dict:
    """ST-7: per-step DPO's pass@k and pass@1 both above SFT's."""
    n, k = P.ladder.compare_size, P.pass_at_k.k
    at_k = {m: curve(evals, m, [n], P.seeds, k=k)[n] for m in ("sft", "dpo_step")}
    at_1 = {m: curve(evals, m, [n], P.seeds)[n] for m in ("sft", "dpo_step")}
    gain_k = stats.hier_diff_ci(at_k["dpo_step"], at_k["sft"], n_boot=P.n_boot, seed=seed)
    gain_1 = stats.hier_diff_ci(at_1["dpo_step"], at_1["sft"], n_boot=P.n_boot, seed=seed)
    return claims.measured(
        "ST-7", gain_k, verdicts.both(verdicts.verdict(gain_k, "greater", 0.0), verdicts.verdict(gain_1, "greater", 0.0)),
        unit=f"pass@{k} difference", **_context(evals, P, chance_pass) | {"base": float(matrix([evals["base@k"]], k).mean())},
        pass1_gain=[gain_1.estimate, gain_1.low, gain_1.high],
        what=f"pass@{k}(per-step DPO) - pass@{k}(SFT) at n={n}, unbiased from {P.pass_at_k.samples} samples at "
             f"T={P.pass_at_k.temperature} (pass@1 gain {gain_1}), {gain_k.kind}; claimed: both above 0")


def cost(P: Params, set_size: int = 0) -> Cost:
    L, seeds = P.ladder, len(P.seeds)
    sampled = sorted(set(L.rft_sizes) | set(L.dpo_sizes) | {L.st3_size})
    tunes = seeds * (len(L.sizes) + len(L.rft_sizes) + len(L.st3_samples) + len(L.dpo_sizes) + 2)
    sft_rft = seeds * (sum(L.sizes) + 3 * sum(L.rft_sizes) + 6 * L.st3_size) * P.finetune.train.epochs
    dpo = seeds * 2 * L.negatives_per_problem * (sum(L.dpo_sizes) + 2 * L.compare_size) * P.dpo.train.epochs
    rollouts = seeds * sum(L.dpo_sizes) * L.negatives_per_problem * 4 * P.stepvalues.rollouts * P.stepvalues.max_new_tokens
    tokens = (seeds * sum(sampled) * L.self_sampling.k * L.self_sampling.max_new_tokens + rollouts // 4
              + (tunes + 1 + (2 * seeds + 1) * P.pass_at_k.samples) * P.task.n_test * P.eval.max_new_tokens)
    return Cost(fine_tunes=tunes, train_examples=int(sft_rft + dpo), generated_tokens=int(tokens),
                teacher_tokens=int(max(L.sizes) * L.pool_factor * L.teacher.k * L.teacher.max_new_tokens),
                notes=("RFT about 3x its SFT data; DPO counts both sides of a pair; rollouts at about 4 prefixes per "
                       "negative, a quarter of the limit each (the cheap strategy stops most early)",))
