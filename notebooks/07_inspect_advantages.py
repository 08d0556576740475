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
sfts = step.sft_models(run)
print(f"inspecting step 06's SFT models at n={P.size}, seeds {', '.join(map(str, sfts))}")

# %% [markdown]
# Each SFT model samples training problems; the traces to value are chosen (probes get an idle step).

# %%
task = specs.get_task(P.task)
problems, samples = step.sample(run, sfts)
items = {seed: step.trace_items(samples[seed], problems, P, task, seed=seed) for seed in sfts}
pd.DataFrame([(seed, i["kind"]) for seed, its in items.items() for i in its], columns=["seed", "kind"]).value_counts()

# %% [markdown]
# Exhaustive step values (the bare prompt valued too, so the first step has an advantage).

# %%
records = step.value(run, sfts, items)
rows = [row for seed in sfts for row in step.step_rows(items[seed], records[seed], task.extract, seed=seed)]
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
