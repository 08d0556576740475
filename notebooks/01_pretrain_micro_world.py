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
# # 01 Pretrain the micro world: a student base and a teacher, from scratch on CPU
#
# The micro scale's stand-ins for a pretrained student (Qwen2.5-1.5B) and a more capable
# teacher: small Llama-architecture transformers trained on generated arithmetic word problems
# (the design and its reasons are in the README, *The micro world*). Every later step loads them
# through the same `load_model` as a hub checkpoint. Cached by params hash: a rerun is instant.
#
# Run: `cotrepro run notebooks/01_pretrain_micro_world.ipynb -f params/micro/01_pretrain_micro_world.yaml`

# %% tags=["parameters"]
params_file = "params/micro/01_pretrain_micro_world.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
import pandas as pd

from cotrepro.config import load_experiment
from cotrepro.micro import pretrain_micro
from cotrepro.plots import micro_world
from cotrepro.report import figures_dir
from cotrepro.store import RunDir
from cotrepro.world import micro_root

P = load_experiment(params_file)
run = RunDir.open(P.experiment, P, root=run_root, seeds=[P.micro.seed])
P.micro

# %% [markdown]
# Train the student base, then the teacher (or reuse the cached pair).

# %%
paths = pretrain_micro(P.micro, out_root=micro_root(run_root))
run.write_json("micro_world.json", paths)
paths

# %% [markdown]
# Held-out greedy accuracy: the student should do single steps but not chain them; the teacher
# should be right often, not always, so that both correct (G) and wrong (W) traces exist.

# %%
pd.read_json(paths["report"]).T

# %%
micro_world(run, figures_dir(P.scale))
