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
# # 07 Inspect advantages: what Monte Carlo step advantages flag (ST-6)
#
# Setlur et al. 2024, section 6: the advantage of a step, A_i = Q_i - Q_(i-1), is low for steps
# that are correct but make no progress ("idle", spurious steps), even inside traces whose final
# answer is right. Step 06's SFT model samples training problems; every step of its correct,
# incorrect and probe traces (a correct trace with one inserted idle step) is valued exhaustively.
#
# Run: `cotrepro run notebooks/07_inspect_advantages.ipynb -f params/micro/07_inspect_advantages.yaml`
# (after step 06, whose SFT model it inspects).

# %% tags=["parameters"]
params_file = "params/micro/07_inspect_advantages.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import plots, specs
from cotrepro.experiments import inspect_advantages as step
from cotrepro.pipeline import open_step

run = open_step(params_file, run_root, step="inspect_advantages")
P = run.params
sft = step.sft_model(run)
print(f"inspecting {sft['finetune']} (step 06, n={P.size}, seed {P.model_seed})")

# %% [markdown]
# The SFT model samples training problems; the traces to value are chosen (probes get an idle step).

# %%
problems, samples = step.sample(run, sft)
items = step.trace_items(samples, problems, P, specs.get_task(P.task))
pd.Series([i["kind"] for i in items]).value_counts()

# %% [markdown]
# Exhaustive step values (the bare prompt valued too, so the first step has an advantage).

# %%
records = step.value(run, sft, items)
rows = step.step_rows(items, records, specs.get_task(P.task).extract)
run.dir.write_json("step_rows.json", rows)
pd.DataFrame(rows).groupby(["kind", "idle"], dropna=False).A.describe()

# %% [markdown]
# ST-6 by its test: low-advantage rate of idle steps minus that of progress steps.

# %%
claims = [step.st6_claim(rows, n_boot=P.n_boot)]
run.dir.write_json("claims.json", claims)
pd.DataFrame(claims)[["claim", "verdict", "effect", "ci", "what"]]

# %%
plots.show(plots.write_step(run))
