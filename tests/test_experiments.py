"""The step modules' own logic on hand-made inputs: matched sets, corruption design, RFT data,
negatives, idle steps and probes, the ladder's checks. (Claim verdicts: tests/test_claim_rules.py;
the notebooks end to end: tests/test_smoke_pipeline.py.)"""

from __future__ import annotations

import random

import pytest

from cotrepro import pairs, train
from cotrepro.experiments import corrupt_steps, inspect_advantages, sample_teacher_traces, scale_synthetic_data
from cotrepro.params import ParamsError, from_dict
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
    verdicts = [TASK.verify(problem, text[o]) for o in outcomes]
    return [sample_teacher_traces.trace_record(problem, i, text[o], {"correct": v.correct, "extracted": v.extracted,
                                                                      "ungradable": v.ungradable})
            for i, (o, v) in enumerate(zip(outcomes, verdicts))]


def test_build_sets_matches_problems_and_equalises_sizes():
    ps = problems(4)
    graded = (graded_for(ps[0], ["G", "W", "G"]) + graded_for(ps[1], ["G", "G"])  # no W: dropped
              + graded_for(ps[2], ["U", "G"])  # an unparsable trace is not W: dropped
              + graded_for(ps[3], ["W", "G"]))
    sets = sample_teacher_traces.build_sets(TASK, ps, graded, "arith", max_sets=10)
    assert [len(sets[n]) for n in sample_teacher_traces.SETS] == [2, 2, 2, 2]
    for name in sample_teacher_traces.SETS:
        assert [e["problem_id"] for e in sets[name]] == [ps[0].id, ps[3].id]
    assert sets["H"][0]["completion"] == ps[0].solution == arith.render_human(ps[0])
    assert sets["S"][0]["completion"] == arith.render_stepwise(ps[0])
    assert all(TASK.verify(p, e["completion"]).correct for p, e in zip([ps[0], ps[3]], sets["G"]))
    assert not any(TASK.verify(p, e["completion"]).correct for p, e in zip([ps[0], ps[3]], sets["W"]))
    assert sets["G"][0]["prompt"] == TASK.prompt(ps[0], "arith")
    assert len(sample_teacher_traces.build_sets(TASK, ps, graded, "arith", max_sets=1)["H"]) == 1


def test_a_step_that_found_no_sets_fails_and_names_the_parameter():
    from dataclasses import replace

    from cotrepro.steps import Degenerate, load

    _, P = load("params/smoke/02_sample_teacher_traces.yaml")
    ps = problems(3)
    wrong_only = [g for p in ps for g in graded_for(p, ["W", "W"])]
    with pytest.raises(Degenerate, match="solved 0 of 6"):
        sample_teacher_traces.check_sets(P, wrong_only, {"H": []})
    some = graded_for(ps[0], ["G", "W"])
    sets = sample_teacher_traces.build_sets(TASK, ps, some, "arith", 10)
    with pytest.raises(Degenerate, match="raise task.n_train or sampling.k"):
        sample_teacher_traces.check_sets(replace(P, min_sets=5), some, sets)


def test_countdown_human_trace_is_the_solvers_equation_and_verifies():
    puzzle = countdown.generate_problems(1, seed=3)[0]
    puzzle = Problem(id=puzzle.id, question=puzzle.question, answer=puzzle.answer, meta=puzzle.meta)  # no solution
    trace = sample_teacher_traces.reference_solution(countdown.TASK, puzzle)
    assert trace is not None and "<answer>" in trace
    assert countdown.TASK.verify(puzzle, trace).correct


def test_as_completion_separates_prompt_and_trace():
    assert sample_teacher_traces.as_completion("Solution:", "x") == " x"
    assert sample_teacher_traces.as_completion("Answer:\n", "x") == "x"


def test_corrupted_sets_keep_level_zero_clean_and_leave_the_answer_line_gradable():
    ps = problems(3)
    g = [{"prompt": TASK.prompt(p, "arith"), "completion": arith.render_stepwise(p), "problem_id": p.id} for p in ps]
    sets, design = corrupt_steps.corrupted_sets(g, TASK, ["number", "delete"], [0.0, 0.25, 1.0])
    assert sets["G"] == g and set(sets) == {"G", "number@0.25", "number@1", "delete@0.25", "delete@1"}
    full = next(d for d in design if d["condition"] == "number@1")
    assert full["mean_fraction_hit"] == pytest.approx(1.0)
    assert all(a["completion"] != b["completion"] for a, b in zip(sets["number@1"], g))
    for e, p in zip(sets["delete@1"], ps):  # every step deleted: the answer line stays, and grades
        assert e["completion"].strip() == f"#### {p.answer}" and TASK.verify(p, e["completion"]).correct


def test_the_corruption_levels_must_hold_the_tested_ones():
    base = {"scale": "micro", "student": {"name": "micro:student"}, "traces_from": "x.yaml"}
    with pytest.raises(ParamsError, match="levels: must include 0.25"):
        from_dict(corrupt_steps.Params, {**base, "levels": [0.0, 0.5, 1.0]})
    with pytest.raises(ParamsError, match="increasing"):
        from_dict(corrupt_steps.Params, {**base, "levels": [0.0, 1.0, 0.25]})


def test_rft_data_adds_distinct_correct_self_samples_capped_per_problem():
    positives = [{"prompt": f"q{i}", "completion": f"g{i}", "problem_id": f"p{i}"} for i in range(3)]
    samples = [{"problem_id": "p0", "completion": c, "correct": ok, "parsed": True}
               for c, ok in (("a", True), ("a ", True), ("b", False), ("c", True), ("d", True))]
    data = train.rft_data(positives, samples, n=2, cap=2)
    assert [e["completion"] for e in data] == ["g0", "g1", "a", "c"]  # "a " is "a" again; the cap stops "d"
    assert [e["completion"] for e in train.rft_data(positives, samples, 2, cap=8, first=3)] == \
        ["g0", "g1", "a"]  # only the first three samples


def test_negatives_are_distinct_parsed_wrong_samples_up_to_the_limit():
    samples = [{"problem_id": "p", "completion": c, "correct": ok, "parsed": parsed}
               for c, ok, parsed in (("x", False, True), ("x", False, True), ("y", True, True), ("z", False, False),
                                     ("w", False, True), ("v", False, True))]
    assert pairs.negatives(samples, per_problem=2) == {"p": ["x", "w"]}
    # with the task's steps, a bare answer line (a student that answers directly) is not a negative
    bare = [{"problem_id": "q", "completion": c, "correct": False, "parsed": True} for c in ("#### 5", "2 + 3 = 6\n#### 6")]
    assert pairs.negatives(bare, 8, arith.TASK.steps) == {"q": ["2 + 3 = 6\n#### 6"]}
    assert pairs.negatives(bare[:1], 8, arith.TASK.steps) == {}


def test_the_ladder_must_reach_eight_times_the_compare_size():
    section = scale_synthetic_data.LadderSection
    with pytest.raises(ParamsError, match="8 x compare_size"):
        from_dict(section, {"sizes": [64, 128, 256], "compare_size": 64, "rft_sizes": [64], "dpo_sizes": [64],
                            "st3_size": 128})
    with pytest.raises(ParamsError, match="not on the ladder"):
        from_dict(section, {"sizes": [8, 16, 64], "compare_size": 8, "rft_sizes": [8, 32], "dpo_sizes": [8],
                            "st3_size": 16})
    with pytest.raises(ParamsError, match="increasing"):
        from_dict(section, {"sizes": [64, 8, 16], "compare_size": 8, "rft_sizes": [8], "dpo_sizes": [8],
                            "st3_size": 16})


def test_idle_flags_mark_valid_steps_whose_result_is_never_used_or_repeated():
    question = "Ann has 3 apples. She buys 4 more. She has 2 times as many. She buys 5 more. And 9 and 1."
    steps = ["3 + 4 = 7", "2 * 5 = 10", "7 * 2 = 14", "7 * 2 = 14", "9 - 1 = 9"]
    flags = inspect_advantages.idle_flags(question, steps, "14")
    # progress, unused result, progress, repeat, false claim (neither)
    assert flags == [False, True, False, True, None]


def test_inserted_idle_step_keeps_the_trace_correct_and_is_flagged_idle():
    problem = TASK.load("train", limit=5)[3]
    trace = problem.meta["stepwise"]
    new, index = inspect_advantages.insert_idle_step(problem.question, trace, random.Random(0))
    assert TASK.verify(problem, new).correct
    steps = TASK.steps(new)
    assert len(steps) == len(TASK.steps(trace)) + 1
    assert inspect_advantages.idle_flags(problem.question, steps, TASK.extract(new))[index] is True
