"""Step checking with operands: which claims are true, and which use only numbers the question gives
or earlier steps produced (`cotrepro.tasks.step_claims`)."""

from __future__ import annotations

import random
import time
from fractions import Fraction

import pytest

from cotrepro.tasks import arith
from cotrepro.tasks.step_claims import ALWAYS_AVAILABLE, StepCheck, check_steps, first_invalid_step

# the micro world's question for the traces of the brief: 40 / 4 = 10, 10 * 3 = 30, 30 + 15 = 45
PILES = ("Ann has 40 apples. She splits them equally into 4 piles and keeps one pile. She then has "
         "3 times as many apples. She buys 15 more apples. How many apples does Ann have now?")
BUYS = "Ben has 20 pens. He buys 8 more pens. He gives 5 pens to a friend. How many pens does Ben have now?"


def verdicts(checks: list[StepCheck]) -> list[tuple]:
    return [(c.text, c.correct, c.operands_valid, c.valid, c.bad_operands) for c in checks]


def test_a_correct_stepwise_trace_is_valid_throughout():
    checks = check_steps("40 / 4 = 10\n10 * 3 = 30\n30 + 15 = 45\n#### 45", PILES)
    assert verdicts(checks) == [("40 / 4 = 10", True, True, True, ()),
                                ("10 * 3 = 30", True, True, True, ()),
                                ("30 + 15 = 45", True, True, True, ())]


def test_a_wrong_operand_is_a_true_equation_but_an_invalid_step():
    checks = check_steps("20 + 9 = 29\n29 - 5 = 24\n#### 24", BUYS)  # the question says 8, not 9
    assert verdicts(checks) == [("20 + 9 = 29", True, False, False, ("9",)),
                                ("29 - 5 = 24", True, True, True, ())]  # 29 was produced above


def test_an_arithmetic_slip_has_valid_operands_and_later_steps_build_on_it():
    checks = check_steps("20 + 8 = 27\n27 - 5 = 22\n#### 22", BUYS)
    assert verdicts(checks) == [("20 + 8 = 27", False, True, False, ()),
                                # a wrong result used consistently is available: the error does not
                                # propagate to the verdict on the later step
                                ("27 - 5 = 22", True, True, True, ())]
    assert checks[0].value == 28 and checks[0].claimed == 27


def test_a_number_used_before_it_is_produced_is_unavailable():
    checks = check_steps("28 - 5 = 23\n20 + 8 = 28\n#### 23", BUYS)
    assert verdicts(checks) == [("28 - 5 = 23", True, False, False, ("28",)),
                                ("20 + 8 = 28", True, True, True, ())]


def test_numbers_written_outside_claims_are_not_sources():
    # the rule is "the question or an earlier claim's result": prose restating 28 does not count
    (check,) = check_steps("Ben now has 28 pens.\n28 - 5 = 23", BUYS)
    assert (check.operands_valid, check.bad_operands) == (False, ("28",))
    # nor does the claim's own result, and an operand used twice is listed once
    (check,) = check_steps("9 + 9 = 18", BUYS)
    assert check.bad_operands == ("9",)


def test_human_style_annotations_and_merged_expressions():
    trace = "Now she has 40/4=<<40/4=10>>10.\nShe has 10*3+15=<<10*3+15=45>>45 apples.\n#### 45"
    assert verdicts(check_steps(trace, PILES)) == [
        ("40/4=<<40/4=10>>10", True, True, True, ()),
        ("10*3+15=<<10*3+15=45>>45", True, True, True, ())]  # each literal 10, 3, 15 is available
    copied = check_steps("Now she has 40/4=<<40/4=10>>10.\nShe has 10*3+16=<<10*3+16=46>>46 apples.", PILES)
    assert verdicts(copied)[1] == ("10*3+16=<<10*3+16=46>>46", True, False, False, ("16",))
    # a merged expression's inner result (40/4 = 10) is never written, so it is no source
    merged = check_steps("She has 40/4*3=<<40/4*3=30>>30 apples.\nThat is 10*3=<<10*3=30>>30.", PILES)
    assert [(c.valid, c.bad_operands) for c in merged] == [(True, ()), (False, ("10",))]
    # a calculator claim's operands are those of its written expression and of its annotation
    mixed = check_steps("40/4*3=<<40/4*3=30>>30 and 30+15=<<29+16=45>>45", PILES)
    assert [(c.correct, c.bad_operands) for c in mixed] == [(True, ()), (True, ("29", "16"))]


def test_chains_make_their_first_result_available_to_the_second_claim():
    checks = check_steps("20+8=28-5=23", BUYS)
    assert [(c.text, c.valid) for c in checks] == [("20+8=28", True), ("28-5=23", True)]


def test_gsm8k_money_commas_and_decimals_compare_by_value():
    question = "Tom earns $1,500 a month and gives it equally to his 3 children. A pen costs $2.50."
    checks = check_steps("Each child gets 1500 / 3 = $500.\n4 * 2.5 = $10\n"
                         "Each gets $1,500/3 = $<<1500/3=500>>500.\n500 * 2.50 = 1,250", question)
    assert verdicts(checks) == [("1500 / 3 = 500", True, True, True, ()),
                                ("4 * 2.5 = 10", True, False, False, ("4",)),  # 4 is not given
                                ("1500/3 = <<1500/3=500>>500", True, True, True, ()),
                                ("500 * 2.50 = 1250", True, True, True, ())]


def test_the_rule_is_strict_about_constants_unless_the_caller_extends_it():
    question = "A film lasts 2 hours. How many minutes is that?"
    (strict,) = check_steps("2 * 60 = 120", question)
    assert ALWAYS_AVAILABLE == frozenset() and strict.correct and not strict.valid
    assert strict.bad_operands == ("60",)
    (lenient,) = check_steps("2 * 60 = 120", question, always_available={"60"})
    assert lenient.valid and lenient.bad_operands == ()


def test_cardinal_number_words_are_numbers_the_question_gives():
    question = "Mia has twenty-five stickers and buys three packs of a dozen. She gives away twice as many."
    checks = check_steps("3 * 12 = 36\n25 + 36 = 61\n61 - 2 * 5 = 51", question)
    assert [(c.valid, c.bad_operands) for c in checks] == [(True, ()), (True, ()), (False, ("2", "5"))]
    (check,) = check_steps("2 * 100 = 200", "It costs two hundred dollars.")  # 2 and 100, not 200
    assert check.valid
    (check,) = check_steps("200 / 4 = 50", "It costs two hundred dollars, split among often four.")
    assert check.bad_operands == ("200",)  # "often" holds no "ten"


def test_a_calculator_claim_makes_its_written_and_annotated_results_available():
    checks = check_steps("20+8=<<20+8=28>>27\n27-5=22 and 28-5=23", BUYS)
    assert [(c.correct, c.valid) for c in checks] == [(False, False), (True, True), (True, True)]


def test_signs_are_ignored_when_matching_operands():
    checks = check_steps("5 - 8 = -3\n-3 + 10 = 7", "It is 5 degrees. It cools by 8, then warms by 10.")
    assert [(c.correct, c.valid) for c in checks] == [(True, True), (True, True)]


def test_without_a_question_only_the_arithmetic_is_checked():
    for trace in ("20 + 9 = 29\n29 - 5 = 24", "20 + 8 = 27\n27 - 5 = 22", "28 - 5 = 23\n20 + 8 = 28",
                  "She has 10*3+15=<<10*3+15=45>>45 apples."):
        for check in check_steps(trace):
            assert check.operands_valid is None and check.bad_operands == ()
            assert check.valid == check.correct
    assert [c.valid for c in check_steps("20 + 8 = 27\n27 - 5 = 22")] == [False, True]


def test_first_invalid_step_finds_the_third_of_four_steps():
    trace = "20 + 8 = 28\n28 - 5 = 23\n23 * 2 = 46\n46 + 8 = 54"  # 2 is not given
    steps = trace.splitlines()
    assert first_invalid_step(trace, BUYS, steps) == 2
    assert first_invalid_step(trace, None, steps) is None  # arithmetic alone: all four are true
    slipped = "20 + 8 = 28\n28 - 5 = 23\n23 + 8 = 30\n30 - 5 = 25"
    assert first_invalid_step(slipped, BUYS, slipped.splitlines()) == 2
    good = "20 + 8 = 28\nSo he had 28 pens.\n28 - 5 = 23\n#### 23"
    assert first_invalid_step(good, BUYS, good.splitlines()) is None
    # steps of several lines (MATH, GSM8K): a result is available to every later step
    assert first_invalid_step("", BUYS, ["20 + 8 = 28\n28 - 5 = 23", "23 + 9 = 32"]) == 1


def test_first_invalid_step_agrees_with_check_steps_on_line_steps():
    rng = random.Random(5)
    for p in arith.generate_problems(60, seed=8):
        lines = p.meta["stepwise"].splitlines()
        bad = rng.randrange(len(lines) - 1)
        a, op, rest = lines[bad].split(" ", 2)
        lines[bad] = f"{int(a) + 1} {op} {rest}"  # an operand off by one: unavailable, or a slip
        trace = "\n".join(lines)
        first = next(c.line for c in check_steps(trace, p.question) if not c.valid)
        assert first_invalid_step(trace, p.question, lines) == first == bad


def test_generated_gold_traces_are_valid_in_both_styles():
    for p in arith.generate_problems(200, seed=13):
        for trace in (arith.render_human(p), arith.render_stepwise(p)):
            checks = check_steps(trace, p.question)
            assert checks and all(c.valid for c in checks), (p.question, trace)


def test_thousands_commas_in_a_trace_are_one_number():
    (check,) = check_steps("1,500 / 3 = 500")  # read as "500 / 3 = 500" before
    assert check.correct and check.value == Fraction(500)
    assert [c.text for c in check_steps("3,4 and 5 + 6 = 11")] == ["5 + 6 = 11"]


def test_the_check_is_linear_on_a_megabyte_of_pathological_text():
    rng = random.Random(0)
    dense = " ".join(f"{rng.randint(2, 99)}+{rng.randint(2, 99)}={rng.randint(2, 99)}"
                     for _ in range(20_000))  # distinct claims, all on one line
    parts = ["(" * 150_000 + "1+1=2",  # unmatched parentheses (quadratic to balance naively)
             "1+1=<<1+1=2>>2 " * 10_000,  # annotations on one line (quadratic to blank naively)
             "1+" * 75_000 + "1=3",  # one huge left-hand side
             "20 + 8 = 28\n" * 12_000,  # a degenerate loop
             "1" + " " * 150_000 + "x = 2",  # long whitespace before an "="
             "1+1=" + "9" * 100_000,  # a huge "result"
             dense]
    completion = "\n".join(parts)
    assert len(completion) > 1_000_000
    started = time.perf_counter()
    checks = check_steps(completion, BUYS)
    assert time.perf_counter() - started < 2  # backtracking or quadratic scans take minutes
    assert len(checks) == 1 + 10_000 + 12_000 + 20_000
    steps = completion.splitlines()
    started = time.perf_counter()
    assert first_invalid_step(completion, None, steps) == steps.index(dense)
    assert time.perf_counter() - started < 2  # the dense line is the first with a false claim


@pytest.mark.parametrize("trace", ["1+1=<<1+1=2>>2", "5+12=17-2=15", "(2+3)*4 = 20.", "10/3 = 3.33"])
def test_valid_is_recomputed_when_a_check_is_copied(trace):
    from dataclasses import replace

    for check in check_steps(trace, "1 2 3 4 5 10 12"):
        flipped = replace(check, correct=not check.correct)
        assert flipped.valid == (flipped.correct and flipped.operands_valid is not False)
