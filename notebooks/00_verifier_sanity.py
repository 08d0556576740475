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
params_file = "params/micro/00_verifier_sanity.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import paths, plots
from cotrepro.pipeline import open_step
from cotrepro.sanity import sanity_rows

run = open_step(params_file, run_root, step="verifier_sanity")
P = run.params
P.datasets

# %% [markdown]
# Grade every gold solution (MBPP programs run in the contained code runner).

# %%
rows, failures = sanity_rows(P.datasets, paths.resolve(P.data.data_dir), limit=P.limit, workers=P.workers,
                             item_timeout_s=P.item_timeout_s, program_timeout_s=P.program_timeout_s,
                             allow_code_execution=P.allow_code_execution, progress=False)
run.dir.write_json("sanity.json", {"rows": rows, "failures": failures})
pd.DataFrame(rows)

# %% [markdown]
# The items whose gold solution did not grade correct, with what the verifier read.

# %%
pd.DataFrame(failures)

# %%
plots.show(plots.write_step(run))
