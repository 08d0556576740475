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
# # 90 Findings: every figure, every table, and a verdict per claim
#
# Reads the stored results of every step of this scale, regenerates every figure (PNG and PDF)
# and table (Markdown and CSV) under `figures/`, and writes `figures/FINDINGS.md`: each claim of
# the two papers with the measured effect, its 95% interval and a verdict. Nothing is retrained;
# `cotrepro figures` does the same from the command line.
#
# Run: `cotrepro run notebooks/90_write_findings.ipynb -f params/micro/90_write_findings.yaml`

# %% tags=["parameters"]
params_file = "params/micro/90_write_findings.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
from IPython.display import Markdown

from cotrepro.config import load_experiment
from cotrepro.pipeline import stored_results
from cotrepro.report import figures_dir, write_all

P = load_experiment(params_file)
stored = stored_results(P.scale, run_root)
sorted(stored)

# %% [markdown]
# Regenerate every figure and table from the stored results.

# %%
written = write_all(stored, scale=P.scale)
[str(p) for p in written]

# %% [markdown]
# The findings report.

# %%
Markdown((figures_dir(P.scale) / "FINDINGS.md").read_text())
