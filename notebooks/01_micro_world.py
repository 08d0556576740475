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
# # 01 The micro world: a student with headroom, a capable teacher, a star-graph model
#
# The micro world plays the part hub checkpoints play at paper scale (see `cotrepro/micro.py`
# for how it is built and why). At micro scale this notebook checks the shipped checkpoints under
# `world/` against their sha256 and measures them as a user would, through the folders and the
# test file that `cotrepro world --json` prints: greedy accuracy with 95% intervals beside the
# chance levels, the per-token NLL of human, style-control and teacher traces under the student,
# and the star-graph models' shortcut. At smoke scale it first rebuilds a small world from
# scratch, so the rebuild path is exercised on every test run.
#
# Run: `cotrepro run notebooks/01_micro_world.ipynb -f params/micro/01_micro_world.yaml`

# %% tags=["parameters"]
params_file = "params/micro/01_micro_world.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import plots, world
from cotrepro.experiments import micro_world as step
from cotrepro.pipeline import open_step

run = open_step(params_file, run_root, step="micro_world")
P = run.params
world_dir = step.world_for(run)
world.describe(world_dir)

# %% [markdown]
# Greedy accuracy of the student and the teacher on the held-out problems, and the chance levels.

# %%
accuracy, chance, problems = step.measure_models(world_dir, P.n_eval, P.max_new_tokens)
pd.DataFrame(accuracy)

# %%
chance

# %% [markdown]
# Are the human traces fair? Every token of each style's solutions should occur in the student's
# pretraining corpus, and the longest solution should fit the evaluation budget.

# %%
tokens = step.measure_tokens(world_dir, P.n_eval, P.max_new_tokens)
pd.DataFrame(tokens)

# %% [markdown]
# Per-token NLL under the student: H (human), S (the gold in the student's style), G and W (teacher).

# %%
nll = step.measure_nll(world_dir, P.nll_problems)
pd.DataFrame(nll)

# %% [markdown]
# The star-graph models: the later steps learned, the first step near 1/degree (the shortcut).

# %%
star = step.measure_star(world_dir, P.n_eval)
run.dir.write_json("measures.json", {"accuracy": accuracy, "chance": chance, "tokens": tokens, "nll": nll,
                                     "stargraph": star, "spread": step.spread_rows(world_dir),
                                     "curves": step.training_curves(world_dir), "manifest": world.manifest(world_dir)})
pd.DataFrame(star)

# %%
plots.show(plots.write_step(run))
