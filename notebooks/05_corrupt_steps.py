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
# # 05 Corrupt steps: accuracy against the share of corrupted steps (SoT-5)
#
# Shape of Thought: models tolerate flawed traces; accuracy falls gradually, not at once, as
# more steps are corrupted. A share of the steps of every G trace is corrupted (the final-answer
# line is not a step), the student is fine-tuned on each corrupted set with each seed, and the
# test asks three things at once: accuracy does fall from clean to fully corrupted (D > 0), less
# than half of that drop has happened at a quarter corrupted (E > 0), and a little corruption
# does not raise accuracy beyond a small margin (R below it). Level 0 is step 03's G.
#
# Run: `cotrepro run notebooks/05_corrupt_steps.ipynb -f params/micro/05_corrupt_steps.yaml`
# (after step 02).

# %% tags=["parameters"]
params_file = "params/micro/05_corrupt_steps.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import plots, specs
from cotrepro.conditions import accuracy_summary, best_constant, compact, load_sets, run_conditions
from cotrepro.experiments import corrupt_steps as step
from cotrepro.pipeline import open_step

run = open_step(params_file, run_root, step="corrupt_steps")
P = run.params
g_set = load_sets(run.upstream("traces_from").path, ["G"])["G"]
print(f"{len(g_set)} G traces; levels {list(P.levels)}; operators {list(P.operators)}; seeds {list(P.seeds)}")

# %% [markdown]
# The corrupted sets (seeded by each trace: every training seed sees the same set).

# %%
sets, design = step.corrupted_sets(g_set, specs.get_task(P.task), P.operators, P.levels, rounding=P.rounding)
run.dir.write_json("design.json", design)
print(sets[step.condition_name(P.operators[0], 0.25)][0]["completion"])
pd.DataFrame(design)

# %% [markdown]
# Fine-tune on every corrupted set with every seed and evaluate (stored jobs are reused).

# %%
results = run_conditions({**sets, "none": None}, P.seeds, student=P.student, finetune=P.finetune, task=P.task,
                         data=P.data, ev=P.eval, compute=P.compute, root=run.root)
run.dir.write_json("outcomes.json", compact(results))
accuracy_summary(results)

# %% [markdown]
# SoT-5 by its test.

# %%
chance = best_constant(specs.get_task(P.task), specs.test_problems(P.task, P.data))
claims = [step.gradual_claim(results, P.operators, chance, results["none"][0]["summary"]["accuracy"], P.n_boot)]
run.dir.write_json("claims.json", claims)
pd.DataFrame(claims)[["claim", "verdict", "effect", "ci", "what"]]

# %%
plots.show(plots.write_step(run))
