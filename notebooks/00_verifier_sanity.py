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
# # 00 Verifier sanity: every gold solution should grade correct
#
# Grades the gold solution of every item of every local benchmark copy (GSM8K, MATH, MATH500,
# Countdown, MBPP) with the package's own verifiers and writes `figures/verifier_sanity.md`.
# A verifier that fails gold solutions would depress every accuracy downstream.
#
# Run: `cotrepro run notebooks/00_verifier_sanity.ipynb -f params/micro/00_verifier_sanity.yaml`

# %% tags=["parameters"]
params_file = "params/micro/00_verifier_sanity.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
import pandas as pd

from cotrepro.config import load_experiment
from cotrepro.report import figures_dir
from cotrepro.plots import verifier_sanity
from cotrepro.sanity import sanity_rows
from cotrepro.store import RunDir

P = load_experiment(params_file)
run = RunDir.open(P.experiment, P, root=run_root, seeds=[P.seed])
P.sanity

# %% [markdown]
# Grade every gold solution (MBPP programs run in the contained code runner).

# %%
rows, failures = sanity_rows(P.sanity.datasets, P.data_dir(), limit=P.sanity.limit, workers=P.workers,
                             item_timeout_s=P.sanity.item_timeout_s,
                             program_timeout_s=P.sanity.program_timeout_s,
                             allow_code_execution=P.allow_code_execution)
run.write_json("sanity.json", {"rows": rows, "failures": failures})

# %% [markdown]
# Pass rates per dataset and split. `no_gold` counts Countdown puzzles that have no solution.

# %%
pd.DataFrame(rows)

# %% [markdown]
# The items whose gold solution did not grade correct, with what the verifier read.

# %%
pd.DataFrame(failures)

# %%
verifier_sanity(run, figures_dir(P.scale))
