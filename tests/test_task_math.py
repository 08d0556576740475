"""MATH and MATH500: loading, answer extraction, math-verify grading on the real data, steps."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import pytest

from cotrepro.tasks import get_task
from cotrepro.tasks import math as math_task
from cotrepro.tasks.hub import read_jsonl
from cotrepro.tasks.math import MATH_SUBJECTS, last_boxed

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "math").is_dir() or not (DATA / "math500").is_dir(),
                                reason="shared/data/math or math500 absent")

MATH, MATH500 = get_task("math"), get_task("math500")
HALF = MATH.from_record({"problem": "Half of 1?", "solution": "It is $\\boxed{\\frac{1}{2}}$."})

# Human solutions of MATH500 that do not grade correct against its `answer` field. Empty: every
# one of the 500 does. An item added here must say why; the test fails if the list is not exact.
MATH500_EXCEPTIONS: dict[str, str] = {}

# MATH items whose human solution does not grade correct against its own last \boxed{} (the gold),
# all because the gold is ungradable. The test samples the splits and always includes these.
MATH_EXCEPTIONS = {
    "train/number_theory/7115.json": "the solution has no \\boxed{} answer",
    "train/number_theory/7117.json": "the solution has no \\boxed{} answer",
    # math-verify's unit normalisation drops a spaced single letter it reads as a unit
    # ("b", "c", "t"), so `a + b + c` and `\sin^2 t` parse to no expression
    "train/intermediate_algebra/1918.json": "gold `a + b + c`: math-verify drops `b + c` as units",
    "train/precalculus/1311.json": "gold `\\sin^2 t`: math-verify drops `t` as a unit (ton)",
}
SAMPLE_PER_SPLIT = 300


def test_registry_maps_math_and_math500_onto_one_module():
    assert (MATH.name, MATH500.name) == ("math", "math500")
    assert isinstance(MATH500, math_task.MathTask) and not MATH500.needs_code_execution
    with pytest.raises(ValueError, match="choose one of math, math500"):
        math_task.TASK.variant("math1000")


@needs_data
def test_load_maps_the_real_files():
    train, test, m500 = MATH.load("train", DATA), MATH.load("test", DATA), MATH500.load("test", DATA)
    assert (len(train), len(test), len(m500)) == (7500, 5000, 500)
    assert (train[0].id, test[-1].id) == ("train/algebra/0.json", "test/precalculus/24348.json")
    assert len({p.id for p in train + test}) == 12500
    first = m500[0]
    assert first.id == "test/precalculus/807.json"
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"  # the answer field, verbatim
    assert first.meta == {"level": 2, "subject": "Precalculus"}
    by_id = {p.id: p for p in test}
    assert by_id["test/precalculus/807.json"].question == first.question
    assert by_id["test/precalculus/807.json"].meta["type"] == "Precalculus"
    with pytest.raises(ValueError, match="choose one of test"):
        MATH500.load("train", DATA)


@needs_data
def test_every_math500_solution_grades_correct_against_its_answer():
    problems = MATH500.load("test", DATA)
    assert len(problems) == 500
    failing = {p.id for p in problems if not MATH500.verify(p, p.solution).correct}
    assert failing == set(MATH500_EXCEPTIONS)


@needs_data
@pytest.mark.parametrize("split", ["train", "test"])
def test_math_solutions_grade_correct_on_a_seeded_sample(split):
    problems = MATH.load(split, DATA)
    sample = MATH.load(split, DATA, limit=SAMPLE_PER_SPLIT, seed=0)
    listed = [p for p in problems if p.id in MATH_EXCEPTIONS]
    assert len(listed) == sum(i.startswith(split) for i in MATH_EXCEPTIONS)
    checked = {p.id: p for p in sample + listed}
    verdicts = {pid: MATH.verify(p, p.solution) for pid, p in checked.items()}
    failing = {pid for pid, v in verdicts.items() if not v.correct}
    assert failing == {pid for pid in MATH_EXCEPTIONS if pid.startswith(split)}
    assert all(verdicts[pid].ungradable for pid in failing)


@pytest.mark.parametrize("text, content", [
    ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("$x = \\boxed 5$.", "5"),
    ("\\fbox{7}", "7"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces do not close the box
    ("\\boxed{30^\\circ.}", "30^\\circ"),  # a sentence's period inside the box is dropped
    ("\\boxed{3} and then \\boxed{\\frac{1}{", "3"),  # an unclosed (truncated) box is skipped
    ("no box here", None),
])
def test_last_boxed(text, content):
    assert last_boxed(text) == content


@pytest.mark.parametrize("completion, extracted", [
    ("So x = 2.\nFinal Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
    ("Final Answer: The final answer is 2.5. I hope it is correct.", "2.5"),
    ("so the final answer is $7$.", "7"),
    ("$\\boxed{1}$\nFinal Answer: The final answer is $2$. I hope it is correct.", "2"),  # later wins
    ("Final Answer: The final answer is $2$. I hope it is correct.\nActually \\boxed{3}", "3"),
    ("\\boxed{4}. The final answer is positive, because both factors are.", "4"),  # prose ignored
    ("I do not know.", None),
])
def test_extract_reads_the_later_of_box_and_minerva_line(completion, extracted):
    assert MATH.extract(completion) == extracted


@pytest.mark.parametrize("completion", ["$\\boxed{0.5}$", "\\boxed{\\dfrac12}", "\\boxed{2^{-1}}",
                                        "Final Answer: The final answer is $1/2$. I hope it is correct."])
def test_equivalent_forms_grade_correct(completion):
    verdict = MATH.verify(HALF, completion)
    assert verdict.correct and not verdict.ungradable


def test_wrong_unparseable_and_ungradable():
    wrong = MATH.verify(HALF, "\\boxed{\\frac{1}{3}}")
    assert (wrong.correct, wrong.extracted, wrong.detail) == (False, "\\frac{1}{3}", {"source": "boxed"})
    none = MATH.verify(HALF, "The value is one half, probably.")
    assert (none.correct, none.extracted, none.ungradable) == (False, None, False)
    no_gold = MATH.from_record({"problem": "p", "solution": "no box"})
    assert no_gold.answer == "" and MATH.verify(no_gold, "\\boxed{1}").ungradable
    garbled = MATH500.from_record({"problem": "p", "solution": "s", "answer": "???"})
    verdict = MATH500.verify(garbled, "\\boxed{???}")
    assert verdict.ungradable and not verdict.correct


def test_digit_group_separators_are_read_as_one_number():
    problem = MATH.from_record({"problem": "p", "solution": "$\\boxed{\\frac{1}{29,\\!322,\\!216}}$"})
    assert MATH.verify(problem, "\\boxed{\\frac{1}{29322216}}").correct


def test_verify_runs_off_the_main_thread():
    # math-verify's own timeouts use signal.alarm, which raises off the main thread; they are off
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(MATH.verify, HALF, "\\boxed{0.5}").result().correct


def test_steps_split_at_blank_lines_and_sentence_ends_but_not_inside_displays():
    trace = ("We compute the sum.\nIt is\n\\begin{align*}\nx &= 1.\\\\\ny &= 2.\n\\end{align*}so done.\n\n"
             "[asy]\ndraw((0,0)--(1,1));\n\n[/asy]\nHence $\\boxed{3}$.")
    assert MATH.steps(trace) == [
        "We compute the sum.",
        "It is\n\\begin{align*}\nx &= 1.\\\\\ny &= 2.\n\\end{align*}so done.",
        "[asy]\ndraw((0,0)--(1,1));\n\n[/asy]\nHence $\\boxed{3}$.",
    ]
    assert MATH.steps("One paragraph. Two sentences.") == ["One paragraph. Two sentences."]


def test_prompts_come_from_the_math_templates_for_both_variants():
    problem = MATH500.from_record({"problem": "What is 1+1?", "solution": "\\boxed{2}", "answer": "2"})
    zero_shot = MATH500.prompt(problem)
    assert zero_shot == MATH.prompt(problem) and zero_shot.endswith("Problem:\nWhat is 1+1?\n\nSolution:")
    assert MATH.prompt(problem, "minerva_few_shot").count("Problem:\n") == 5


@needs_data
def test_hub_fallback_concatenates_subjects_and_maps_rows(tmp_path, monkeypatch):
    local = read_jsonl(DATA / "math" / "test.jsonl")
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        subject_rows = [r for r in local if r["unique_id"].split("/")[1] == name][:2]
        return [{k: r[k] for k in ("problem", "level", "type", "solution")} for r in subject_rows]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    problems = MATH.load("test", tmp_path)
    assert calls == [("EleutherAI/hendrycks_math", subject, "test") for subject in MATH_SUBJECTS]
    assert [p.id for p in problems] == [f"test/{i}" for i in range(14)]  # hub rows have no unique_id
    assert problems[0].question == local[0]["problem"]
    assert problems[0].answer == last_boxed(local[0]["solution"])
    assert problems[2].meta["type"] == "Counting & Probability"


@needs_data
def test_math500_hub_fallback_gives_the_local_problems(tmp_path, monkeypatch):
    rows = read_jsonl(DATA / "math500" / "test.jsonl")  # the hub rows carry the same fields
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None, split=None:
                        rows if (path, split) == ("HuggingFaceH4/MATH-500", "test") else [])
    assert MATH500.load("test", tmp_path) == MATH500.load("test", DATA)
