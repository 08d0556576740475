"""Step 04: paraphrased human traces (P, SoT-4) and distance to the student (NLL, SoT-3).

P is H rewritten by the paraphraser toward the model's own style (`cotrepro.paraphrase`, which
keeps a rewrite only if its final answer is unchanged). Rejected rewrites drop their problem, so
P covers a subset of H's problems: the fair comparison for SoT-4 is P against H restricted to the
same problems ("H@P"), trained with the same seeds. When nothing was rejected H@P is H itself.

Distance is the per-token NLL of a set's completions under the student base, given the prompts
(`evaluate.completion_nlls`, on the tokens SFT trains on). Intervals resample examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from cotrepro import stats
from cotrepro.evaluate import completion_nlls
from cotrepro.experiments.sot import claim, long_outcomes, paired_difference, per_problem
from cotrepro.experiments.traces import as_completion, not_measured
from cotrepro.generate import SamplingParams
from cotrepro.paraphrase import Paraphrase, paraphrase, rejection_rate
from cotrepro.tasks.base import Problem

H_AT_P = "H@P"  # H restricted to the problems P kept


def paraphrase_set(h_examples: Sequence[dict], problems: Sequence[Problem], task, *, model, tokenizer,
                   sampling: SamplingParams, style: str | None, attempts: int = 1, store=None,
                   model_id: str = "", generate_fn=None) -> tuple[list[dict], list[dict], list[Paraphrase], list[dict]]:
    """(P, H@P, the final paraphrase of every H trace, one summary per attempt).

    Each attempt rewrites the traces that have no kept paraphrase yet, with sampling seed
    `sampling.seed + attempt`; a trace's final paraphrase is its first kept one, else its last.
    `generate_fn` replaces the model (see `cotrepro.paraphrase.paraphrase`).
    """
    by_id = {p.id: p for p in problems}
    missing = [e["problem_id"] for e in h_examples if e["problem_id"] not in by_id]
    if missing:
        raise ValueError(f"paraphrase_set: H example of unknown problem {missing[0]!r}")
    chosen = [by_id[e["problem_id"]] for e in h_examples]
    traces = [e["completion"].strip() for e in h_examples]
    final: list[Paraphrase | None] = [None] * len(h_examples)
    log = []
    for attempt in range(attempts):
        todo = [i for i, r in enumerate(final) if r is None or not r.kept]
        if not todo:
            break
        results = paraphrase([chosen[i] for i in todo], task, traces=[traces[i] for i in todo], model=model,
                             tokenizer=tokenizer, sampling=replace(sampling, seed=sampling.seed + attempt),
                             style=style, store=store, model_id=model_id, generate_fn=generate_fn)
        for i, result in zip(todo, results):
            final[i] = result
        log.append({"attempt": attempt, **rejection_summary(results)})
    p_set = [{**e, "completion": as_completion(e["prompt"], r.text)} for e, r in zip(h_examples, final) if r.kept]
    h_at_p = [e for e, r in zip(h_examples, final) if r.kept]
    return p_set, h_at_p, final, log


def per_example_nll(model, tokenizer, examples: Sequence[dict], batch_size: int = 16) -> list[dict]:
    """{problem_id, nll (summed nats), tokens} per example, under `model`."""
    scored = completion_nlls(model, tokenizer, examples, batch_size=batch_size)
    return [{"problem_id": e["problem_id"], "nll": s, "tokens": n} for e, (s, n) in zip(examples, scored)]


def pooled_nll(scored: Sequence[dict], n_boot: int = 2000, seed: int = 0) -> stats.Interval:
    """Per-token NLL pooled over all completion tokens, with a bootstrap interval over examples."""
    sums = np.array([s["nll"] for s in scored])
    tokens = np.array([s["tokens"] for s in scored], dtype=float)
    if tokens.sum() == 0:
        raise ValueError("pooled_nll: the completions hold no tokens")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    boots = sums[idx].sum(axis=1) / np.maximum(tokens[idx].sum(axis=1), 1)
    low, high = np.quantile(boots, [0.025, 0.975])
    return stats.Interval(float(sums.sum() / tokens.sum()), float(low), float(high))


def distance_claim(scored: dict[str, Sequence[dict]], n_boot: int = 2000, seed: int = 0) -> dict:
    """SoT-3: per-token NLL of H minus that of the synthetic traces (G and W averaged), paired by
    problem (all three sets cover the same problems), bootstrapped over problems."""
    per_token = {name: {s["problem_id"]: s["nll"] / max(s["tokens"], 1) for s in scored[name]}
                 for name in ("H", "G", "W")}
    ids = [pid for pid in per_token["H"] if pid in per_token["G"] and pid in per_token["W"]]
    if not ids:
        raise ValueError("distance_claim: H, G and W share no problem")
    h = [per_token["H"][i] for i in ids]
    synthetic = [(per_token["G"][i] + per_token["W"][i]) / 2 for i in ids]
    interval = stats.diff_ci(h, synthetic, paired=True, n_boot=n_boot, seed=seed)
    return claim("SoT-3", interval, unit="nats per token", n=len(ids),
                 what=f"per-token NLL under the student base of H minus the mean of G and W, per problem "
                      f"({len(ids)} matched training problems, paired bootstrap); claimed: above 0")


def rejection_summary(results: Sequence[Paraphrase]) -> dict:
    """Rejection rate of the paraphraser and how often each reason came up."""
    reasons: dict[str, int] = {}
    for r in results:
        key = r.reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return {"n": len(results), "kept": sum(r.kept for r in results), "rejection_rate": rejection_rate(results),
            "reasons": reasons}


def training_sets(h_examples: Sequence[dict], p_set: list[dict], h_at_p: list[dict],
                  min_paraphrases: int = 1) -> dict[str, list[dict]]:
    """The runs step 04 adds: P, and H@P unless it is H itself (then step 03's H runs are H@P);
    none when fewer than `min_paraphrases` rewrites were kept."""
    if len(p_set) < max(min_paraphrases, 1):
        return {}
    return {"P": p_set} if len(h_at_p) == len(h_examples) else {"P": p_set, H_AT_P: h_at_p}


def baseline_of_p(conditions: Sequence[str]) -> str:
    """What P is compared with: H@P when P dropped problems, else H."""
    return H_AT_P if H_AT_P in conditions else "H"


def paraphrase_claim(records: Sequence[dict], rejected: float, n_kept: int, min_paraphrases: int,
                     n_boot: int = 2000, seed: int = 0) -> dict:
    """SoT-4: accuracy(P) - accuracy(H on the same problems), paired over test problems."""
    conditions = {r["condition"] for r in records}
    if "P" not in conditions:
        return not_measured("SoT-4", "accuracy", f"the paraphraser kept {n_kept} answer-preserving rewrite(s), "
                                                 f"fewer than sot.min_paraphrases={min_paraphrases}")
    base = baseline_of_p(conditions)
    n_seeds = len({r["seed"] for r in records if r["condition"] == "P"})
    n_test = len(per_problem(records, "P")[0])
    return claim("SoT-4", paired_difference(records, "P", base, n_boot, seed), unit="accuracy", n=n_test,
                 what=f"accuracy(P) - accuracy({base}): H paraphrased vs H on the same {n_kept} training problems "
                      f"({rejected:.0%} of H traces got no answer-preserving rewrite), greedy accuracy on {n_test} "
                      f"test problems, mean over {n_seeds} seed(s), paired bootstrap; claimed: above 0")


def points(scored: dict[str, Sequence[dict]], records: Sequence[dict], n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """One row per training set: pooled per-token NLL and downstream accuracy, each with a 95% CI
    (accuracy over seeds x test problems; None for a set that was not trained on)."""
    outcomes = long_outcomes(records)
    rows = []
    for name, scores in scored.items():
        nll = pooled_nll(scores, n_boot, seed)
        correct = [o["correct"] for o in outcomes if o["condition"] == name]
        acc = stats.bootstrap_ci(correct, n_boot=n_boot, seed=seed) if correct else None
        rows.append({"set": name, "n_examples": len(scores), "nll": nll.estimate, "nll_low": nll.low,
                     "nll_high": nll.high, "accuracy": acc.estimate if acc else None,
                     "acc_low": acc.low if acc else None, "acc_high": acc.high if acc else None})
    return rows
