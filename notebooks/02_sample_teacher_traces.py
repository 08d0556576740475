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
# # 02 Sample teacher traces: the H, G and W training sets (SoT-6, SoT-7)
#
# Shape of Thought compares a student fine-tuned on human solutions (H), on a stronger model's
# traces that reach the correct answer (G), and on its traces that reach a wrong answer (W). This
# step samples k traces per training problem from the teacher, grades each (final answer, and the
# truth of every arithmetic step), and builds H, G and W at equal sizes by matching: only problems
# with a G trace, a W trace and a human solution are kept, one example of each per problem (see
# `cotrepro/experiments/traces.py` for why). It measures SoT-6 (W traces are mostly valid steps)
# and SoT-7 (some G traces hold a false step). Steps 03-05 train on the stored sets.
#
# Run: `cotrepro run notebooks/02_sample_teacher_traces.ipynb -f params/micro/02_sample_teacher_traces.yaml`

# %% tags=["parameters"]
params_file = "params/micro/02_sample_teacher_traces.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
import pandas as pd

from cotrepro import world
from cotrepro.config import load_experiment
from cotrepro.experiments import sot, traces
from cotrepro.plots_sot import sample_teacher_traces
from cotrepro.report import figures_dir
from cotrepro.store import RunDir
from cotrepro.tasks import get_task

P = load_experiment(params_file)
sot.use_threads(P.sot.threads)
run = RunDir.open(P.experiment, P, root=run_root, seeds=[P.seed])
task = get_task(P.task.name)
problems = world.train_problems(P)
len(problems), P.models.teacher, P.sampling

# %% [markdown]
# Sample k traces per problem from the teacher (stored as they finish: a rerun resumes) and grade
# each: verifier verdict on the final answer, and every "expr = c" claim checked exactly.

# %%
teacher, tokenizer = world.load_teacher(P, run_root)
graded = traces.sample_traces(teacher, tokenizer, task, problems, template=P.task.template, sampling=P.sampling,
                              store=run.jsonl("teacher_samples"), model_id=P.models.teacher)
run.write_json("graded.json", graded)
run.write_json("per_problem_accuracy.json", traces.per_problem_accuracy(graded).tolist())
pd.DataFrame(graded).drop(columns="completion").describe()

# %% [markdown]
# The equal-size training sets, matched by problem, stored as JSONL of {prompt, completion, problem_id}.

# %%
sets = traces.build_sets(task, problems, graded, P.task.template)
for name, examples in sets.items():
    traces.write_examples(run.path / "sets" / f"{name}.jsonl", examples)
{name: len(examples) for name, examples in sets.items()}

# %% [markdown]
# One problem's three traces, side by side.

# %%
pd.DataFrame({name: [examples[0]["completion"]] for name, examples in sets.items() if examples}).T

# %% [markdown]
# Teacher accuracy, set sizes, and the step-validity measures, each with a 95% interval.

# %%
summary = traces.summary(graded, sets, len(problems), P.sampling.k, n_boot=P.sot.n_boot, seed=P.seed)
run.write_json("summary.json", summary)
pd.DataFrame(summary["rows"])

# %% [markdown]
# Claims SoT-6 and SoT-7.

# %%
run.write_json("claims.json", summary["claims"])
pd.DataFrame(summary["claims"])

# %%
sample_teacher_traces(run, figures_dir(P.scale))
