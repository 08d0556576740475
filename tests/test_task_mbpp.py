"""MBPP: the standard split, the field mapping, fence stripping, and every gold program passing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotrepro.grade import grade_records, summarize
from cotrepro.sandbox import ALLOW_ENV, CodeExecutionNotAllowed
from cotrepro.tasks import get_task
from cotrepro.tasks.mbpp import MBPPTask, build_program, extract_code

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "mbpp").is_dir(), reason="shared/data/mbpp absent")
TASK = get_task("mbpp")
ROW = {"task_id": 2,
       "text": "Write a function to find the similar elements from the given two tuple lists.",
       "code": "def similar_elements(test_tup1, test_tup2):\r\n"
               "  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) ",
       "test_list": ["assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
                     "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
                     "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)"],
       "test_setup_code": "", "challenge_test_list": []}
PROBLEM = TASK.from_record(ROW)


@pytest.fixture
def allowed(monkeypatch):
    monkeypatch.setenv(ALLOW_ENV, "1")


def test_from_record_maps_the_fields():
    assert PROBLEM.id == "2" and PROBLEM.question == ROW["text"] and PROBLEM.answer == ""
    assert PROBLEM.solution == ROW["code"].replace("\r\n", "\n")
    assert PROBLEM.meta["test_list"] == ROW["test_list"]
    assert PROBLEM.meta["test_setup_code"] == "" and PROBLEM.meta["challenge_test_list"] == []
    with pytest.raises(ValueError, match="test_list"):
        TASK.from_record({"task_id": 1, "text": "x"})


@needs_data
def test_standard_split_by_task_id():
    sizes = {"prompt": 10, "test": 500, "validation": 90, "train": 374}
    for split, size in sizes.items():
        problems = TASK.load(split, DATA)
        assert len(problems) == size
    test = TASK.load("test", DATA)
    assert [p.meta["task_id"] for p in test[:2]] == [11, 12] and test[-1].meta["task_id"] == 510
    assert len(TASK.load("test", DATA, limit=200, seed=0)) == 200
    with pytest.raises(ValueError, match="choose one of"):
        TASK.load("dev", DATA)


@needs_data
def test_hub_fallback_maps_the_same_fields(monkeypatch, tmp_path):
    """Without a local copy, rows of the hub's "full" config (same fields) give the same problems."""
    from cotrepro.tasks import mbpp

    rows = [json.loads(line) for line in open(DATA / "mbpp" / "mbpp.jsonl", encoding="utf-8")]
    asked = []

    def fake_hub_rows(path, split, name=None):
        asked.append((path, split, name))
        return [r for r in rows if r["task_id"] in mbpp.SPLIT_TASK_IDS[split]]

    monkeypatch.setattr(mbpp, "hub_rows", fake_hub_rows)
    from_hub = TASK.load("validation", tmp_path)  # tmp_path has no mbpp/mbpp.jsonl
    assert asked == [("google-research-datasets/mbpp", "validation", "full")]
    assert from_hub == TASK.load("validation", DATA)


def test_prompt_shows_the_text_and_first_assert():
    prompt = TASK.prompt(PROBLEM)
    assert ROW["text"] in prompt and ROW["test_list"][0] in prompt
    assert ROW["test_list"][1] not in prompt


@pytest.mark.parametrize("completion", [
    "```python\ndef f():\n    return 1\n```",
    "```\ndef f():\n    return 1\n```\n",
    "python\ndef f():\n    return 1",
    "def f():\n    return 1",
])
def test_extract_strips_fences(completion):
    assert extract_code(completion) == "def f():\n    return 1"


def test_extract_of_nothing_is_none():
    assert extract_code("```python\n```") is None


def test_program_is_code_then_setup_then_asserts():
    problem = TASK.from_record({**ROW, "test_setup_code": "SETUP = 1"})
    program = build_program("CODE = 1", problem)
    assert program.index("CODE") < program.index("SETUP") < program.index("assert")
    assert all(test in program for test in ROW["test_list"])


def test_gold_passes_and_wrong_code_fails(allowed):
    fenced = f"Here it is:\n```python\n{PROBLEM.solution}\n```"
    assert TASK.verify(PROBLEM, PROBLEM.solution).correct
    assert not TASK.verify(PROBLEM, fenced).correct  # prose outside the fence stays in the code
    assert TASK.verify(PROBLEM, f"```python\n{PROBLEM.solution}\n```").correct
    wrong = TASK.verify(PROBLEM, "def similar_elements(a, b):\n    return ()")
    assert not wrong.correct and wrong.detail["exec_status"] == "failed"
    assert "AssertionError" in wrong.detail["exec_error"]
    early = TASK.verify(PROBLEM, PROBLEM.solution + "\nimport sys\nsys.exit(0)")
    assert not early.correct
    empty = TASK.verify(PROBLEM, "```python\n```")
    assert not empty.correct and empty.extracted is None


def test_verify_requires_opt_in(monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(CodeExecutionNotAllowed):
        TASK.verify(PROBLEM, PROBLEM.solution)


def test_steps_are_top_level_statements():
    code = "# helper\nimport math\n\n@staticmethod\ndef f(x):\n    y = x\n    return y\n\nprint(f(1))\n"
    assert TASK.steps(code) == ["# helper\nimport math", "@staticmethod\ndef f(x):\n    y = x\n    return y",
                                "print(f(1))"]
    assert TASK.steps("def f(:\n  pass") == ["def f(:", "pass"]


@pytest.mark.slow
@needs_data
def test_every_gold_program_passes_its_tests():
    """All 974 gold programs, graded in parallel through the grader.

    A 30 s limit instead of the protocol's 5 s: task 123's gold needs 2 to 6 s of CPU, and a
    loaded test machine must not turn that into a flaky failure.
    """
    rows = [json.loads(line) for line in open(DATA / "mbpp" / "mbpp.jsonl", encoding="utf-8")]
    records = [{**row, "completion": row["code"]} for row in rows]
    graded = grade_records(MBPPTask(timeout_s=30), records, item_timeout_s=60, progress=False,
                           allow_code_execution=True)
    failed = {r["task_id"]: (r.get("exec_status"), r.get("exec_error"), r.get("error"))
              for r in graded if not r["correct"]}
    assert len(graded) == 974 and failed == {}
    assert summarize(graded)["accuracy"] == 1.0
