"""Step 08: the star-graph shortcut and whether per-step negatives unlearn it (claim ST-8).

Bachmann and Nagarajan (2024) train a GPT-style model from scratch, with teacher forcing, on
star-graph path finding; it learns the "Clever Hans" shortcut: given the path so far, the next
node is the one an edge leads to, which is trivial after the first arm node, while the first
choice (which arm leads to the goal) is left to chance: accuracy near 1/degree. Setlur et al.
(2024) show that per-step negatives help unlearn it.

By default (`init: scratch`), as in Bachmann and Nagarajan, a fresh micro model
(`micro.build_micro_model`, a Llama, with a byte-level BPE tokenizer built on star-graph text,
digits one per token) is trained from scratch on gold paths, loss on the path only (`train.sft`,
all weights): the claim is about what training on positives alone teaches. A model from scratch
must first learn to look edges up in its context (an induction-like mechanism that appears
after a loss plateau), which can take more steps than a CPU budget allows; `init: student`
starts instead from the micro student base, whose pretraining (copying numbers of a question
into arithmetic steps) already exercises copying from context, as a pretrained LM's does.

Measured on test graphs:

- accuracy: the greedy path is valid from start to goal;
- first-step accuracy: given "start,", the greedy next node is the gold one (the hard choice);
- later-step accuracy: given the gold path through node i >= 1, the greedy next node is the gold
  one (the lookup the shortcut does well).

Per-step DPO: the SFT model samples paths for training graphs; each wrong path gets Monte Carlo
step values under the SFT model (`scaling.batched_step_values`, the cheap strategy); its critical
step is where it is cut, and it is paired with the gold path (`pairs.per_step_pairs`). Nothing
tells the code that the first branch is the critical step: the step values find it, and the
stored critical-step positions show where they put it. DPO trains a LoRA on the SFT model (the
adapter-disabled model is the reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from cotrepro import stats
from cotrepro.generate import SamplingParams, sample
from cotrepro.micro import MicroModelParams
from cotrepro.params import param
from cotrepro.tasks.stargraph import StarGraphTask


def _model_shape() -> MicroModelParams:
    return MicroModelParams(arch="llama", n_layers=4, d_model=128, n_heads=4, n_kv_heads=2, d_ff=384,
                            max_seq_len=128)


@dataclass(frozen=True)
class StarGraphParams:
    """Step 08: the graphs, the from-scratch model and the per-step DPO stage."""

    init: Literal["scratch", "student"] = param("scratch", "scratch: a fresh micro model (model, vocab_size), as "
                                                "Bachmann and Nagarajan; student: the student base (models.student)")
    degree: int = param(2, "arms of each star (shortcut accuracy = 1/degree)", ge=2)
    path_length: int = param(5, "nodes on a path from the center to a leaf, both included", ge=2)
    n_nodes: int = param(50, "distinct node labels", ge=3)
    model: MicroModelParams = param(help="the model trained from scratch (init: scratch)", default_factory=_model_shape)
    vocab_size: int = param(300, "BPE vocabulary of the tokenizer built on star-graph text", ge=260)
    dpo_problems: int = param(512, "training graphs on which the SFT model samples paths for DPO", ge=1)
    samples: int = param(4, "paths sampled per graph from the SFT model (temperature stepvalues.temperature)", ge=1)
    dpo_lr: float | None = param(None, "DPO learning rate (null = train.lr)", gt=0.0)
    dpo_epochs: float | None = param(None, "DPO epochs (null = train.epochs)", gt=0.0)
    later_step_min: float = param(0.9, "later-step accuracy the SFT model needs for 'it learned the "
                                  "lookup' (one half of the shortcut)", ge=0.0, le=1.0)
    n_boot: int = param(2000, "bootstrap resamples", ge=100)


def make_task(sp: StarGraphParams) -> StarGraphTask:
    return StarGraphTask(degree=sp.degree, path_length=sp.path_length, n_nodes=sp.n_nodes)


def train_on_paths(task, problems, sp: StarGraphParams, train_params, out_dir: Path, base=None,
                   template: str = "default"):
    """(model, tokenizer): a model trained with teacher forcing on the gold paths (all weights).

    `base` is a (model, tokenizer) to start from (`init: student`); without it a fresh micro
    model and tokenizer are built (`init: scratch`). Stored in `out_dir/final`; a stored model is
    loaded instead of retrained."""
    from cotrepro.micro import build_micro_model, build_tokenizer
    from cotrepro.models import load_model
    from cotrepro.train import sft

    final = out_dir / "final"
    if not (final / "config.json").is_file():
        examples = [{"prompt": task.prompt(p, template), "completion": p.answer} for p in problems]
        if base is None:
            tokenizer = build_tokenizer([e["prompt"] + e["completion"] for e in examples[:2000]], sp.vocab_size)
            model = build_micro_model(sp.model, tokenizer, seed=train_params.seed)
        else:
            model, tokenizer = base
        sft(model, tokenizer, examples, train_params, out_dir)
        tokenizer.save_pretrained(final)
    return load_model(final)


def first_int(text: str) -> int | None:
    """The first integer of `text` (the next node a model wrote), or None."""
    digits = ""
    for char in text.lstrip(", "):
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits else None


def node_accuracy(model, tokenizer, task, problems, template: str = "default", batch_size: int = 64) -> dict:
    """Greedy next-node accuracy given the gold path so far: per problem, the first step (after
    "start,") and the mean over later steps; lists follow `problems`."""
    contexts, owners = [], []
    for i, p in enumerate(problems):
        gold = p.answer.split(",")
        for j in range(1, len(gold)):
            contexts.append(task.prompt(p, template) + ",".join(gold[:j]) + ",")
            owners.append((i, j))
    outs = sample(model, tokenizer, contexts, SamplingParams(max_new_tokens=4, batch_size=batch_size),
                  progress=False)
    first = np.zeros(len(problems))
    later: list[list[float]] = [[] for _ in problems]
    for (i, j), out in zip(owners, outs):
        hit = float(first_int(out[0]) == int(problems[i].answer.split(",")[j]))
        if j == 1:
            first[i] = hit
        else:
            later[i].append(hit)
    return {"first_step": first.tolist(), "later_steps": [float(np.mean(x)) if x else math.nan for x in later]}


def evaluate_paths(model, tokenizer, task, problems, template: str = "default", batch_size: int = 64) -> dict:
    """Per-problem greedy path correctness and next-node accuracies (see `node_accuracy`)."""
    from cotrepro.evaluate import evaluate

    result = evaluate(model, tokenizer, task, problems, template=template,
                      max_new_tokens=4 * task.path_length, batch_size=batch_size)
    return {"correct": [float(r["correct"][0]) for r in result.records],
            "completions": [r["completions"][0] for r in result.records],
            **node_accuracy(model, tokenizer, task, problems, template, batch_size)}


def negatives(model, tokenizer, task, problems, *, k: int, temperature: float, seed: int, template: str = "default",
              batch_size: int = 64, store=None) -> dict[str, list[str]]:
    """Distinct wrong paths sampled from `model`, per problem id (problems with none left out)."""
    prompts = [task.prompt(p, template) for p in problems]
    sampling = SamplingParams(k=k, temperature=temperature, max_new_tokens=4 * task.path_length,
                              stop=("\n",), seed=seed, batch_size=batch_size)
    found = {}
    for p, outs in zip(problems, sample(model, tokenizer, prompts, sampling, store=store, model_id="stargraph-sft",
                                         progress=False)):
        wrong = [o for o in dict.fromkeys(outs) if task.steps(o) and not task.verify(p, o).correct]
        if wrong:
            found[p.id] = wrong
    return found


def summary_rows(results: dict[str, dict], degree: int) -> list[dict]:
    """One row per model: accuracy, first-step and later-step accuracy with Wilson intervals."""
    rows = []
    for name, r in results.items():
        row = {"model": name, "n": len(r["correct"]), "shortcut_level": 1 / degree}
        for metric in ("correct", "first_step"):
            ci = stats.binomial_ci(int(sum(r[metric])), len(r[metric]))
            label = "accuracy" if metric == "correct" else "first_step_accuracy"
            row.update({label: ci.estimate, f"{label}_low": ci.low, f"{label}_high": ci.high})
        later = [x for x in r["later_steps"] if not math.isnan(x)]
        row["later_step_accuracy"] = float(np.mean(later)) if later else math.nan
        rows.append(row)
    return rows


def st8_claim(sft: dict, dpo: dict, sp: StarGraphParams, n_pairs: int, seed: int = 0) -> dict:
    """ST-8: accuracy(per-step DPO) - accuracy(SFT), and whether SFT sits at the shortcut level.

    The shortcut is present when the SFT model does the lookup (later-step accuracy at least
    `later_step_min`) but its first-step accuracy has a 95% interval containing 1/degree. Then
    the verdict is that of the accuracy difference (a paired bootstrap over test graphs). If SFT
    solves the first step beyond chance, positives alone did not teach the shortcut: not
    reproduced. Otherwise (it did not even learn the lookup): inconclusive.
    """
    level = 1 / sp.degree
    first = stats.binomial_ci(int(sum(sft["first_step"])), len(sft["first_step"]))
    later = float(np.nanmean(sft["later_steps"]))
    diff = stats.diff_ci(dpo["correct"], sft["correct"], paired=True, n_boot=sp.n_boot, seed=seed)
    at_shortcut = later >= sp.later_step_min and first.low <= level <= first.high
    if at_shortcut:
        verdict = stats.verdict(diff, "greater", 0.0)
    elif first.low > level and later >= sp.later_step_min:
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    what = (f"greedy path accuracy(per-step DPO) - accuracy(SFT) on {len(sft['correct'])} test graphs "
            f"(degree {sp.degree}, path length {sp.path_length}), {n_pairs} DPO pairs; SFT first-step accuracy "
            f"{first} vs shortcut level {level:.2f}, later-step accuracy {later:.3f}: SFT "
            f"{'sits' if at_shortcut else 'does not sit'} at the shortcut level")
    return {"claim": "ST-8", "effect": diff.estimate, "ci": [diff.low, diff.high], "unit": "accuracy difference",
            "what": what, "verdict": verdict, "n": len(sft["correct"]), "sft_at_shortcut": at_shortcut}


def stored_evaluation(store, key: str, model, tokenizer, task, problems, template: str = "default",
                      batch_size: int = 64) -> dict:
    """`evaluate_paths` of a model, stored under `key` (read back when present)."""
    if key not in store:
        store.append({"key": key, **evaluate_paths(model, tokenizer, task, problems, template, batch_size)})
    return store.get(key)


def value_negatives(model, tokenizer, task, problems, found: dict[str, list[str]], sv, *, store, rollout_store,
                    seed: int = 0, template: str = "default", batch_size: int = 64) -> dict:
    """Step values of every wrong path under `model` (one stored record per path), per problem id."""
    from cotrepro.experiments.scaling import as_step_values, batched_step_values, step_value_record

    by_id = {p.id: p for p in problems}
    keyed = [(f"{pid}/{j}", pid, trace) for pid, traces in found.items() for j, trace in enumerate(traces)]
    todo = [k for k in keyed if k[0] not in store]
    if todo:
        items = [(by_id[pid], task.prompt(by_id[pid], template), trace) for _, pid, trace in todo]
        values = batched_step_values(model, tokenizer, task, items, rollouts=sv.rollouts, best_of=sv.best_of,
                                     strategy=sv.strategy, temperature=sv.temperature,
                                     max_new_tokens=4 * task.path_length, stop=("\n",), seed=seed,
                                     batch_size=batch_size, store=rollout_store, model_id="stargraph-sft")
        for (key, pid, trace), value in zip(todo, values):
            store.append(step_value_record(key, pid, trace, value))
    values: dict = {}
    for key, pid, _ in keyed:
        values.setdefault(pid, []).append(as_step_values(store.get(key)))
    return values


def train_dpo(sft_dir: Path, pairs: list[dict], P, out_dir: Path):
    """(model, tokenizer): a LoRA on the SFT model trained with DPO on `pairs` (the adapter-disabled
    SFT model is the reference), merged; a stored adapter is loaded instead of retrained."""
    from cotrepro.dpo import dpo
    from cotrepro.models import add_lora, load_adapter, load_model, merge_adapter

    model, tokenizer = load_model(sft_dir)
    if (out_dir / "final" / "adapter_config.json").is_file():
        return merge_adapter(load_adapter(model, out_dir / "final")), tokenizer
    sp = P.stargraph
    params = replace(P.train, lr=sp.dpo_lr or P.train.lr, epochs=sp.dpo_epochs or P.train.epochs)
    result = dpo(add_lora(model, P.lora), tokenizer, pairs, params, out_dir, P.dpo)
    return merge_adapter(result.model), tokenizer
