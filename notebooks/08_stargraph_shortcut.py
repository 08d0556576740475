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
# # 08 Star-graph shortcut: do per-step negatives unlearn the Clever Hans shortcut? (ST-8)
#
# Bachmann and Nagarajan 2024: a transformer trained with teacher forcing on star-graph paths
# learns the edge lookup of the later steps and leaves the first step (which arm leads to the
# goal) at chance, 1/degree. The micro world ships such models, one per training seed: they are
# the SFT-on-positives arm. Setlur et al. 2024 claim that per-step DPO on their wrong paths,
# cut at the critical step Monte Carlo values find, helps unlearn the shortcut.
#
# Run: `cotrepro run notebooks/08_stargraph_shortcut.ipynb -f params/micro/08_stargraph_shortcut.yaml`

# %% tags=["parameters"]
params_file = "params/micro/08_stargraph_shortcut.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import plots
from cotrepro.experiments import stargraph_shortcut as step
from cotrepro.pipeline import open_step

run = open_step(params_file, run_root, step="stargraph_shortcut")
P = run.params
refs = step.sft_refs(P)
list(P.models)

# %% [markdown]
# The SFT models sample training graphs; their wrong paths get step values; per-step DPO.

# %%
samples = step.wrong_paths(run, refs)
values = step.negative_values(run, refs, samples)
dpo = step.dpo_models(run, refs, values)
run.dir.write_json("critical_steps.json", {seed: [r["critical_step"] for r in v] for seed, v in values.items()})
pd.DataFrame([{"seed": s, "wrong paths": len(v), "critical step 0": sum(r["critical_step"] == 0 for r in v)}
              for s, v in values.items()])

# %% [markdown]
# Both arms on the test graphs: path accuracy, first step, later steps.

# %%
results = step.evaluate_arms(run, refs, dpo)
degree = step.degree(P)
rows = step.summary_rows(results, degree)
run.dir.write_json("summary.json", {"rows": rows, "outcomes": results})
pd.DataFrame(rows)

# %% [markdown]
# ST-8 by its test.

# %%
claims = [step.st8_claim(results, degree, sum(len(v) for v in values.values()), P.n_boot)]
run.dir.write_json("claims.json", claims)
pd.DataFrame(claims)[["claim", "verdict", "effect", "ci", "what"]]

# %%
plots.show(plots.write_step(run))
