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
# # 06 Scale synthetic data: SFT, RFT and per-step DPO against the number of synthetic problems
#
# Reproduces Setlur et al. (2024), Fig. 2-5: test error as a function of the number of synthetic
# problems for SFT on teacher positives, RFT on self-generated positives, and per-step DPO on
# negatives cut at their critical step; the iso-error multipliers (paper: 2x for RFT, 8x for
# per-step DPO); standard and edit-distance DPO; pass@k. Claims ST-1, ST-2, ST-3, ST-4, ST-5, ST-7.
# The method is described in `cotrepro/experiments/scaling.py`. Every training run, sample set and
# evaluation is stored as it finishes, so a killed run resumes where it stopped.
#
# Run: `cotrepro run notebooks/06_scale_synthetic_data.ipynb -f params/micro/06_scale_synthetic_data.yaml`

# %% tags=["parameters"]
params_file = "params/micro/06_scale_synthetic_data.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
import pandas as pd

from cotrepro.config import load_experiment
from cotrepro.experiments.scaling import ScalingRun, analyse
from cotrepro.plots_setlur import scale_synthetic_data
from cotrepro.report import figures_dir
from cotrepro.store import RunDir

P = load_experiment(params_file)
run = RunDir.open(P.experiment, P, root=run_root, seeds=[P.seed])
experiment = ScalingRun(P, run, run_root)
P.scaling

# %% [markdown]
# Teacher positives: the teacher's first correct sample of each training problem; the first n
# problems that have one are the n-problem SFT set.

# %%
train_set = experiment.teacher_positives()
print(len(train_set), "problems with a teacher positive; the first:")
print(train_set[0]["prompt"] + train_set[0]["completion"])

# %% [markdown]
# SFT on teacher positives, at every ladder size and seed (greedy pass@1 on the test problems).

# %%
for n in P.scaling.method_sizes("sft"):
    for seed in P.scaling.seeds:
        experiment.evaluate("sft", n, seed)

# %% [markdown]
# RFT: the SFT data plus the SFT model's own correct samples (deduplicated, capped per problem),
# trained from the student base.

# %%
for n in P.scaling.method_sizes("rft"):
    for seed in P.scaling.seeds:
        experiment.evaluate("rft", n, seed)

# %% [markdown]
# Per-step DPO: the SFT model's negatives valued step by step (best-of-K Monte Carlo rollouts),
# cut at their critical step, paired with a correct trace; DPO with the SFT model as reference.

# %%
for n in P.scaling.method_sizes("dpo_step"):
    for seed in P.scaling.seeds:
        experiment.evaluate("dpo_step", n, seed)

# %% [markdown]
# Standard DPO (random pairs of whole traces) and edit-distance DPO on the same negatives, at the
# comparison size; pass@k of SFT and per-step DPO there.

# %%
for method in ("dpo_random", "dpo_edit"):
    for seed in P.scaling.seeds:
        experiment.evaluate(method, P.scaling.compare_size, seed)
for method in ("sft", "dpo_step"):
    for seed in P.scaling.seeds:
        experiment.evaluate(method, P.scaling.compare_size, seed, k=P.eval.k)

# %% [markdown]
# Test error of every run.

# %%
evals = list(run.jsonl("evals"))
pd.DataFrame([{"method": r["method"], "n": r["n"], "seed": r["seed"], "k": r["k"], "score": r["score"],
               "train_examples": r["train_examples"]} for r in evals]).sort_values(["k", "method", "n"])

# %% [markdown]
# The power law of the SFT curve, the iso-error multipliers and the claims.

# %%
result = analyse(evals, P.scaling, pass_k=P.eval.k, seed=P.seed)
run.write_json("scaling_summary.json", {"fits": result["fits"], "multipliers": result["multipliers"],
                                        "compare_size": P.scaling.compare_size, "pass_k": P.eval.k})
run.write_json("claims.json", result["claims"])
pd.DataFrame(result["multipliers"])

# %%
pd.DataFrame(result["claims"])[["claim", "effect", "ci", "verdict", "what"]]

# %%
scale_synthetic_data(run, figures_dir(P.scale))
