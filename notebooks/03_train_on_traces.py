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
# # 03 Train on traces: H vs G vs W (SoT-1, SoT-2)
#
# The Shape of Thought main result: a student fine-tuned on a stronger model's traces beats one
# fine-tuned on human solutions, even when the traces end in a WRONG answer (SoT-1: W > H) and
# when they end in the right one (SoT-2: G > H, G at least as good as W). The student base gets a
# fresh LoRA adapter per training set and seed, and is evaluated greedily on the test problems;
# "no fine-tuning" is the base itself. Accuracy is over all test problems; parsed-only accuracy
# (the paper's denominator) and parse failures are reported beside it. Every (condition, seed)
# run is stored as it finishes, so a killed run resumes.
#
# Run: `cotrepro run notebooks/03_train_on_traces.ipynb -f params/micro/03_train_on_traces.yaml`
# (after step 02, whose sets it reads).

# %% tags=["parameters"]
params_file = "params/micro/03_train_on_traces.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
from functools import partial

import pandas as pd

from cotrepro import world
from cotrepro.config import load_experiment
from cotrepro.experiments import sot, traces
from cotrepro.pipeline import step_run_dir
from cotrepro.plots_sot import accuracy_table, train_on_traces
from cotrepro.report import figures_dir
from cotrepro.store import RunDir
from cotrepro.tasks import get_task

P = load_experiment(params_file)
sot.use_threads(P.sot.threads)
run = RunDir.open(P.experiment, P, root=run_root, seeds=list(P.sot.seeds))
traces_run = step_run_dir(P.sot.step_file("traces_from", params_file), run_root)
sets = traces.load_sets(traces_run)
task = get_task(P.task.name)
test_problems = world.test_problems(P)
{name: len(examples) for name, examples in sets.items()}, len(test_problems), P.sot.seeds

# %% [markdown]
# Fine-tune and evaluate every condition and seed (stored runs are skipped).

# %%
training_sets = {c: (None if c == sot.NO_FINE_TUNING else sets[c]) for c in P.sot.conditions}
records = sot.run_all(run.jsonl("results"), training_sets, P.sot.seeds, load_base=partial(world.load_student, P, run_root),
                      task=task, test_problems=test_problems, params=P, out_root=run.path / "train")
pd.DataFrame(sot.accuracy_rows(records))

# %% [markdown]
# Accuracy per condition: 95% interval over seeds x test problems.

# %%
accuracy_table(records, list(P.sot.conditions), n_boot=P.sot.n_boot)

# %% [markdown]
# Claims SoT-1 (W - H) and SoT-2 (G - H; G - W alongside): paired bootstrap over test problems.

# %%
claims = sot.main_claims(records, n_boot=P.sot.n_boot, seed=P.seed)
run.write_json("claims.json", claims)
pd.DataFrame(claims)

# %% [markdown]
# A few greedy completions of each condition on the first test problem.

# %%
pd.DataFrame([{"run": r["key"], "correct": r["correct"][0], "completion": r["completions"][0]} for r in records])

# %%
train_on_traces(run, figures_dir(P.scale))
