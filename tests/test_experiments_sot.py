"""Library logic of the Shape of Thought steps: building H/G/W, step validity, claims, corruption,
distance, and the resumable train-then-evaluate unit (with a tiny model)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cotrepro.config import ExperimentParams
from cotrepro.experiments import corruption, sot, traces
from cotrepro.experiments import paraphrase_distance as distance
from cotrepro.generate import SamplingParams
from cotrepro.params import ParamsError, from_dict
from cotrepro.store import JsonlStore
from cotrepro.tasks import arith, countdown
from cotrepro.tasks.base import Problem

TASK = arith.TASK


def problems(n: int = 4) -> list[Problem]:
    return TASK.load("train", limit=n)


def graded_for(problem: Problem, outcomes: list[str]) -> list[dict]:
    """Graded traces of `problem`: "G" right answer, "W" wrong answer, "U" no answer at all."""
    right = arith.render_stepwise(problem)
    text = {"G": right, "W": right.replace(f"#### {problem.answer}", f"#### {int(problem.answer) + 1}"),
            "U": "I do not know"}
    return [traces.grade(TASK, problem, i, text[o]) for i, o in enumerate(outcomes)]


def test_build_sets_matches_problems_and_equalises_sizes():
    ps = problems(4)
    graded = (graded_for(ps[0], ["G", "W", "G"]) + graded_for(ps[1], ["G", "G"])  # no W: dropped
              + graded_for(ps[2], ["U", "G"])  # an unparsable trace is not W: dropped
              + graded_for(ps[3], ["W", "G"]))
    sets = traces.build_sets(TASK, ps, graded, "default")
    assert [len(sets[n]) for n in traces.SETS] == [2, 2, 2]
    for name in traces.SETS:
        assert [e["problem_id"] for e in sets[name]] == [ps[0].id, ps[3].id]
    assert sets["H"][0]["completion"] == ps[0].solution == arith.render_human(ps[0])
    assert all(TASK.verify(p, e["completion"]).correct for p, e in zip([ps[0], ps[3]], sets["G"]))
    assert not any(TASK.verify(p, e["completion"]).correct for p, e in zip([ps[0], ps[3]], sets["W"]))
    assert sets["G"][0]["prompt"] == TASK.prompt(ps[0], "default")


def test_countdown_human_trace_is_the_solvers_equation_and_verifies():
    puzzle = countdown.generate_problems(1, seed=3)[0]
    puzzle = Problem(id=puzzle.id, question=puzzle.question, answer=puzzle.answer, meta=puzzle.meta)  # no solution
    trace = traces.reference_solution(countdown.TASK, puzzle)
    assert trace is not None and "<answer>" in trace
    assert countdown.TASK.verify(puzzle, trace).correct


def test_as_completion_separates_prompt_and_trace():
    assert traces.as_completion("Solution:", "x") == " x"
    assert traces.as_completion("Answer:\n", "x") == "x"


def test_summary_measures_step_validity_of_w_and_g():
    p = problems(1)[0]
    steps = arith.render_stepwise(p).splitlines()
    first = steps[0]
    a, rest = first.split(" = ")
    broken = "\n".join([f"{a} = {int(rest) + 5}"] + steps[1:])  # a false first step, right answer kept
    graded = graded_for(p, ["W", "G"]) + [traces.grade(TASK, p, 2, broken)]
    out = traces.summary(graded, traces.build_sets(TASK, [p], graded, "default"), 1, 3, n_boot=200)
    claims = {c["claim"]: c for c in out["claims"]}
    # the W trace: all but the last step true (the last one now claims N+1)
    n = len(arith.check_steps(graded[0]["completion"]))
    assert claims["SoT-6"]["effect"] == pytest.approx(1 - sum(not c.correct for c in arith.check_steps(
        graded[0]["completion"])) / n)
    # one of the two G traces holds a false step
    assert claims["SoT-7"]["effect"] == pytest.approx(0.5) and claims["SoT-7"]["n"] == 2


def test_summary_says_not_measured_when_nothing_is_checkable():
    p = problems(1)[0]
    out = traces.summary(graded_for(p, ["U", "U"]), {n: [] for n in traces.SETS}, 1, 2, n_boot=200)
    assert [(c["claim"], c["effect"], c["verdict"]) for c in out["claims"]] == [
        ("SoT-6", None, "inconclusive"), ("SoT-7", None, "inconclusive")]


def record(condition, seed, correct, ungradable=None):
    return {"key": sot.run_key(condition, seed), "condition": condition, "seed": seed, "n_train": 3,
            "ids": [f"t{i}" for i in range(len(correct))], "correct": list(correct),
            "ungradable": ungradable or [False] * len(correct), "n": len(correct), "accuracy": np.mean(correct),
            "parsed_accuracy": np.mean(correct), "parse_failure_rate": 0.0}


def test_per_problem_averages_seeds_and_drops_ungradable():
    records = [record("H", 0, [1, 0, 1], [False, False, True]), record("H", 1, [1, 1, 0], [False, False, True])]
    ids, scores = sot.per_problem(records, "H")
    assert ids == ["t0", "t1"] and scores.tolist() == [1.0, 0.5]


def test_main_claims_pair_conditions_on_problems():
    n = 40
    records = [record("H", s, [i < 10 for i in range(n)]) for s in (0, 1)]
    records += [record("W", s, [i < 30 for i in range(n)]) for s in (0, 1)]
    records += [record("G", s, [i < 20 for i in range(n)]) for s in (0, 1)]
    claims = {c["claim"]: c for c in sot.main_claims(records, n_boot=500)}
    assert claims["SoT-1"]["effect"] == pytest.approx(0.5) and claims["SoT-1"]["verdict"] == "reproduced"
    assert claims["SoT-2"]["effect"] == pytest.approx(0.25) and claims["SoT-2"]["verdict"] == "reproduced"
    assert claims["SoT-2"]["g_minus_w"]["effect"] == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="no stored runs"):
        sot.paired_difference(records, "P", "H")


def test_adopt_copies_only_when_training_and_evaluation_match(tmp_path):
    params = from_dict(ExperimentParams, {"experiment": "a", "sot": {"seeds": [0]}})
    other = JsonlStore(tmp_path / "other.jsonl")
    other.extend([record("H", 0, [1]), record("H", 1, [1]), record("none", None, [0])])
    store = JsonlStore(tmp_path / "mine.jsonl")
    assert sot.adopt(store, other, params, params, ["H", "none"]) == ["H/s0", "none"]
    changed = from_dict(ExperimentParams, {"experiment": "a", "train": {"lr": 0.5}})
    assert sot.adopt(JsonlStore(tmp_path / "x.jsonl"), other, params, changed, ["H"]) == []


def test_step_file_resolves_next_to_the_params_file(tmp_path):
    (tmp_path / "02.yaml").write_text("experiment: x\n")
    params = sot.SotParams(traces_from="02.yaml")
    assert params.step_file("traces_from", tmp_path / "03.yaml") == tmp_path / "02.yaml"
    with pytest.raises(ParamsError, match="03.yaml: sot.results_from: must name"):
        params.step_file("results_from", tmp_path / "03.yaml")
    with pytest.raises(ParamsError, match="03.yaml: sot.traces_from: no such params file"):
        sot.SotParams(traces_from="missing.yaml").step_file("traces_from", tmp_path / "03.yaml")


def test_corruption_design_keeps_level_zero_clean_and_hits_steps():
    ps = problems(3)
    g = [{"prompt": TASK.prompt(p), "completion": arith.render_stepwise(p), "problem_id": p.id} for p in ps]
    sets, design = corruption.design(g, TASK, {p.id: p for p in ps}, ["number", "delete"], [0.0, 0.25, 1.0])
    assert sets["G"] == g and set(sets) == {"G", "number@0.25", "number@1", "delete@0.25", "delete@1"}
    full = next(s for s in design["sets"] if s["condition"] == "number@1")
    assert full["mean_fraction_hit"] == pytest.approx(1.0)
    assert all(a["completion"] != b["completion"] for a, b in zip(sets["number@1"], g))
    with pytest.raises(ValueError, match="must include 0.25"):
        corruption.design(g, TASK, {p.id: p for p in ps}, ["number"], [0.0, 0.5, 1.0])


def test_gradual_claim_tells_a_slow_decline_from_a_cliff():
    n = 60

    def runs(acc_by_level):
        return [record(corruption.condition_name(op, lv), 0, [i < acc * n for i in range(n)])
                for lv, acc in acc_by_level.items() for op in (["number"] if lv else ["-"])]

    linear = corruption.gradual_claim(runs({0.0: 0.8, 0.25: 0.7, 1.0: 0.4}), ["number"], n_boot=500)
    cliff = corruption.gradual_claim(runs({0.0: 0.8, 0.25: 0.3, 1.0: 0.3}), ["number"], n_boot=500)
    assert linear["effect"] == pytest.approx(0.2) and linear["verdict"] == "reproduced"
    assert cliff["effect"] == pytest.approx(-0.5) and cliff["verdict"] == "not reproduced"


def test_pooled_nll_and_distance_claim():
    scored = {"H": [{"problem_id": "a", "nll": 8.0, "tokens": 4}, {"problem_id": "b", "nll": 2.0, "tokens": 1}],
              "G": [{"problem_id": "a", "nll": 2.0, "tokens": 4}, {"problem_id": "b", "nll": 1.0, "tokens": 1}],
              "W": [{"problem_id": "a", "nll": 4.0, "tokens": 4}, {"problem_id": "b", "nll": 1.0, "tokens": 1}]}
    assert distance.pooled_nll(scored["H"], n_boot=200).estimate == pytest.approx(10 / 5)
    c = distance.distance_claim(scored, n_boot=200)
    # per problem: a: 2 - (0.5+1)/2 = 1.25; b: 2 - 1 = 1
    assert c["claim"] == "SoT-3" and c["effect"] == pytest.approx(1.125)


def test_training_sets_of_step_04_compare_p_with_h_on_the_same_problems():
    h = [{"problem_id": "a"}, {"problem_id": "b"}]
    assert distance.training_sets(h, [{"problem_id": "a"}], [h[0]]) == {"P": [{"problem_id": "a"}], "H@P": [h[0]]}
    assert set(distance.training_sets(h, h, h)) == {"P"}  # nothing rejected: step 03's H is H@P
    assert distance.training_sets(h, [], []) == {}


def test_train_and_evaluate_stores_and_resumes(tmp_path):
    from _tiny import char_tokenizer, tiny_llama

    params = from_dict(ExperimentParams, {
        "experiment": "t", "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"epochs": 1, "batch_size": 2, "max_length": 256, "save_steps": 100, "lr": 1e-3},
        "eval": {"max_new_tokens": 4, "batch_size": 8}})
    tok = char_tokenizer()
    ps = problems(2)
    examples = [{"prompt": TASK.prompt(p), "completion": arith.render_stepwise(p)} for p in ps]
    store = JsonlStore(tmp_path / "results.jsonl")
    rec = sot.train_and_evaluate(store, "G", 3, examples, load_base=lambda: (tiny_llama(tok), tok), task=TASK,
                                 test_problems=ps, params=params, out_dir=tmp_path / "G_s0")
    assert rec["key"] == "G/s3" and rec["seed"] == 3 and rec["n_train"] == 2 and len(rec["correct"]) == 2
    assert (tmp_path / "G_s0" / "final" / "adapter_config.json").is_file()

    def fail():
        raise AssertionError("a stored run must not load the model again")

    again = sot.train_and_evaluate(JsonlStore(tmp_path / "results.jsonl"), "G", 3, examples, load_base=fail,
                                   task=TASK, test_problems=ps, params=params, out_dir=tmp_path / "G_s0")
    assert again["correct"] == rec["correct"] and again["completions"] == rec["completions"]

    # the evaluation was lost but the adapter is stored: it is loaded, not retrained
    (tmp_path / "results.jsonl").unlink()
    loss_written = (tmp_path / "G_s0" / "loss.json").stat().st_mtime_ns
    redone = sot.train_and_evaluate(JsonlStore(tmp_path / "results.jsonl"), "G", 3, examples,
                                    load_base=lambda: (tiny_llama(tok), tok), task=TASK, test_problems=ps,
                                    params=params, out_dir=tmp_path / "G_s0")
    assert redone["completions"] == rec["completions"]
    assert (tmp_path / "G_s0" / "loss.json").stat().st_mtime_ns == loss_written


def test_paraphrase_set_retries_rejected_rewrites_with_new_seeds():
    ps = problems(3)
    h = [{"prompt": TASK.prompt(p), "completion": p.solution, "problem_id": p.id} for p in ps]
    calls = []

    def fake(prompts, sampling):
        """First attempt: only the first trace keeps its answer; later attempts keep every answer."""
        calls.append((len(prompts), sampling.seed))
        answers = [re.search(r"#### (\d+)", prompt).group(1) for prompt in prompts]
        return [[f"1 + 1 = 2\n#### {a if sampling.seed > 0 or i == 0 else 0}"] for i, a in enumerate(answers)]

    p_set, h_at_p, final, log = distance.paraphrase_set(h, ps, TASK, model=None, tokenizer=None,
                                                        sampling=SamplingParams(temperature=0.7), style="micro",
                                                        attempts=3, generate_fn=fake)
    assert calls == [(3, 0), (2, 1)]  # the second attempt only retries the two rejected traces
    assert [e["problem_id"] for e in p_set] == [p.id for p in ps] and h_at_p == h
    assert all(r.kept for r in final) and [entry["kept"] for entry in log] == [1, 2]
    assert p_set[0]["completion"].endswith(f"#### {ps[0].answer}")
