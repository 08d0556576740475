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
# # 08 Star-graph shortcut: do per-step negatives unlearn what positives taught?
#
# Reproduces Setlur et al. (2024), section 7 (after Bachmann and Nagarajan 2024): a model trained
# from scratch on gold star-graph paths (teacher forcing) learns the "Clever Hans" shortcut: it
# follows edges well once on an arm, but picks the first arm by chance (accuracy near 1/degree).
# Per-step DPO pairs the gold path with wrong paths cut at their critical step, found by Monte
# Carlo step values. Claim ST-8. Method in `cotrepro/experiments/stargraph.py`.
#
# Run: `cotrepro run notebooks/08_stargraph_shortcut.ipynb -f params/micro/08_stargraph_shortcut.yaml`

# %% tags=["parameters"]
params_file = "params/micro/08_stargraph_shortcut.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
from collections import Counter

import pandas as pd

from cotrepro import world
from cotrepro.config import load_experiment
from cotrepro.experiments import stargraph as sg
from cotrepro.pairs import per_step_pairs
from cotrepro.plots_setlur import stargraph_shortcut
from cotrepro.report import figures_dir
from cotrepro.store import RunDir

P = load_experiment(params_file)
run = RunDir.open(P.experiment, P, root=run_root, seeds=[P.seed])
sp = P.stargraph
task = sg.make_task(sp)
train = task.load("train", limit=P.task.n_train, seed=P.seed)
tests = task.load("test", limit=P.task.n_test, seed=P.seed)
print(train[0].question, train[0].answer)
sp

# %% [markdown]
# SFT on the gold paths (loss on the path only, all weights): a fresh micro model (`init: scratch`)
# or the student base (`init: student`).

# %%
base = None if sp.init == "scratch" else world.load_student(P, run_root)
model, tokenizer = sg.train_on_paths(task, train, sp, P.train, run.path / "models" / "sft", base=base)
evals = run.jsonl("evals")
sft = sg.stored_evaluation(evals, "sft", model, tokenizer, task, tests, batch_size=P.eval.batch_size)
pd.DataFrame(sg.summary_rows({"SFT": sft}, sp.degree))

# %% [markdown]
# Wrong paths sampled from the SFT model on training graphs, and their step values under it.

# %%
dpo_problems = train[:sp.dpo_problems]
found = sg.negatives(model, tokenizer, task, dpo_problems, k=sp.samples, temperature=P.stepvalues.temperature,
                     seed=P.seed, batch_size=P.sampling.batch_size, store=run.jsonl("samples"))
values = sg.value_negatives(model, tokenizer, task, dpo_problems, found, P.stepvalues, store=run.jsonl("stepvalues"),
                            rollout_store=run.jsonl("rollouts"), seed=P.seed, batch_size=P.sampling.batch_size)
print(sum(map(len, found.values())), "wrong paths; critical step index:",
      Counter(v.critical_step for vs in values.values() for v in vs))

# %% [markdown]
# Per-step DPO from the SFT model: the gold path against each wrong path cut after its critical step.

# %%
pairs = per_step_pairs({p.id: task.prompt(p) for p in dpo_problems}, {p.id: [p.answer] for p in dpo_problems},
                       values, seed=P.seed)
dpo_model, _ = sg.train_dpo(run.path / "models" / "sft" / "final", pairs, P, run.path / "models" / "dpo_step")
dpo = sg.stored_evaluation(evals, "dpo_step", dpo_model, tokenizer, task, tests, batch_size=P.eval.batch_size)
summary = pd.DataFrame(sg.summary_rows({"SFT": sft, "per-step DPO": dpo}, sp.degree))
summary

# %% [markdown]
# ST-8: accuracy gain of per-step DPO, and whether SFT sits at the shortcut level.

# %%
claim = sg.st8_claim(sft, dpo, sp, n_pairs=len(pairs), seed=P.seed)
run.write_json("summary.json", {"rows": summary.to_dict("records"), "n_pairs": len(pairs),
                                "critical_steps": [v.critical_step for vs in values.values() for v in vs]})
run.write_json("claims.json", [claim])
claim

# %%
stargraph_shortcut(run, figures_dir(P.scale))
