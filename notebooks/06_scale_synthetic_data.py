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
# # 06 Scale synthetic data: SFT, RFT and per-step DPO against the number of problems
# (ST-1, ST-2, ST-3, ST-4, ST-5, ST-7)
#
# Setlur et al. 2024: SFT on a capable model's positive traces helps slowly (ST-1); RFT on the
# SFT model's own positives reaches SFT's error with about half the problems (ST-2), though more
# self-generated positives can stop helping (ST-3); per-step DPO on negatives cut at their
# critical step reaches it with about an eighth (ST-4), where standard DPO does not beat SFT
# (ST-5); per-step DPO helps pass@5 too (ST-7). The cells below run the recipe in its order;
# every stage is stored, and the independent jobs of a stage run in parallel, one per core.
#
# Run: `cotrepro run notebooks/06_scale_synthetic_data.ipynb -f params/micro/06_scale_synthetic_data.yaml`

# %% tags=["parameters"]
params_file = "params/micro/06_scale_synthetic_data.yaml"  # relative to the repository root
run_root = "runs"  # where results go, relative to the repository root

# %%
import pandas as pd

from cotrepro import plots, specs, stepvalues
from cotrepro.claims import chance_pass_at_k
from cotrepro.conditions import best_constant, compact_named
from cotrepro.experiments import scale_synthetic_data as step
from cotrepro.pipeline import open_step

run = open_step(params_file, run_root, step="scale_synthetic_data")
P = run.params
P.ladder

# %% [markdown]
# 1. Teacher positives: its first correct sample of each pool problem; the first n form rung n.

# %%
positives = step.teacher_positives(run)
print(f"{len(positives)} problems with a teacher positive; the first:\n{positives[0]['prompt']}{positives[0]['completion']}")

# %% [markdown]
# 2. SFT at every rung and seed (the same number of epochs at every rung).

# %%
sft = step.sft_models(run, positives)

# %% [markdown]
# 3-4. The SFT models sample their own problems; RFT adds their correct samples to the SFT data.

# %%
samples = step.self_samples(run, positives, sft)
rft = step.rft_models(run, positives, samples)

# %% [markdown]
# 5-7. Step values of the negatives under their SFT model; pairs; DPO from the SFT model.

# %%
values = step.negative_values(run, positives, sft, samples)
pairs = step.dpo_pairs(run, positives, samples, values)
dpo = step.dpo_models(run, sft, pairs)
pd.DataFrame([{"model": step.model_name(k), "pairs": len(v)} for k, v in pairs.items()])

# %% [markdown]
# 8. Every model greedily on the test problems; pass@k of SFT and per-step DPO at the compare size.

# %%
models = {("sft", *k): j for k, j in sft.items()} | rft | dpo
evals = step.evaluations(run, models)
run.dir.write_json("models.json", {step.model_name(k): j.key for k, j in models.items()})
run.dir.write_json("values.json", {f"n{n}/s{s}": stepvalues.summary(r) for (n, s), r in values.items()})
run.dir.write_json("outcomes.json", compact_named(evals, P.pass_at_k.k))
pd.Series({name: 1 - r["summary"]["accuracy"] for name, r in evals.items() if not name.endswith("@k")},
          name="test error")

# %% [markdown]
# The claims by their tests (`cotrepro/claims.yaml`).

# %%
chance = best_constant(specs.get_task(P.task), specs.test_problems(P.task, P.data))
claims = [f(evals, P, 1 - chance) for f in (step.st1_claim, step.st2_claim, step.st3_claim, step.st4_claim,
                                            step.st5_claim)]
claims.append(step.st7_claim(evals, P, chance_pass_at_k(chance, P.pass_at_k.k)))
run.dir.write_json("claims.json", claims)
pd.DataFrame(claims)[["claim", "verdict", "effect", "ci", "what"]]

# %%
plots.show(plots.write_step(run))
