"""Step 03: the student fine-tuned on H, G and W, and not at all (claims SoT-1, SoT-2).

Each training set of step 02 (matched: same problems, one trace each) fine-tunes the student base
once per seed (`conditions.run_conditions`); every model is evaluated greedily on the same test
problems, and accuracy is over all of them (an unparsable answer is wrong; the parsed-only
accuracy that the Shape of Thought release reports is shown beside it).

The tests (`cotrepro/claims.yaml`): SoT-1 is accuracy(W) - accuracy(H) above 0; SoT-2 is
accuracy(G) - accuracy(H) above 0 and G non-inferior to W within a stated margin. Both compare
against an H that learned: if H's unparsable rate after fine-tuning exceeds the stated maximum,
the rows say "not askable"; so do they when no fine-tuned condition beats the untuned base
(fine-tuning then damaged every model, and their differences are not what the claims are about).
Intervals are two-level bootstraps over seeds, then test problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cotrepro import claims, stats, verdicts
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
    scope = (f"greedy accuracy over all {ctx['n_test']} test problems, {ctx['seeds']} seeds per condition, "
             f"{w_h.kind}")
    note = condition_note(results)
    rows = []
    sot1 = dict(unit="accuracy difference", what=f"accuracy(W) - accuracy(H), {scope}; claimed: above 0",
                note=note, **ctx)
    sot2 = dict(unit="accuracy difference",
                what=f"accuracy(G) - accuracy(H), {scope}; claimed: above 0, and G - W above -{t2['margin']} "
                     f"(G - W = {g_w})", note=note, g_minus_w=[g_w.estimate, g_w.low, g_w.high], **ctx)
    for claim, test, effect, sot in (("SoT-1", t1, w_h, sot1), ("SoT-2", t2, g_h, sot2)):
        why = unaskable_because(results, ctx["base"], test)
        if why:
            rows.append(claims.not_askable(claim, effect, why, **sot))
        elif claim == "SoT-1":
            rows.append(claims.measured(claim, effect, verdicts.verdict(effect, "greater", 0.0), **sot))
        else:
            verdict = verdicts.both(verdicts.verdict(g_h, "greater", 0.0), verdicts.noninferiority(g_w, test["margin"]))
            rows.append(claims.measured(claim, effect, verdict, **sot))
    return rows


def unaskable_because(results: Mapping[str, list[dict]], base: float | None, test: Mapping) -> str | None:
    """Why SoT-1/2 cannot be asked of these results (None when they can): H did not learn its
    format, or no fine-tuned condition beats the untuned base (every model is then a damaged
    student, and their differences say how they were damaged, not what they learned)."""
    unparsed_h = mean_unparsed(results["H"])
    if not learned_format(results["H"], test["max_h_unparsed"]):
        return (f"H's answers are unparsable {unparsed_h:.0%} of the time after fine-tuning "
                f"(at most {test['max_h_unparsed']:.0%} allowed)")
    if test.get("needs_lift") and base is not None:
        means = {c: sum(r["summary"]["accuracy"] for r in records) / len(records)
                 for c, records in results.items() if c != NO_FINE_TUNING}
        best = max(means, key=means.get)
        if means[best] <= base:
            return (f"no fine-tuned condition beats the untuned base ({base:.1%}; best {best} {means[best]:.1%}): "
                    f"fine-tuning damaged the student in every condition")
    return None


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
