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
# # 03 Train on traces: H vs G vs W (SoT-1, SoT-2)
#
# The Shape of Thought main result: a student fine-tuned on a stronger model's traces beats one
# fine-tuned on human solutions, even when the traces end in a WRONG answer (SoT-1: W > H), and
# when they end right (SoT-2: G > H, G at least as good as W). The student is fine-tuned on each
# matched set of step 02 with each seed and evaluated greedily on the test problems; "none" is
# the untuned student. Accuracy is over all test problems (parsed-only accuracy beside it).
# Fine-tunes run in parallel, one per core, and are stored by content: step 04 and 05 reuse them.
#
# Run: `cotrepro run notebooks/03_train_on_traces.ipynb -f params/micro/03_train_on_traces.yaml`
# (after step 02, whose sets it reads).

# %% tags=["parameters"]
params_file = "params/micro/03_train_on_traces.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import plots, specs
from cotrepro.conditions import accuracy_summary, best_constant, compact, load_sets, run_conditions
from cotrepro.experiments import train_on_traces as step
from cotrepro.pipeline import open_step

run = open_step(params_file, run_root, step="train_on_traces")
P = run.params
sets = load_sets(run.upstream("traces_from").path)
test = specs.test_problems(P.task, P.data)
print(f"sets: {', '.join(f'{k} {len(v)}' for k, v in sets.items())}; {len(test)} test problems; seeds {list(P.seeds)}")

# %% [markdown]
# Fine-tune on every set with every seed, then evaluate every model (stored jobs are reused).

# %%
results = run_conditions(step.training_sets(P, sets), P.seeds, student=P.student, finetune=P.finetune, task=P.task,
                         data=P.data, ev=P.eval, compute=P.compute, root=run.root)
run.dir.write_json("outcomes.json", compact(results))
accuracy_summary(results)

# %% [markdown]
# SoT-1 and SoT-2 by their tests: two-level intervals (seeds, then test problems).

# %%
claims = step.main_claims(results, chance=best_constant(specs.get_task(P.task), test), n_boot=P.n_boot)
run.dir.write_json("claims.json", claims)
pd.DataFrame(claims)[["claim", "verdict", "effect", "ci", "what"]]

# %% [markdown]
# What each condition writes for the first test problem (seed of the first run).

# %%
pd.DataFrame([{"condition": c, "completion": records[0]["completions"][0][0]} for c, records in results.items()])

# %%
plots.show(plots.write_step(run))
