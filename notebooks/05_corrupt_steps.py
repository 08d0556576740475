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
# # 05 Corrupt steps: does accuracy fall gradually with flawed traces? (SoT-5)
#
# Shape of Thought reports that students tolerate flawed traces: accuracy declines gradually, not
# at once, as more steps are corrupted. This step corrupts a share (the level) of the steps of
# every G trace with each operator (`cotrepro.corrupt`: change a number, swap an operator,
# delete a step, or a mix), fine-tunes the student on each corrupted set and evaluates it.
# "Gradual" is one test fixed in advance (`cotrepro/experiments/corruption.py`): the accuracy
# lost from level 0.25 to 1 exceeds the accuracy lost from 0 to 0.25.
#
# Run: `cotrepro run notebooks/05_corrupt_steps.ipynb -f params/micro/05_corrupt_steps.yaml`
# (after steps 02 and 03).

# %% tags=["parameters"]
params_file = "params/micro/05_corrupt_steps.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
from functools import partial

import pandas as pd

from cotrepro import world
from cotrepro.config import load_experiment
from cotrepro.experiments import corruption, sot, traces
from cotrepro.pipeline import step_run_dir
from cotrepro.plots_sot import corrupt_steps
from cotrepro.report import figures_dir
from cotrepro.store import RunDir
from cotrepro.tasks import get_task

P = load_experiment(params_file)
sot.use_threads(P.sot.threads)
run = RunDir.open(P.experiment, P, root=run_root, seeds=list(P.sot.seeds))
traces_file = P.sot.step_file("traces_from", params_file)
results_file = P.sot.step_file("results_from", params_file)
g_examples = traces.load_sets(step_run_dir(traces_file, run_root), ["G"])["G"]
task = get_task(P.task.name)
problems_by_id = {p.id: p for p in world.train_problems(load_experiment(traces_file))}
len(g_examples), P.sot.operators, P.sot.levels, P.sot.seeds

# %% [markdown]
# The corrupted training sets: share of steps hit, and share of traces whose final answer still
# verifies (a corrupted step can change the answer, or leave it).

# %%
corrupted, design = corruption.design(g_examples, task, problems_by_id, P.sot.operators, P.sot.levels, seed=P.seed)
run.write_json("corruption.json", design)
pd.DataFrame(design["sets"])

# %% [markdown]
# One G trace and its corruption by each operator at level 0.5 (or the first level above 0).

# %%
shown = next(lv for lv in P.sot.levels if lv >= 0.5)
pd.DataFrame({name: [examples[0]["completion"]] for name, examples in corrupted.items()
              if name == corruption.CLEAN or name.endswith(f"@{shown:g}")}).T

# %% [markdown]
# Fine-tune and evaluate on every set and seed. Level 0 (G) and no fine-tuning are taken from
# step 03's stored runs when both steps train alike.

# %%
store = run.jsonl("results")
copied = sot.adopt(store, step_run_dir(results_file, run_root).jsonl("results"), P, load_experiment(results_file),
                   [sot.NO_FINE_TUNING, corruption.CLEAN])
records = sot.run_all(store, {sot.NO_FINE_TUNING: None, **corrupted}, P.sot.seeds,
                      load_base=partial(world.load_student, P, run_root), task=task,
                      test_problems=world.test_problems(P), params=P, out_root=run.path / "train")
len(copied), pd.DataFrame(sot.accuracy_rows(records))

# %% [markdown]
# Claim SoT-5 by the test fixed in advance.

# %%
claims = [corruption.gradual_claim(records, P.sot.operators, n_boot=P.sot.n_boot, seed=P.seed)]
run.write_json("claims.json", claims)
pd.DataFrame(claims)

# %%
corrupt_steps(run, figures_dir(P.scale))
