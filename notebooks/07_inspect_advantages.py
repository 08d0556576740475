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
# # 07 Inspect advantages: what low Monte Carlo step advantages flag
#
# Reproduces Setlur et al. (2024), section 6: the distribution of step advantages
# A_i = Q_i - Q_(i-1) under the SFT model of step 06, where the critical step of a wrong trace
# falls, and whether a low advantage flags idle ("spurious") steps inside correct traces: steps
# whose arithmetic is true but whose result is never used (claim ST-6). Besides the idle steps the
# SFT model writes itself, probe traces carry one inserted idle step. Definitions in
# `cotrepro/experiments/advantages.py`. Needs step 06 (its SFT model is trained here if missing).
#
# Run: `cotrepro run notebooks/07_inspect_advantages.ipynb -f params/micro/07_inspect_advantages.yaml`

# %% tags=["parameters"]
params_file = "params/micro/07_inspect_advantages.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
import pandas as pd

from cotrepro import world
from cotrepro.config import load_experiment
from cotrepro.experiments.advantages import critical_positions, st6_claim, step_rows, trace_items, value_traces
from cotrepro.experiments.scaling import ScalingRun
from cotrepro.generate import sample
from cotrepro.params import step_params_file
from cotrepro.pipeline import step_run_dir
from cotrepro.plots_setlur import inspect_advantages
from cotrepro.report import figures_dir
from cotrepro.store import RunDir

P = load_experiment(params_file)
run = RunDir.open(P.experiment, P, root=run_root, seeds=[P.seed])
ap = P.advantages
scaling_file = step_params_file(params_file, ap.scaling_from, "advantages.scaling_from")
P06 = load_experiment(scaling_file)
source = ScalingRun(P06, step_run_dir(scaling_file, run_root), run_root)
size, seed = ap.size or P06.scaling.compare_size, P06.scaling.seeds[0]
ap

# %% [markdown]
# The SFT model of step 06 samples traces for training problems.

# %%
model, tokenizer = source.load([source.sft(size, seed)])
model_id = f"sft_n{size}_s{seed}@{source.run.path.name}"
problems = world.problems(P06, P06.task.train_split, ap.n_problems)
prompts = [source.task.prompt(p, source.template) for p in problems]
samples = sample(model, tokenizer, prompts, source.sampling(ap.samples, P06.scaling.self_temperature, P.seed),
                 store=run.jsonl("samples"), model_id=model_id, progress=False)
items = trace_items(source.task, problems, prompts, samples, ap, seed=P.seed)
pd.Series([i["kind"] for i in items]).value_counts()

# %% [markdown]
# Exhaustive step values of every trace (the bare prompt valued too, so every step has an advantage).

# %%
records = value_traces(model, tokenizer, source.task, items, P06.stepvalues,
                       max_new_tokens=P06.sampling.max_new_tokens, stop=source.stop, store=run.jsonl("stepvalues"),
                       rollout_store=run.jsonl("rollouts"), seed=P.seed, batch_size=P06.sampling.batch_size,
                       model_id=model_id)
rows = step_rows(records, source.task.extract)
steps = pd.DataFrame(rows)
steps.groupby(["kind", "idle"], dropna=False)["A"].describe()

# %% [markdown]
# An example probe trace: its steps, values and advantages.

# %%
probe = next((r for r in records if r["kind"] == "probe"), records[0])
pd.DataFrame({"step": probe["steps"], "q": probe["q"], "Q": probe["Q"], "A": probe["advantages"]})

# %% [markdown]
# Where the critical step of a wrong trace falls: the negatives of step 06's per-step DPO (bisection
# search) and the wrong traces valued here (exhaustive).

# %%
critical = {"06 negatives": critical_positions(list(source.run.jsonl("stepvalues"))),
            "07 wrong traces": critical_positions([r for r in records if r["kind"] == "incorrect"])}
{name: pd.Series(values).describe() for name, values in critical.items()}

# %% [markdown]
# ST-6: low advantage among idle steps vs progress steps of correct traces.

# %%
claim = st6_claim(rows, ap.low_advantage, ap.n_boot, seed=P.seed)
run.write_json("step_rows.json", rows)
run.write_json("critical_positions.json", critical)
run.write_json("claims.json", [claim])
claim

# %%
inspect_advantages(run, figures_dir(P.scale))
