# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 Paraphrase distance: how far each set sits from the student, and P against H (SoT-3, SoT-4)
#
# SoT-3: synthetic traces (G, W) sit closer to the student's own distribution than human ones
# (H): their per-token NLL under the untuned student is lower. The style control S (the gold
# solution written in the student's step-by-step style) splits the gap into style and content.
# SoT-4: rewriting H with a model toward the student's distribution (P) helps: the student
# fine-tuned on P beats the student fine-tuned on H over the same problems (H@P).
#
# Run: `cotrepro run notebooks/04_paraphrase_distance.ipynb -f params/micro/04_paraphrase_distance.yaml`
# (after step 02).

# %% tags=["parameters"]
params_file = "params/micro/04_paraphrase_distance.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import plots, specs
from cotrepro.conditions import accuracy_summary, best_constant, compact, load_sets
from cotrepro.experiments import paraphrase_distance as step
from cotrepro.pipeline import open_step

run = open_step(params_file, run_root, step="paraphrase_distance")
P = run.params
traces = run.upstream("traces_from")
sets = load_sets(traces.path)
print({name: len(examples) for name, examples in sets.items()})

# %% [markdown]
# Per-token NLL of every set under the untuned student (SoT-3).

# %%
model, tokenizer = specs.load(P.student, run.root)
nll = step.per_token_nll(model, tokenizer, sets, P.nll_batch_size)
run.dir.write_json("nll.json", nll)
pd.DataFrame({name: pd.Series(values) for name, values in nll.items()}).describe().loc[["count", "mean", "std"]]

# %% [markdown]
# Paraphrase every H trace; keep the rewrites whose final answer is unchanged.

# %%
problems = specs.train_problems(traces.params.task, traces.params.data)  # the problems step 02 offered
p_set, h_at_p, attempts = step.paraphrase_sets(P, problems, sets["H"], store=run.path / "paraphrases.jsonl", root=run.root)
rate, same_as_s = step.keep_rate(attempts), step.share_same_as(p_set, sets.get("S", []))
run.dir.write_json("paraphrases.json", {"keep_rate": rate, "kept": len(p_set), "same_as_s": same_as_s,
                                        "attempts": attempts})
nll.update(step.per_token_nll(model, tokenizer, {"P": p_set}, P.nll_batch_size) if p_set else {})
run.dir.write_json("nll.json", nll)
print(f"kept {len(p_set)} of {len(sets['H'])} (first-attempt keep rate {rate:.0%}); "
      f"word for word S: {same_as_s if same_as_s is None else f'{same_as_s:.0%}'}")
pd.DataFrame(attempts[:5])[["problem_id", "kept", "reason", "text"]]

# %% [markdown]
# Fine-tune on P and on H over the same problems, every seed, and evaluate (stored jobs are reused).

# %%
results = step.train_p_and_h(P, p_set, h_at_p, run.root)
run.dir.write_json("outcomes.json", compact(results))
accuracy_summary(results)

# %% [markdown]
# SoT-3 and SoT-4 by their tests.

# %%
chance = best_constant(specs.get_task(P.task), specs.test_problems(P.task, P.data))
claims = [step.distance_claim(nll, P.n_boot), step.paraphrase_claim(results, rate, chance, P.n_boot, same_as_s=same_as_s)]
run.dir.write_json("claims.json", claims)
pd.DataFrame(claims)[["claim", "verdict", "effect", "ci", "what", "note"]]

# %%
plots.show(plots.write_step(run))
