"""Step 04: how far each training set sits from the student, and paraphrased human traces (SoT-3, SoT-4).

Distance (SoT-3): the per-token negative log-likelihood of each set's completions under the
untuned student, on exactly the tokens SFT trains on (`evaluate.completion_nlls`), per matched
problem. The claim is NLL(H) > mean(NLL(G), NLL(W)). The style control S (the gold solution
written in the student's own step-by-step style) splits that gap: NLL(H) - NLL(S) is the part due
to style, NLL(S) - NLL(G/W) the part due to content (the gold's steps against the teacher's).

Paraphrase (SoT-4): the paraphraser rewrites every H trace (shown the question and the human
solution; `cotrepro/tasks/prompts/paraphrase.yaml`); a rewrite is kept when its final answer is
unchanged, retrying with other sampling seeds up to `paraphrase.attempts` times. P (the kept
rewrites) and H on the same problems (H@P) fine-tune the student over the step's seeds; the test
is accuracy(P) - accuracy(H@P), askable only when the paraphraser keeps at least the stated share
of rewrites and H learned (`cotrepro/claims.yaml`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from cotrepro import claims, stats, verdicts
from cotrepro.conditions import learned_format, matrix, mean_unparsed
from cotrepro.steps import Cost
from cotrepro.params import param
from cotrepro.sections import (ComputeSection, DataSection, EvalSection, FinetuneSection, ModelSpec,
                               SamplingParams, TaskSection)

H_AT_P = "H@P"


@dataclass(frozen=True, kw_only=True)
class ParaphraseSection:
    """How the paraphraser rewrites the human traces."""

    style: str = param("text", "entry of the paraphrase prompt file (text, code, micro)",
                       choices=("text", "code", "micro"))
    sampling: SamplingParams = param(default_factory=lambda: SamplingParams(temperature=0.7, max_new_tokens=512),
                                     help="the paraphraser's sampling (a rejected rewrite is retried with another seed)")
    attempts: int = param(4, "rewrites tried per trace until one keeps the final answer", ge=1)


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 04: the sets' distance to the student, and P against H."""

    scale: Literal["micro", "smoke", "paper"] = param(help="micro, smoke or paper")
    data: DataSection = param(default_factory=DataSection, help="where the benchmarks are")
    task: TaskSection = param(default_factory=TaskSection, help="the test problems (task.n_test)")
    student: ModelSpec = param(help="the base model: NLLs are measured under it, and it is fine-tuned")
    paraphraser: ModelSpec = param(help="the model that rewrites human traces toward the student")
    paraphrase: ParaphraseSection = param(default_factory=ParaphraseSection, help="the rewriting")
    finetune: FinetuneSection = param(default_factory=FinetuneSection, help="how the student is fine-tuned")
    eval: EvalSection = param(default_factory=EvalSection, help="greedy evaluation")
    traces_from: str = param(help="params file of step 02 (relative to this file's folder)")
    seeds: tuple[int, ...] = param((0, 1, 2, 3, 4), "training seeds of P and H@P", ge=0)
    nll_batch_size: int = param(32, "sequences per forward pass when scoring NLL", ge=1)
    n_boot: int = param(2000, "bootstrap resamples", ge=100)
    compute: ComputeSection = param(default_factory=ComputeSection, help="parallel jobs and threads")


def per_token_nll(model, tokenizer, sets: Mapping[str, list[dict]], batch_size: int) -> dict[str, dict[str, float]]:
    """{set: {problem id: per-token NLL of its completion}} under `model`."""
    from cotrepro.evaluate import completion_nlls

    out = {}
    for name, examples in sets.items():
        nlls = completion_nlls(model, tokenizer, examples, batch_size=batch_size)
        out[name] = {e["problem_id"]: total / max(1, n) for e, (total, n) in zip(examples, nlls)}
    return out


def distance_claim(nll: Mapping[str, Mapping[str, float]], n_boot: int, seed: int = 0) -> dict:
    """SoT-3 with its style control (module docstring); one problem is one resampling unit."""
    ids = [pid for pid in nll["H"] if pid in nll["G"] and pid in nll["W"]]
    h = np.array([nll["H"][i] for i in ids])
    gw = np.array([(nll["G"][i] + nll["W"][i]) / 2 for i in ids])
    gap = stats.bootstrap_ci(h - gw, n_boot=n_boot, seed=seed)
    note = ""
    if "S" in nll:
        s = np.array([nll["S"][i] for i in ids])
        style = stats.bootstrap_ci(h - s, n_boot=n_boot, seed=seed)
        content = stats.bootstrap_ci(s - gw, n_boot=n_boot, seed=seed)
        note = (f"style control S (the gold solution in the student's step-by-step style): style part "
                f"NLL(H) - NLL(S) = {style}; content part NLL(S) - NLL(G/W) = {content} nats/token")
    means = ", ".join(f"{k} {np.mean(list(v.values())):.3f}" for k, v in nll.items())
    return claims.measured(
        "SoT-3", gap, verdicts.verdict(gap, "greater", 0.0), unit="nats per token", n_test=len(ids), seeds=None,
        what=f"per-token NLL(H) - mean(NLL(G), NLL(W)) under the untuned student, {len(ids)} matched training "
             f"problems, {gap.kind} over problems; mean NLL per set: {means}; claimed: above 0", note=note)


def paraphrase_sets(P: Params, problems, h_examples: Sequence[dict], store, root):
    """Rewrite each H trace; returns (P examples, H@P examples, every attempt's record)."""
    from cotrepro import specs
    from cotrepro.paraphrase import paraphrase

    task = specs.get_task(P.task)
    by_id = {p.id: p for p in problems}
    model, tokenizer = specs.load(P.paraphraser, root)
    todo = [e for e in h_examples if e["problem_id"] in by_id]
    kept: dict[str, str] = {}
    attempts = []
    for attempt in range(P.paraphrase.attempts):
        pending = [e for e in todo if e["problem_id"] not in kept]
        if not pending:
            break
        sampling = replace(P.paraphrase.sampling, seed=P.paraphrase.sampling.seed + attempt)
        results = paraphrase([by_id[e["problem_id"]] for e in pending], task,
                             traces=[e["completion"].strip() for e in pending], model=model, tokenizer=tokenizer,
                             sampling=sampling, style=P.paraphrase.style, store=store,
                             model_id=f"paraphraser:{P.paraphraser.name}")
        for e, r in zip(pending, results):
            attempts.append({**r.to_dict(), "attempt": attempt})
            if r.kept:
                kept[e["problem_id"]] = r.text
    p_examples = [{**e, "completion": _as_completion(e["prompt"], kept[e["problem_id"]])}
                  for e in todo if e["problem_id"] in kept]
    h_at_p = [e for e in todo if e["problem_id"] in kept]
    return p_examples, h_at_p, attempts


def _as_completion(prompt: str, trace: str) -> str:
    return trace if not prompt or prompt[-1].isspace() else " " + trace


def share_same_as(p_set: Sequence[dict], control: Sequence[dict]) -> float | None:
    """Share of the kept rewrites that are word for word the control's completion of their
    problem (S: the gold in the student's style). A faithful rewrite of a human solution into the
    micro world's step-by-step style is S, so this says how far P is its own set and how far it is
    the style control (None: no rewrite kept, or no control: a benchmark has no S)."""
    target = {e["problem_id"]: e["completion"].strip() for e in control}
    if not p_set or not target:
        return None
    return sum(e["completion"].strip() == target.get(e["problem_id"]) for e in p_set) / len(p_set)


def keep_rate(attempts: Sequence[dict]) -> float:
    """Share of FIRST rewrites that kept the answer (retries raise coverage, not this rate)."""
    first = [a for a in attempts if a["attempt"] == 0]
    return sum(a["kept"] for a in first) / max(1, len(first))


def train_p_and_h(P: Params, p_set: list[dict], h_at_p: list[dict], root) -> dict[str, list[dict]]:
    """The student fine-tuned on P and on H@P over the step's seeds, and untuned (none), each
    evaluated; nothing when no paraphrase was kept."""
    from cotrepro.conditions import NO_FINE_TUNING, run_conditions

    if not p_set:
        return {}
    return run_conditions({"P": p_set, H_AT_P: h_at_p, NO_FINE_TUNING: None}, P.seeds, student=P.student,
                          finetune=P.finetune, task=P.task, data=P.data, ev=P.eval, compute=P.compute, root=root)


def paraphrase_claim(results: Mapping[str, list[dict]], rate: float, chance: float, n_boot: int,
                     seed: int = 0, same_as_s: float | None = None) -> dict:
    """SoT-4: accuracy(P) - accuracy(H@P), askable when the paraphraser rewrites and H learned.
    `same_as_s` (`share_same_as`) goes into the row's description."""
    t = claims.test("SoT-4")
    if not results:
        return claims.not_measured("SoT-4", f"the paraphraser kept no rewrite (first-attempt keep rate {rate:.0%})",
                                   unit="accuracy difference", chance=chance)
    base = results["none"][0]["summary"]["accuracy"]
    diff = stats.hier_diff_ci(matrix(results["P"]), matrix(results[H_AT_P]), n_boot=n_boot, seed=seed)
    n_test = results["P"][0]["summary"]["n"]
    context = dict(unit="accuracy difference", n_test=n_test, seeds=len(results["P"]), chance=chance, base=base,
                   what=f"accuracy(P) - accuracy(H on the same problems), greedy over {n_test} test problems, "
                        f"{len(results['P'])} seeds, {diff.kind}; the paraphraser kept {rate:.0%} of first "
                        f"rewrites" + ("" if same_as_s is None else f", {same_as_s:.0%} of those kept are word for "
                                       "word S, the gold in the student's style") + "; claimed: above 0")
    unparsed = mean_unparsed(results[H_AT_P])
    if rate < t["min_keep_rate"]:
        return claims.not_askable("SoT-4", diff, f"the paraphraser kept {rate:.0%} of rewrites "
                                                 f"(at least {t['min_keep_rate']:.0%} needed)", **context)
    if not learned_format(results[H_AT_P], t["max_h_unparsed"]):
        return claims.not_askable("SoT-4", diff, f"H's answers are unparsable {unparsed:.0%} of the time after "
                                                 f"fine-tuning (max {t['max_h_unparsed']:.0%})", **context)
    return claims.measured("SoT-4", diff, verdicts.verdict(diff, "greater", 0.0), **context)


def cost(P: Params, set_size: int) -> Cost:
    runs = 2 * len(P.seeds)
    return Cost(fine_tunes=runs, train_examples=int(runs * set_size * P.finetune.train.epochs),
                generated_tokens=(runs + 1) * P.task.n_test * P.eval.max_new_tokens,
                teacher_tokens=P.paraphrase.attempts * set_size * P.paraphrase.sampling.max_new_tokens)
