# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 Sample teacher traces: G, W and the matched H / G / W sets (SoT-6, SoT-7)
#
# The teacher writes several traces per training problem. Each is graded, and each of its steps
# is checked: valid when its arithmetic is true AND its operands are numbers of the question or
# earlier results. G traces end correct, W traces end wrong; H is the human solution, S the gold
# in the student's own step-by-step style (the style control of step 04). Only problems with an
# H, a G and a W are kept, one of each, so the sets differ only in the trace. SoT-6 asks whether
# most steps of W traces are valid; SoT-7 whether G traces hold invalid steps more often than
# wrong paths landing on the gold by chance would explain.
#
# Run: `cotrepro run notebooks/02_sample_teacher_traces.ipynb -f params/micro/02_sample_teacher_traces.yaml`

# %% tags=["parameters"]
params_file = "params/micro/02_sample_teacher_traces.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import plots, specs
from cotrepro.conditions import best_constant, write_sets
from cotrepro.experiments import sample_teacher_traces as step
from cotrepro.pipeline import open_step

run = open_step(params_file, run_root, step="sample_teacher_traces")
P = run.params
task = specs.get_task(P.task)
problems = specs.train_problems(P.task, P.data)
print(f"{len(problems)} training problems, {P.sampling.k} samples each from {P.teacher.name}")

# %% [markdown]
# The teacher samples; every trace is graded and its steps checked (stored as they finish).

# %%
graded = step.sample_traces(P, problems, store=run.path / "teacher_samples.jsonl", root=run.root)
pd.DataFrame(graded)[["problem_id", "correct", "parsed", "n_claims", "n_false", "n_invalid"]].describe()

# %% [markdown]
# The matched sets: one H, G, W (and S) per problem that has all three.

# %%
sets = step.build_sets(task, problems, graded, P.task.template, P.max_sets)
step.check_sets(P, graded, sets)
write_sets(run.path, sets)
{name: len(examples) for name, examples in sets.items()}

# %% [markdown]
# SoT-6 and SoT-7 by their tests (`cotrepro/claims.yaml`).

# %%
chance = best_constant(task, problems)
claims = [step.sot6_claim(graded, P.n_boot), step.sot7_claim(graded, chance, P.n_boot)]
run.dir.write_json("graded.json", graded)
run.dir.write_json("summary.json", step.summary(graded, sets, chance))
run.dir.write_json("claims.json", claims)
pd.DataFrame(claims)[["claim", "verdict", "effect", "ci", "what"]]

# %% [markdown]
# One G and one W trace of the first matched problem, beside its human solution.

# %%
for name in ("H", "G", "W"):
    print(f"--- {name}\n{sets[name][0]['completion'].strip()}")

# %%
plots.show(plots.write_step(run))
