"""Countdown: loading the real copies, the strict and TinyZero graders, the generator, the solver."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotrepro.tasks import DataNotFound, get_task
from cotrepro.tasks import countdown
from cotrepro.tasks.countdown import CountdownTask, generate_problems, solve

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "countdown").is_dir(), reason="shared/data/countdown absent")

STRICT, TINYZERO = CountdownTask(), CountdownTask(tinyzero=True)
PUZZLE = STRICT.from_record({"nums": [3, 5, 7], "target": 22})  # 3 * 5 + 7


def answer(expression: str) -> str:
    return f"I try some sums.\n<answer>{expression}</answer>"


def test_registry_returns_the_strict_task():
    assert get_task("countdown") is countdown.TASK and not countdown.TASK.tinyzero


@needs_data
@pytest.mark.parametrize("split, size, first", [
    ("test", 1024, ("test/hf327680", [79, 17, 60], 36)),
    ("cd3_test", 256, ("cd3_test/0", [30, 100, 93], 23)),
    ("train", 11264, ("train/hf0", [44, 19, 35], 98)),
])
def test_load_maps_the_real_files(split, size, first):
    problems = STRICT.load(split, DATA)
    assert len(problems) == size
    assert (problems[0].id, problems[0].meta["nums"], problems[0].meta["target"]) == first
    assert problems[0].answer == str(first[2])
    assert len({p.id for p in problems}) == size


@needs_data
def test_limit_samples_by_seed_and_keeps_row_ids():
    a, b = STRICT.load("cd3_test", DATA, limit=5, seed=1), STRICT.load("cd3_test", DATA, limit=5, seed=2)
    assert len(a) == 5 and [p.id for p in a] != [p.id for p in b]
    full = {p.id: p for p in STRICT.load("cd3_test", DATA)}
    assert all(full[p.id].meta == p.meta for p in a)


@needs_data
@pytest.mark.parametrize("split", ["test", "cd3_test"])
def test_solver_answers_to_real_problems_verify(split):
    sample = STRICT.load(split, DATA, limit=100, seed=0)
    solutions = {p.id: solve(p.meta["nums"], p.meta["target"]) for p in sample}
    solved = [p for p in sample if solutions[p.id] is not None]
    print(f"{split}: {len(solved)}/{len(sample)} sampled problems solvable")
    # the data were built solvable; a mapping bug (nums/target swapped or misparsed) breaks this
    assert len(solved) == len(sample)
    for p in solved:
        assert STRICT.verify(p, answer(solutions[p.id])).correct, (p, solutions[p.id])
        assert TINYZERO.verify(p, answer(solutions[p.id])).correct, (p, solutions[p.id])


def test_hub_fallback_maps_rows_and_keeps_hub_row_numbers(tmp_path, monkeypatch):
    rows = [{"target": 10 + i, "nums": [i, 10], "prompt": "dropped"} for i in range(328_704)]
    monkeypatch.setattr(countdown, "hub_rows", lambda path, split: rows)
    problems = STRICT.load("test", tmp_path, limit=None)
    assert len(problems) == 1024
    assert problems[0].id == "test/hf327680"
    assert problems[0].meta == {"nums": [327_680, 10], "target": 327_690}


def test_split_without_hub_copy_raises_data_not_found(tmp_path):
    with pytest.raises(DataNotFound, match="cd3_test"):
        STRICT.load("cd3_test", tmp_path)


def test_unknown_split_and_bad_record_are_refused():
    with pytest.raises(ValueError, match="choose one of"):
        STRICT.load("dev")
    with pytest.raises(ValueError, match="nums, target"):
        STRICT.from_record({"numbers": [1, 2]})


def test_prompt_shows_numbers_as_a_list_and_the_target():
    text = STRICT.prompt(PUZZLE)
    assert "Using the numbers [3, 5, 7], create an equation that equals 22." in text
    assert text.endswith("Solution:")


@pytest.mark.parametrize("expression", ["3 * 5 + 7", "(5 * 3) + 7", "7 + 3 * 5", "((3*5)+7)"])
def test_correct_answers_pass_both_graders(expression):
    for task in (STRICT, TINYZERO):
        verdict = task.verify(PUZZLE, answer(expression))
        assert verdict.correct and verdict.extracted == expression


@pytest.mark.parametrize("expression, reason", [
    ("3 * 5 + 7 + 0", "numbers used"),  # a number not given
    ("3 * 5 + 7 - 7 + 7", "numbers used"),  # a number reused
    ("5 * 3", "numbers used"),  # a number missing
    ("3 * 5 - 7", "value 8"),  # wrong target
    ("3 ** 5 + 7", "Pow"),
    ("3 * x + 7", "Name"),
    ("abs(3) * 5 + 7", "Call"),
    ("3.0 * 5 + 7", "not an integer"),
    ("'3' * 5 + 7", "not an integer"),
    ("(lambda: 3)() * 5 + 7", "Call"),
    ("(3).real * 5 + 7", "Attribute"),
    ("9 ** 9 ** 9 ** 9", "Pow"),
    ("3 // 1 * 5 + 7", "FloorDiv"),
    ("-3 * -5 + 7", "UnaryOp"),  # strict: no unary minus
    ("True * 3 * 5 + 7", "not an integer"),
    ("", "not an expression"),
    ("3 * 5 + 7 = 22", "not an expression"),
    ("x" * 600, "too long"),
    ("3 * 5 + 7\x00", "not an expression"),
    ("(" * 300 + "3" + ")" * 300, "too long"),
])
def test_wrong_answers_fail_the_strict_grader(expression, reason):
    verdict = STRICT.verify(PUZZLE, answer(expression))
    assert not verdict.correct
    assert reason in verdict.detail["reason"]


def test_division_by_zero_is_wrong():
    puzzle = STRICT.from_record({"nums": [4, 2, 2], "target": 4})
    verdict = STRICT.verify(puzzle, answer("4 / (2 - 2)"))
    assert not verdict.correct and verdict.detail["reason"] == "division by zero"
    assert not TINYZERO.verify(puzzle, answer("4 / (2 - 2)")).correct


def test_division_is_exact():
    puzzle = STRICT.from_record({"nums": [1, 3, 3], "target": 1})
    assert STRICT.verify(puzzle, answer("(1 / 3) * 3")).correct
    assert not STRICT.verify(puzzle, answer("1 / 3 + 3")).correct


def test_missing_tags_and_last_answer_wins():
    assert STRICT.verify(PUZZLE, "3 * 5 + 7 = 22").extracted is None
    assert not STRICT.verify(PUZZLE, "<answer>3 * 5 + 7").correct
    assert STRICT.verify(PUZZLE, "<answer>3 + 5</answer> no, <answer>3*5+7</answer>").correct
    assert not STRICT.verify(PUZZLE, "<answer>3*5+7</answer> no, <answer>3 + 5</answer>").correct


def test_tinyzero_mode_reads_only_the_last_line():
    early = "<answer>3 * 5 + 7</answer>\nThat is my answer."
    assert STRICT.verify(PUZZLE, early).correct
    assert not TINYZERO.verify(PUZZLE, early).correct
    # the generation is stripped first, as Shape of Thought's eval does
    assert TINYZERO.verify(PUZZLE, "work\n<answer>3 * 5 + 7</answer>\n\n").correct


def test_tinyzero_mode_follows_python_eval():
    assert TINYZERO.verify(PUZZLE, answer("-(3 * -5) + 7")).correct  # unary minus: eval allows it
    assert not TINYZERO.verify(PUZZLE, answer("abs(3) * 5 + 7")).correct  # letters
    assert not TINYZERO.verify(PUZZLE, answer("3 * 5 + 7 + 0")).correct  # 0 is not given
    verdict = TINYZERO.verify(STRICT.from_record({"nums": [9, 9, 9, 9], "target": 1}),
                              answer("9 ** 9 ** 9 ** 9"))
    assert not verdict.correct and "OverflowError" in verdict.detail["reason"]  # refused, not hung


def test_generated_reference_solutions_verify():
    problems = generate_problems(300, seed=7)
    for p in problems:
        assert STRICT.verify(p, p.solution).correct, p
        assert TINYZERO.verify(p, p.solution).correct, p
        assert STRICT.extract(p.solution) == p.meta["expression"]
        assert 10 <= p.meta["target"] <= 100 and all(1 <= n <= 99 for n in p.meta["nums"])
        lines = STRICT.steps(p.solution)
        assert len(lines) == len(p.meta["nums"])  # one line per operation, then the answer
    assert {len(p.meta["nums"]) for p in problems} == {3, 4}


def test_generator_is_deterministic_for_a_seed():
    assert generate_problems(20, seed=3) == generate_problems(20, seed=3)
    assert generate_problems(20, seed=3) != generate_problems(20, seed=4)


def test_generator_refuses_impossible_ranges():
    with pytest.raises(ValueError, match="widen"):
        generate_problems(1, seed=0, n_numbers=(3, 3), max_number=2, min_target=90)
