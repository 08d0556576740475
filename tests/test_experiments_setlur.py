"""The library logic of the Setlur et al. steps: batched step values, iso-error analysis and
claims, idle-step detection and probes, and the star-graph shortcut verdict."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cotrepro.experiments import advantages, scaling
from cotrepro.experiments import stargraph as sg
from cotrepro.tasks.arith import TASK as ARITH
from cotrepro.tasks.base import Problem, Verdict

PROMPT = "Q: toy\n"
PROBLEM = Problem("p1", "toy", "1")


class LineTask:
    """Steps are lines; a completion is correct when its last line is 'ANSWER 1'."""

    name = "lines"

    def steps(self, trace: str) -> list[str]:
        return [line for line in trace.splitlines() if line.strip()]

    def verify(self, problem: Problem, completion: str) -> Verdict:
        last = (completion.strip().splitlines() or [""])[-1]
        return Verdict(correct=last == f"ANSWER {problem.answer}", extracted=last)


class FakeTokenizer:
    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


def test_batched_step_values_find_the_first_bad_step_in_few_batched_rounds(monkeypatch):
    # Rollouts succeed until the prefix holds a "bad" line; every trace's first bad line is its
    # critical step. Contexts are sampled in batches: one call per round, not one per prefix.
    calls = []

    def fake_sample(model, tokenizer, contexts, sampling, **kwargs):
        calls.append(list(contexts))
        return [["\nANSWER 0" if "bad" in c else "\nANSWER 1"] * sampling.k for c in contexts]

    monkeypatch.setattr(scaling, "sample", fake_sample)
    traces = ["ok\nok\nbad\nbad\nANSWER 0", "bad\nbad\nbad\nANSWER 0", "ok\nok\nok\nok\nbad\nANSWER 0",
              "ok\nok\nbad\nbad\nANSWER 0"]  # the last repeats the first: its contexts are not re-sampled
    items = [(PROBLEM, PROMPT, t) for t in traces]
    values = scaling.batched_step_values(None, FakeTokenizer(), LineTask(), items, rollouts=3, best_of=5,
                                         strategy="bisect", temperature=1.0, max_new_tokens=8, stop=())
    assert [v.critical_step for v in values] == [2, 0, 4, 2]
    assert len(calls) <= 1 + math.ceil(math.log2(6))  # rounds, not prefixes
    sampled = [c for call in calls for c in call]
    assert len(sampled) == len(set(sampled))
    assert values[0].Q[2] == 0.0 and values[0].Q[1] == 1.0  # bisection skipped step 0
    record = scaling.step_value_record("k", "p1", traces[0], values[0])
    assert scaling.as_step_values(record) == values[0]


def outcomes_with_accuracy(accuracy: float, n_items: int = 400) -> list[float]:
    correct = round(accuracy * n_items)
    return [1.0] * correct + [0.0] * (n_items - correct)


def eval_record(method: str, n: int, accuracy: float, k: int = 1) -> dict:
    return {"method": method, "n": n, "k": k, "seed": 0, "scores": outcomes_with_accuracy(accuracy)}


def test_analyse_reads_the_iso_error_multipliers_off_the_sft_power_law():
    # SFT error = 0.8 * n^-0.3 exactly; RFT at n=64 reaches SFT's error at 128 (2x), per-step DPO
    # SFT's error at 512 (8x); standard DPO equals SFT.
    sizes = [64, 128, 256, 512]
    sft_err = {n: 0.8 * n ** -0.3 for n in sizes}
    evals = [eval_record("sft", n, 1 - sft_err[n]) for n in sizes]
    evals += [eval_record("rft", n, 1 - sft_err[min(2 * n, 512)]) for n in sizes]
    evals += [eval_record("dpo_step", 64, 1 - sft_err[512]), eval_record("dpo_random", 64, 1 - sft_err[64]),
              eval_record("dpo_edit", 64, 1 - sft_err[128]),
              eval_record("sft", 64, 0.5, k=4), eval_record("dpo_step", 64, 0.7, k=4)]
    sp = scaling.ScalingParams(sizes=tuple(sizes), compare_size=64, n_boot=300)
    result = scaling.analyse(evals, sp, pass_k=4)
    claims = {c["claim"]: c for c in result["claims"]}
    assert set(claims) == {"ST-1", "ST-2", "ST-3", "ST-4", "ST-5", "ST-7"}
    assert claims["ST-1"]["effect"] == pytest.approx(0.3, abs=0.02)
    assert claims["ST-1"]["verdict"] == "reproduced"
    assert claims["ST-2"]["effect"] == pytest.approx(2.0, rel=0.1)
    assert claims["ST-4"]["effect"] == pytest.approx(8.0, rel=0.15)
    assert claims["ST-4"]["verdict"] == "reproduced"
    assert claims["ST-5"]["effect"] == pytest.approx(0.0, abs=1e-9) and claims["ST-5"]["verdict"] == "reproduced"
    assert claims["ST-5"]["edit_between"] is True
    assert claims["ST-7"]["effect"] == pytest.approx(0.2, abs=0.01) and claims["ST-7"]["verdict"] == "reproduced"
    # the RFT curve flattens at the top (its 512 point equals its 256 point): ST-3's effect is positive
    assert claims["ST-3"]["effect"] > 0


def test_scaling_params_reject_sizes_off_the_ladder():
    with pytest.raises(ValueError, match="not on the ladder"):
        scaling.ScalingParams(sizes=(8, 16), compare_size=4).check()
    with pytest.raises(ValueError, match="increasing"):
        scaling.ScalingParams(sizes=(16, 8), compare_size=8).check()
    sp = scaling.ScalingParams(sizes=(8, 16, 32), compare_size=8, dpo_sizes=(16,))
    assert sp.method_sizes("dpo_step") == (8, 16) and sp.method_sizes("rft") == (8, 16, 32)


def test_idle_flags_mark_true_steps_whose_result_is_never_used_or_repeated():
    steps = ["3 + 4 = 7", "2 * 5 = 10", "7 * 2 = 14", "7 * 2 = 14", "9 - 1 = 9", "#### 14"]
    flags = advantages.idle_flags(steps, "14")
    # progress, unused result, progress, repeat, false claim (neither), answer line (neither)
    assert flags == [False, True, False, True, None, None]


def test_inserted_idle_step_keeps_the_trace_correct_and_is_flagged_idle():
    problem = ARITH.load("train", limit=5)[3]
    trace = problem.meta["stepwise"]
    new, index = advantages.insert_idle_step(problem.question, trace, random.Random(0))
    assert ARITH.verify(problem, new).correct
    steps = ARITH.steps(new)
    assert len(steps) == len(ARITH.steps(trace)) + 1
    assert advantages.idle_flags(steps, ARITH.extract(new))[index] is True


def test_st6_compares_low_advantage_rates_of_idle_and_progress_steps():
    rows = ([{"kind": "probe", "A": -0.5, "idle": True, "inserted": True}] * 30
            + [{"kind": "correct", "A": 0.0, "idle": False, "inserted": False}] * 60
            + [{"kind": "correct", "A": -0.5, "idle": False, "inserted": False}] * 6
            + [{"kind": "incorrect", "A": -0.9, "idle": False, "inserted": False}] * 50)  # not counted
    claim = advantages.st6_claim(rows, low=0.1, n_boot=300)
    assert claim["effect"] == pytest.approx(1.0 - 6 / 66)
    assert claim["verdict"] == "reproduced" and claim["n"] == 96
    empty = advantages.st6_claim(rows[30:], low=0.1, n_boot=300)
    assert empty["verdict"] == "inconclusive" and math.isnan(empty["effect"])


@pytest.mark.parametrize("first, later, verdict, at_shortcut", [
    (0.5, 1.0, "reproduced", True),        # SFT at chance on the first step; DPO better
    (0.98, 1.0, "not reproduced", False),  # SFT already solves the first step: no shortcut
    (0.5, 0.1, "inconclusive", False),     # SFT did not even learn the lookup
])
def test_st8_verdict_depends_on_whether_sft_sits_at_the_shortcut(first, later, verdict, at_shortcut):
    n = 200
    sft = {"correct": outcomes_with_accuracy(first * later, n), "first_step": outcomes_with_accuracy(first, n),
           "later_steps": [later] * n}
    dpo = {"correct": outcomes_with_accuracy(min(1.0, first * later + 0.3), n)}
    claim = sg.st8_claim(sft, dpo, sg.StarGraphParams(n_boot=300), n_pairs=10)
    assert claim["verdict"] == verdict and claim["sft_at_shortcut"] is at_shortcut


def test_first_int_reads_the_next_node():
    assert sg.first_int("17,3,9") == 17 and sg.first_int(",4\n") == 4 and sg.first_int("x") is None


def test_exponent_ci_is_positive_for_a_falling_curve():
    curve = {n: np.array(outcomes_with_accuracy(1 - 0.8 * n ** -0.3)) for n in (64, 128, 256)}
    ci = scaling.exponent_ci(curve, n_boot=300)
    assert 0 < ci.low < 0.3 < ci.high


def test_small_sets_get_enough_epochs_for_min_steps():
    assert scaling.epochs_for(3, n_examples=32, min_steps=30, batch=16) == 15.0
    assert scaling.epochs_for(3, n_examples=512, min_steps=30, batch=16) == 3
    assert scaling.epochs_for(3, n_examples=32, min_steps=0, batch=16) == 3
