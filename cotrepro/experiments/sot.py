"""Shape of Thought (SoT-1..SoT-7): the params section and the train-then-evaluate loop.

Steps 03, 04 and 05 all do the same thing many times: take the student base, fine-tune a fresh
LoRA adapter on one training set with one seed (or not at all: the "none" condition), evaluate it
greedily on the test problems, and store one record keyed `<condition>/s<seed>` with the summary
and the per-problem correctness. `train_and_evaluate` is that unit of work; it is resumable at two
levels: a stored record is never redone, and a finished adapter (`out_dir/final`) is loaded instead
of retrained when only the evaluation was lost.

Claims compare conditions on the SAME test problems: per problem, correctness is averaged over
seeds, and the difference of two conditions is bootstrapped over test problems (paired).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cotrepro import stats
from cotrepro.evaluate import evaluate
from cotrepro.models import add_lora, load_adapter, merge_adapter
from cotrepro.params import param, step_params_file, to_dict
from cotrepro.store import JsonlStore
from cotrepro.train import sft

NO_FINE_TUNING = "none"
OPERATORS = ("number", "operator", "delete", "duplicate", "swap", "answer", "comparison", "off_by_one",
             "arith_swap", "delete_statement", "return_value", "mixed")


@dataclass(frozen=True)
class SotParams:
    """Shape of Thought steps 02-05: how training sets are built, trained on and compared."""

    traces_from: str | None = param(None, "params file of step 02 (the H/G/W sets), relative to this "
                                          "params file's folder; steps 03-05 read its run directory")
    results_from: str | None = param(None, "params file of step 03, whose stored accuracies steps 04-05 "
                                           "reuse (relative to this params file's folder)")
    seeds: tuple[int, ...] = param((0, 1, 2), "training seeds of every fine-tuned condition (LoRA init "
                                              "and data order)", ge=0)
    conditions: tuple[str, ...] = param((NO_FINE_TUNING, "H", "G", "W"), "conditions of step 03: none = the "
                                        "student base, H/G/W = fine-tuned on that set",
                                        choices=(NO_FINE_TUNING, "H", "G", "W"))
    paraphrase_style: str | None = param(None, "entry of the paraphrase template (micro, text, code); "
                                               "null = text, or code for tasks that run code")
    paraphrase_temperature: float = param(0.0, "temperature of the paraphraser (0 = greedy)", ge=0.0)
    paraphrase_attempts: int = param(1, "rewrites tried per H trace until one keeps the final answer (each "
                                        "attempt samples with another seed; needs a temperature above 0)", ge=1)
    min_paraphrases: int = param(20, "fewer kept paraphrases than this and SoT-4 is not measured (a student "
                                     "trained on a handful of examples says nothing about P)", ge=1)
    operators: tuple[str, ...] = param(("number", "operator", "delete", "mixed"), "corruption operators of "
                                       "step 05 (cotrepro.corrupt)", choices=OPERATORS)
    levels: tuple[float, ...] = param((0.0, 0.25, 0.5, 0.75, 1.0), "shares of corrupted steps of step 05; "
                                      "must hold 0, 0.25 and 1 (the SoT-5 test reads those)", ge=0.0, le=1.0)
    nll_batch_size: int = param(16, "sequences per forward pass when scoring NLL", ge=1)
    n_boot: int = param(2000, "bootstrap resamples of every interval", ge=100)
    threads: int | None = param(1, "torch CPU threads (null = torch's default, every core). 1 by default: "
                                   "on a CPU shared with other jobs, 2 threads ran SFT of the micro student "
                                   "20x slower than 1 (oversubscription)", ge=1)

    def step_file(self, field: str, params_file: str | Path) -> Path:
        """The params file named by `field` (traces_from / results_from), resolved against the
        folder of `params_file`; a clear error when the field is not set."""
        return step_params_file(params_file, getattr(self, field), f"sot.{field}")


def use_threads(threads: int | None) -> None:
    """Set torch's CPU thread count (None leaves torch's default)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


def run_key(condition: str, seed: int | None) -> str:
    """The store key of one run: `none` is deterministic (greedy, no training), so it has no seed."""
    return condition if condition == NO_FINE_TUNING else f"{condition}/s{seed}"


def train_and_evaluate(store: JsonlStore, condition: str, seed: int | None, examples: list[dict] | None, *,
                       load_base: Callable, task, test_problems, params, out_dir: str | Path) -> dict:
    """Fine-tune a fresh LoRA adapter on `examples` (None: no fine-tuning), evaluate greedily on
    `test_problems`, store and return the record (a stored record is returned as is)."""
    import torch

    key = run_key(condition, seed)
    if key in store:
        return store.get(key)
    model, tokenizer = load_base()
    if examples is not None:
        final = Path(out_dir) / "final"
        if (final / "adapter_config.json").is_file():
            model = load_adapter(model, final)
        else:
            torch.manual_seed(seed)  # the LoRA initialisation
            model = add_lora(model, params.lora)
            model = sft(model, tokenizer, examples, replace(params.train, seed=seed), out_dir).model
        model = merge_adapter(model)  # plain weights generate faster than base + adapter
    result = evaluate(model, tokenizer, task, test_problems, template=params.task.template,
                      max_new_tokens=params.eval.max_new_tokens, k=1, temperature=0.0, seed=params.seed,
                      batch_size=params.eval.batch_size)
    summary = dict(result.summary)
    eval_seed = summary.pop("seed")  # "seed" of a record is the training seed
    record = {**summary, "eval_seed": eval_seed, "key": key, "condition": condition, "seed": seed,
              "n_train": 0 if examples is None else len(examples),
              "ids": [r["id"] for r in result.records],
              "correct": [bool(r["correct"][0]) for r in result.records],
              "parsed": [r["extracted"][0] is not None for r in result.records],
              "ungradable": [r["ungradable"] for r in result.records],
              "completions": [r["completions"][0] for r in result.records]}
    store.append(record)
    return record


def reusable(params, other) -> bool:
    """True when two experiments train and evaluate identically (so a run of one stands for the other)."""
    sections = ("seed", "models", "micro", "task", "lora", "train", "eval")
    return all(to_dict(getattr(params, s)) == to_dict(getattr(other, s)) for s in sections)


def per_problem(records: Sequence[dict], condition: str) -> tuple[list[str], np.ndarray]:
    """(test problem ids, correctness per gradable problem averaged over the condition's seeds)."""
    runs = [r for r in records if r["condition"] == condition]
    if not runs:
        raise ValueError(f"no stored runs of condition {condition!r}")
    ids = runs[0]["ids"]
    if any(r["ids"] != ids for r in runs):
        raise ValueError(f"condition {condition!r}: runs were evaluated on different test problems")
    keep = ~np.array(runs[0]["ungradable"])
    scores = np.mean([np.array(r["correct"], dtype=float) for r in runs], axis=0)
    return [i for i, k in zip(ids, keep) if k], scores[keep]


def paired_difference(records: Sequence[dict], a: str, b: str, n_boot: int = 2000,
                      seed: int = 0) -> stats.Interval:
    """accuracy(a) - accuracy(b), paired bootstrap over test problems (seeds averaged first)."""
    ids_a, xa = per_problem(records, a)
    ids_b, xb = per_problem(records, b)
    if ids_a != ids_b:
        raise ValueError(f"conditions {a!r} and {b!r} were evaluated on different test problems")
    return stats.diff_ci(xa, xb, paired=True, n_boot=n_boot, seed=seed)


def claim(claim_id: str, interval: stats.Interval, *, unit: str, what: str, n: int,
          direction: str = "greater", null: float = 0.0, **extra) -> dict:
    """One claims.json entry; the verdict comes from the interval and the claimed direction."""
    return {"claim": claim_id, "effect": interval.estimate, "ci": [interval.low, interval.high],
            "unit": unit, "what": what, "verdict": stats.verdict(interval, direction, null), "n": n, **extra}


def accuracy_rows(records: Sequence[dict]) -> list[dict]:
    """One row per stored run: condition, seed and the three accuracies of `evaluate`."""
    return [{"condition": r["condition"], "seed": r["seed"], "n_train": r["n_train"], "n_test": r["n"],
             "accuracy": r["accuracy"], "parsed_accuracy": r["parsed_accuracy"],
             "parse_failure_rate": r["parse_failure_rate"]} for r in records]


def long_outcomes(records: Sequence[dict]) -> list[dict]:
    """One row per (run, gradable test problem): what the accuracy plots bootstrap over."""
    return [{"condition": r["condition"], "seed": r["seed"], "problem": pid, "correct": float(ok)}
            for r in records for pid, ok, bad in zip(r["ids"], r["correct"], r["ungradable"]) if not bad]


def run_all(store: JsonlStore, training_sets: dict[str, list[dict] | None], seeds: Sequence[int], *,
            load_base: Callable, task, test_problems, params, out_root: str | Path) -> list[dict]:
    """`train_and_evaluate` for every condition (None = no fine-tuning: one run) and seed, in order;
    returns the records of exactly these runs (stored ones are read, not redone)."""
    records = []
    for condition, examples in training_sets.items():
        for seed in ([None] if examples is None else seeds):
            key = run_key(condition, seed)
            records.append(train_and_evaluate(store, condition, seed, examples, load_base=load_base, task=task,
                                              test_problems=test_problems, params=params,
                                              out_dir=Path(out_root) / key.replace("/", "_")))
    return records


def adopt(store: JsonlStore, other_store: JsonlStore, params, other_params, conditions: Sequence[str]) -> list[str]:
    """Copy the stored runs of `conditions` from another step (step 03) into `store`, when both
    steps train and evaluate identically (`reusable`) and for this step's seeds only; returns the
    keys copied. Otherwise nothing is copied and the runs are redone here."""
    if not reusable(params, other_params):
        return []
    wanted = {run_key(c, s) for c in conditions for s in params.sot.seeds}
    copied = [r["key"] for r in other_store if r["key"] in wanted and store.append(r)]
    return copied


def main_claims(records: Sequence[dict], n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """SoT-1 (W - H) and SoT-2 (G - H, with G - W alongside) from the runs of step 03."""
    n_seeds = len({r["seed"] for r in records if r["condition"] == "H"})
    n_test = len(per_problem(records, "H")[0])
    scope = f"greedy accuracy over all {n_test} test problems, per-problem mean over {n_seeds} seed(s), " \
            f"paired bootstrap over problems"
    g_minus_w = paired_difference(records, "G", "W", n_boot, seed)
    note = context_note(records)
    return [
        claim("SoT-1", paired_difference(records, "W", "H", n_boot, seed), unit="accuracy", n=n_test,
              what=f"accuracy(W) - accuracy(H), {scope}; claimed: above 0", note=note),
        claim("SoT-2", paired_difference(records, "G", "H", n_boot, seed), unit="accuracy", n=n_test,
              what=f"accuracy(G) - accuracy(H), {scope}; claimed: above 0 (G - W reported alongside)",
              g_minus_w={"effect": g_minus_w.estimate, "ci": [g_minus_w.low, g_minus_w.high]}, note=note),
    ]


def context_note(records: Sequence[dict]) -> str:
    """What a difference of two conditions cannot show by itself: every condition's mean accuracy
    and parse-failure rate, so a win over a collapsed H or a loss to the untuned base is visible."""
    parts = []
    for condition in dict.fromkeys(r["condition"] for r in records):
        runs = [r for r in records if r["condition"] == condition]
        accuracy = float(np.mean([r["accuracy"] for r in runs]))
        failures = float(np.mean([r["parse_failure_rate"] for r in runs]))
        parts.append(f"{condition}: accuracy {accuracy:.3f}, unparsed {failures:.0%}")
    return "mean over seeds: " + "; ".join(parts)
