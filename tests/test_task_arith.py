"""Arithmetic word problems: generator, the two written styles, extraction and the step checker."""

from __future__ import annotations

import json
import time
from collections import Counter
from fractions import Fraction
from statistics import mean

import pytest

from cotrepro.tasks import get_task
from cotrepro.tasks.arith import (MAX_VALUE, ArithTask, check_steps, fraction_true_steps, generate_problems,
                                  render_human, render_question, render_stepwise, split_of)

TASK = ArithTask()
PROBLEMS = generate_problems(400, seed=11)


def test_registry_returns_the_task():
    assert isinstance(get_task("arith"), ArithTask)


def test_both_renderings_verify_and_hold_only_true_claims():
    for p in PROBLEMS:
        human, stepwise = render_human(p), render_stepwise(p)
        assert p.solution == human and p.meta["stepwise"] == stepwise
        for trace in (human, stepwise):
            assert TASK.verify(p, trace).correct and TASK.extract(trace) == p.answer
            assert trace.splitlines()[-1] == f"#### {p.answer}"
            assert fraction_true_steps(trace) == 1.0, trace


def test_stepwise_writes_each_gold_step_on_its_own_line():
    for p in PROBLEMS[:50]:
        gold = [f"{s['a']} {s['op']} {s['b']} = {s['result']}" for s in p.meta["steps"]]
        # the final "#### N" line is the answer, not a step: steps() leaves it out (changed on purpose)
        assert TASK.steps(render_stepwise(p)) == gold
        assert render_stepwise(p).splitlines() == gold + [f"#### {p.answer}"]
        assert [c.text for c in check_steps(render_stepwise(p))] == gold


def test_steps_leave_out_every_final_answer_line():
    for p in PROBLEMS[:50]:
        steps = TASK.steps(render_human(p))
        assert steps and not any(line.lstrip().startswith("####") for line in steps)
        assert steps == [line for line in render_human(p).splitlines()[:-1] if line.strip()]
    assert TASK.steps("5 + 12 = 17\n\n  #### 17\n17 * 2 = 34\n#### 34") == ["5 + 12 = 17", "17 * 2 = 34"]


def test_human_style_is_terser_with_merged_steps_and_calculator_annotations():
    human = [render_human(p) for p in PROBLEMS]
    stepwise = [render_stepwise(p) for p in PROBLEMS]
    assert mean(len(t.splitlines()) for t in human) < mean(len(t.splitlines()) for t in stepwise) - 0.5
    assert all("<<" in t for t in human)
    claims = [check_steps(t) for t in human]
    # some gold steps are skipped: one merged expression ("5+3*4") holds two operations
    assert sum(map(len, claims)) < sum(len(p.meta["steps"]) for p in PROBLEMS)
    assert any(sum(map(c.expression.count, "+-*/")) == 2 for cs in claims for c in cs)
    # some lines hold several claims
    assert any(len({c.line for c in cs}) < len(cs) for cs in claims)


def test_generated_problems_respect_their_bounds():
    for p in PROBLEMS:
        steps = p.meta["steps"]
        assert 2 <= len(steps) <= 4
        # the number range grew from 2..99 to 2..MAX_VALUE = 120 (changed on purpose)
        assert all(2 <= v <= MAX_VALUE for s in steps for v in (s["a"], s["b"], s["result"]))
        assert all(s["a"] % s["b"] == 0 for s in steps if s["op"] == "/")
        assert p.answer == str(steps[-1]["result"])
        assert render_question(p) == p.question and p.question.endswith("have now?")
        assert json.loads(json.dumps(p.meta)) == p.meta
    big = generate_problems(100, seed=1, n_steps=(5, 6), max_value=50)
    assert {len(p.meta["steps"]) for p in big} == {5, 6}
    assert max(s["result"] for p in big for s in p.meta["steps"]) <= 50


def test_answers_are_spread_evenly_over_the_whole_range():
    assert MAX_VALUE == 120
    answers = Counter(int(p.answer) for p in generate_problems(4000, seed=5))
    assert set(answers) == set(range(2, MAX_VALUE + 1))  # every answer 2..120 occurs, values above 99 too
    uniform = 4000 / (MAX_VALUE - 1)
    # no constant answer scores more than about twice uniform guessing
    assert max(answers.values()) <= 2 * uniform


def test_question_reads_as_a_word_problem():
    p = PROBLEMS[0]
    assert p.question.startswith(f"{p.meta['name']} has {p.meta['start']} {p.meta['item']}.")
    assert TASK.prompt(p) == f"Question: {p.question}\nAnswer:\n"


def test_generator_is_deterministic_for_a_seed():
    assert generate_problems(50, seed=2) == generate_problems(50, seed=2)
    assert generate_problems(50, seed=2) != generate_problems(50, seed=3)


def test_bad_generator_settings_are_refused():
    with pytest.raises(ValueError, match="n_steps"):
        generate_problems(1, seed=0, n_steps=(3, 2))
    with pytest.raises(ValueError, match="max_value"):
        generate_problems(1, seed=0, max_value=5)


def test_check_steps_flags_a_corrupted_claim_and_accepts_true_ones():
    checks = check_steps("Ann has 5 apples.\n5 + 12 = 18\n18 - 2 = 16\n#### 16")
    assert [(c.text, c.correct, c.line) for c in checks] == [("5 + 12 = 18", False, 1),
                                                              ("18 - 2 = 16", True, 2)]
    assert checks[0].value == 17 and checks[0].claimed == 18
    assert fraction_true_steps("5 + 12 = 18\n18 - 2 = 16") == 0.5


@pytest.mark.parametrize("trace, expected", [
    ("She has 5+3*4=<<5+3*4=17>>17 apples.", [True]),
    ("She has 5+3*4=<<5+3*4=17>>18 apples.", [False]),  # written result differs
    ("She has 5+3*4=<<5+3*4=20>>20 apples.", [False]),  # precedence ignored
    ("Natalia sold $48/2 = $<<48/2=24>>24 clips.", [True]),  # GSM8K money style
    ("<<3*4=13>> and <<2+2=4>>", [False, True]),  # bare annotations
    ("5+12=17-2=15", [True, True]),  # a chain is two claims
    ("so 3 x 4 = 12 and 12 ÷ 4 = 3", [True, True]),
    ("(2+3)*4 = 20.", [True]),
    ("2 * (3 + 4) = 14", [True]),
    ("10/3 = 3.33", [False]),  # rounded: not exact
    ("7/2 = 3.5", [True]),
    ("4/0 = 1", [False]),
    ("-3 + 5 = 2", [True]),
    ("Ann has 5 apples. #### 17", []),
    ("in 2020 = the year", []),
    ("x = 5 and 5 = 5", []),  # no operation on the left
    ("1+1=2 2+2=5", [True, False]),
    ("She has 5 apples. 3 + 4 = 7", [True]),  # the full stop is not a decimal point
    ("On day-3 + 4 = 7 she rests.", [True]),  # a hyphen is not a minus sign
    ("<<2*3=six>> 4+4=8", [True]),  # a non-numeric annotation is no claim
])
def test_check_steps_reads_claims_in_any_style(trace, expected):
    assert [c.correct for c in check_steps(trace)] == expected


def test_check_steps_stays_fast_on_adversarial_lines():
    started = time.perf_counter()
    for line in ["1 " + "  +  2  " * 2000 + "= 3", "1+" * 5000 + "x", "(" * 5000 + "1=1",
                 "1+1=2 " * 3000, "<<" * 5000 + "=>>"]:
        check_steps(line)
    assert time.perf_counter() - started < 5  # backtracking regexes took minutes here


def test_fraction_true_steps_is_none_without_claims():
    assert fraction_true_steps("She has some apples.\n#### 4") is None


@pytest.mark.parametrize("completion, extracted, correct", [
    ("5 + 12 = 17\n#### 17", "17", True),
    ("#### 12\nno wait\n#### 17", "17", True),
    ("#### 17.0", "17.0", True),
    ("#### 17.5", "17.5", False),
    ("#### 1,017", "1017", False),
    ("the answer is 17", None, False),
])
def test_extract_reads_the_last_final_answer_line(completion, extracted, correct):
    problem = TASK.from_record({"question": "q", "answer": "17"})
    verdict = TASK.verify(problem, completion)
    assert (verdict.extracted, verdict.correct) == (extracted, correct)


def test_unparsable_gold_is_ungradable():
    verdict = TASK.verify(TASK.from_record({"question": "q", "answer": "seventeen"}), "#### 17")
    assert verdict.ungradable and not verdict.correct


def test_from_record_round_trips_a_generated_problem():
    p = PROBLEMS[3]
    row = {"id": p.id, "question": p.question, "answer": p.answer, "solution": p.solution, "meta": p.meta}
    assert TASK.from_record(json.loads(json.dumps(row))) == p
    with pytest.raises(ValueError, match="question and answer"):
        TASK.from_record({"question": "q"})


def test_splits_are_disjoint_and_reproducible():
    train, test = TASK.load("train", limit=900), TASK.load("test", limit=100)
    assert len(train) == 900 and len(test) == 100
    assert not {p.question for p in train} & {p.question for p in test}
    assert all(split_of(p.question) == "test" for p in test)
    assert TASK.load("test", limit=100) == test
    assert all(len(p.meta["steps"]) == 3 for p in ArithTask(n_steps=(3, 3)).load("test", limit=5))


def test_claim_values_are_exact_fractions():
    (check,) = check_steps("7/2 = 3.5")
    assert check.value == Fraction(7, 2) == check.claimed
