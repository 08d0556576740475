"""Step 03: the student fine-tuned on H, G and W, and not at all (claims SoT-1, SoT-2).

Each training set of step 02 (matched: same problems, one trace each) fine-tunes the student base
once per seed (`conditions.run_conditions`); every model is evaluated greedily on the same test
problems, and accuracy is over all of them (an unparsable answer is wrong; the parsed-only
accuracy that the Shape of Thought release reports is shown beside it).

The tests (`cotrepro/claims.yaml`): SoT-1 is accuracy(W) - accuracy(H) above 0; SoT-2 is
accuracy(G) - accuracy(H) above 0 and G non-inferior to W within a stated margin. Both compare
against an H that learned: if H's unparsable rate after fine-tuning exceeds the stated maximum,
the rows say "not askable". Intervals are two-level bootstraps over seeds, then test problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cotrepro import claims, stats
from cotrepro.conditions import NO_FINE_TUNING, learned_format, matrix, mean_unparsed
from cotrepro.steps import Cost
from cotrepro.params import param
from cotrepro.sections import ComputeSection, DataSection, EvalSection, FinetuneSection, ModelSpec, TaskSection

CONDITIONS = (NO_FINE_TUNING, "H", "G", "W", "S")


@dataclass(frozen=True, kw_only=True)
class Params:
    """Step 03: which sets train the student, with which seeds, and how it is evaluated."""

    scale: Literal["micro", "smoke", "paper"] = param(help="micro, smoke or paper")
    data: DataSection = param(default_factory=DataSection, help="where the benchmarks are")
    task: TaskSection = param(default_factory=TaskSection, help="the test problems (task.n_test)")
    student: ModelSpec = param(help="the base model that is fine-tuned")
    finetune: FinetuneSection = param(default_factory=FinetuneSection, help="how the student is fine-tuned")
    eval: EvalSection = param(default_factory=EvalSection, help="greedy evaluation")
    traces_from: str = param(help="params file of step 02, whose H, G and W sets are trained on (relative to "
                                  "this file's folder)")
    conditions: tuple[str, ...] = param((NO_FINE_TUNING, "H", "G", "W"), "none = the untuned student; H, G, W "
                                        "(and S, the gold in the student's style) = fine-tuned on that set",
                                        choices=CONDITIONS)
    seeds: tuple[int, ...] = param((0, 1, 2, 3, 4), "training seeds of every fine-tuned condition", ge=0)
    n_boot: int = param(2000, "bootstrap resamples", ge=100)
    compute: ComputeSection = param(default_factory=ComputeSection, help="parallel jobs and threads")


def training_sets(P: Params, sets: Mapping[str, list[dict]]) -> dict[str, list[dict] | None]:
    """The training set of each condition (None for the untuned base)."""
    missing = [c for c in P.conditions if c != NO_FINE_TUNING and c not in sets]
    if missing:
        raise ValueError(f"conditions {missing}: step 02 stored no such set (it has {sorted(sets)})")
    return {c: None if c == NO_FINE_TUNING else sets[c] for c in P.conditions}


def context(results: Mapping[str, list[dict]], chance: float) -> dict:
    """The numbers every row of this step carries: the base, chance, seeds and test problems."""
    base = results[NO_FINE_TUNING][0]["summary"]["accuracy"] if NO_FINE_TUNING in results else None
    trained = [c for c in results if c != NO_FINE_TUNING]
    return {"base": base, "chance": chance, "seeds": len(results[trained[0]]) if trained else None,
            "n_test": results[next(iter(results))][0]["summary"]["n"]}


def main_claims(results: Mapping[str, list[dict]], chance: float, n_boot: int, seed: int = 0) -> list[dict]:
    """SoT-1 and SoT-2 by their pre-registered tests (module docstring)."""
    t1, t2 = claims.test("SoT-1"), claims.test("SoT-2")
    ctx = context(results, chance)
    m = {c: matrix(records) for c, records in results.items()}
    w_h = stats.hier_diff_ci(m["W"], m["H"], n_boot=n_boot, seed=seed)
    g_h = stats.hier_diff_ci(m["G"], m["H"], n_boot=n_boot, seed=seed)
    g_w = stats.hier_diff_ci(m["G"], m["W"], n_boot=n_boot, seed=seed)
    unparsed_h = mean_unparsed(results["H"])
    scope = (f"greedy accuracy over all {ctx['n_test']} test problems, {ctx['seeds']} seeds per condition, "
             f"{w_h.kind}")
    note = condition_note(results)
    rows = []
    sot1 = dict(unit="accuracy difference", what=f"accuracy(W) - accuracy(H), {scope}; claimed: above 0",
                note=note, **ctx)
    sot2 = dict(unit="accuracy difference",
                what=f"accuracy(G) - accuracy(H), {scope}; claimed: above 0, and G - W above -{t2['margin']} "
                     f"(G - W = {g_w})", note=note, g_minus_w=[g_w.estimate, g_w.low, g_w.high], **ctx)
    why = f"H's answers are unparsable {unparsed_h:.0%} of the time after fine-tuning (at most {{:.0%}} allowed)"
    if learned_format(results["H"], t1["max_h_unparsed"]):
        rows.append(claims.measured("SoT-1", w_h, stats.verdict(w_h, "greater", 0.0), **sot1))
    else:
        rows.append(claims.not_askable("SoT-1", w_h, why.format(t1["max_h_unparsed"]), **sot1))
    if learned_format(results["H"], t2["max_h_unparsed"]):
        verdict = stats.both(stats.verdict(g_h, "greater", 0.0), stats.noninferiority(g_w, t2["margin"]))
        rows.append(claims.measured("SoT-2", g_h, verdict, **sot2))
    else:
        rows.append(claims.not_askable("SoT-2", g_h, why.format(t2["max_h_unparsed"]), **sot2))
    return rows


def condition_note(results: Mapping[str, list[dict]]) -> str:
    """Each condition's mean accuracy and unparsable share: what a difference alone does not show."""
    parts = []
    for condition, records in results.items():
        accuracy = sum(r["summary"]["accuracy"] for r in records) / len(records)
        parts.append(f"{condition}: accuracy {accuracy:.3f}, unparsed {mean_unparsed(records):.0%}")
    return "mean over seeds: " + "; ".join(parts)


def cost(P: Params, set_size: int) -> Cost:
    """What `cotrepro plan` counts for this step (`set_size`: examples per training set)."""
    tuned = sum(c != NO_FINE_TUNING for c in P.conditions) * len(P.seeds)
    return Cost(fine_tunes=tuned, train_examples=int(tuned * set_size * P.finetune.train.epochs),
                generated_tokens=(tuned + 1) * P.task.n_test * P.eval.max_new_tokens)
