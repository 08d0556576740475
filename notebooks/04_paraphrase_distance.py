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
# # 04 Paraphrase and distance: is closeness to the student what helps? (SoT-3, SoT-4)
#
# Shape of Thought explains SoT-1/2 by distribution: synthetic traces are closer to the student
# than human ones (SoT-3: lower per-token NLL under the student base), and rewriting human
# solutions toward a model's distribution (P) helps too (SoT-4: P beats H). The paraphraser
# rewrites each H trace of step 02's sets; a rewrite is kept only if its final answer is unchanged
# (the rejection rate is reported), and P is compared with H restricted to the same problems.
# Accuracies of H, G and W come from step 03's stored runs when both steps train alike.
#
# Run: `cotrepro run notebooks/04_paraphrase_distance.ipynb -f params/micro/04_paraphrase_distance.yaml`
# (after steps 02 and 03).

# %% tags=["parameters"]
params_file = "params/micro/04_paraphrase_distance.yaml"  # the params file of this run
run_root = "runs"  # where run directories live

# %%
from functools import partial

import pandas as pd

from cotrepro import world
from cotrepro.config import load_experiment
from cotrepro.experiments import paraphrase_distance as distance
from cotrepro.experiments import sot, traces
from cotrepro.generate import SamplingParams
from cotrepro.pipeline import step_run_dir
from cotrepro.plots_sot import paraphrase_distance
from cotrepro.report import figures_dir
from cotrepro.store import RunDir
from cotrepro.tasks import get_task

P = load_experiment(params_file)
sot.use_threads(P.sot.threads)
run = RunDir.open(P.experiment, P, root=run_root, seeds=list(P.sot.seeds))
traces_file = P.sot.step_file("traces_from", params_file)
results_file = P.sot.step_file("results_from", params_file)
sets = traces.load_sets(step_run_dir(traces_file, run_root))
task = get_task(P.task.name)
train_problems = world.train_problems(load_experiment(traces_file))  # the problems step 02 sampled
{name: len(examples) for name, examples in sets.items()}, P.models.paraphraser, P.sot.paraphrase_style

# %% [markdown]
# Paraphrase every H trace (stored as generated) and keep the answer-preserving rewrites; a trace
# whose rewrite changed the answer is tried again (another seed) up to `paraphrase_attempts` times.

# %%
paraphraser, paraphraser_tokenizer = world.load(P.models.paraphraser, P, run_root)
sampling = SamplingParams(temperature=P.sot.paraphrase_temperature, max_new_tokens=P.sampling.max_new_tokens,
                          seed=P.seed, batch_size=P.sampling.batch_size)
p_set, h_at_p, paraphrases, attempts = distance.paraphrase_set(
    sets["H"], train_problems, task, model=paraphraser, tokenizer=paraphraser_tokenizer, sampling=sampling,
    style=P.sot.paraphrase_style, attempts=P.sot.paraphrase_attempts, store=run.jsonl("paraphrase_samples"),
    model_id=P.models.paraphraser)
traces.write_examples(run.path / "sets" / "P.jsonl", p_set)
run.write_json("paraphrases.json", [p.to_dict() for p in paraphrases])
rejection = {**distance.rejection_summary(paraphrases), "attempts": attempts}
run.write_json("rejection.json", rejection)
rejection

# %% [markdown]
# One human trace and its paraphrase.

# %%
pd.DataFrame([paraphrases[0].to_dict()]).T

# %% [markdown]
# Accuracies: H, G, W and no fine-tuning from step 03 (when it trained alike), then P and
# (if P dropped problems) H on P's problems, trained here with the same seeds.

# %%
store = run.jsonl("results")
copied = sot.adopt(store, step_run_dir(results_file, run_root).jsonl("results"), P, load_experiment(results_file),
                   list(P.sot.conditions))
needed = {c: (None if c == sot.NO_FINE_TUNING else sets[c]) for c in P.sot.conditions}
needed.update(distance.training_sets(sets["H"], p_set, h_at_p, P.sot.min_paraphrases))
records = sot.run_all(store, needed, P.sot.seeds, load_base=partial(world.load_student, P, run_root), task=task,
                      test_problems=world.test_problems(P), params=P, out_root=run.path / "train")
len(copied), pd.DataFrame(sot.accuracy_rows(records))

# %% [markdown]
# Per-token NLL of every training set under the student base.

# %%
student, tokenizer = world.load_student(P, run_root)
scored = {name: distance.per_example_nll(student, tokenizer, examples, P.sot.nll_batch_size)
          for name, examples in {**sets, "P": p_set}.items() if examples}
points = distance.points(scored, records, n_boot=P.sot.n_boot, seed=P.seed)
run.write_json("points.json", points)
pd.DataFrame(points)

# %% [markdown]
# Claims SoT-3 (NLL of H minus that of G and W) and SoT-4 (P minus H on the same problems).

# %%
claims = [distance.distance_claim(scored, n_boot=P.sot.n_boot, seed=P.seed),
          distance.paraphrase_claim(records, rejection["rejection_rate"], len(p_set), P.sot.min_paraphrases,
                                    n_boot=P.sot.n_boot, seed=P.seed)]
run.write_json("claims.json", claims)
pd.DataFrame(claims)

# %%
paraphrase_distance(run, figures_dir(P.scale))
