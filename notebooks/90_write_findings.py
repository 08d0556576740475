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
# # 90 Write findings: every figure and table, and FINDINGS.md
#
# Reads the stored results of every step of this scale (trains nothing) and writes every figure
# and table, `FINDINGS.md` and `findings.csv`: one row per claim, with its effect, 95% interval,
# verdict, the untuned base, the chance level, the seeds and test problems behind it, and the
# notebook that measured it. `cotrepro figures --scale SCALE` runs the same code.
#
# Run: `cotrepro run notebooks/90_write_findings.ipynb -f params/micro/90_write_findings.yaml`

# %% tags=["parameters"]
params_file = "params/micro/90_write_findings.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import plots
from cotrepro.pipeline import open_step, stored_results

run = open_step(params_file, run_root, step="write_findings")
stored = stored_results(run.params.scale, run.root)
[r.label for r in stored]

# %%
written = plots.write_all(stored, run.params.scale, run.figures)
pd.read_csv(run.figures / "findings.csv")[["claim", "verdict", "effect", "ci_low", "ci_high", "seeds", "n_test"]]

# %%
plots.show(written)
