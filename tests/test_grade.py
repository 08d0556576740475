"""The parallel grader: input checks naming the line, a hard per-item limit, honest accuracy."""

from __future__ import annotations

import json
import os
import time

import pytest

from cotrepro.grade import (RecordError, grade_file, grade_problems, grade_records, read_records,
                            summarize)
from cotrepro.sandbox import ALLOW_ENV, CodeExecutionNotAllowed
from cotrepro.tasks.base import Problem, Verdict


class HangingTask:
    """A toy task whose grader hangs on "hang" and dies on "crash" (pickled into the workers)."""

    name = "hanging"
    needs_code_execution = False

    def from_record(self, record, index=0):
        return Problem(id=str(index), question=record["question"], answer=record["answer"])

    def verify(self, problem, completion):
        if completion == "hang":
            while True:
                time.sleep(1)
        if completion == "crash":
            os._exit(3)
        extracted = completion if completion.isdigit() else None
        return Verdict(extracted == problem.answer, extracted)


def write_jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_missing_completion_names_the_line(tmp_path):
    good = {"question": "q", "answer": "#### 1", "completion": "1"}
    lacking = {"question": "q", "answer": "#### 1"}
    path = write_jsonl(tmp_path / "in.jsonl", [json.dumps(good), "", json.dumps(lacking)])
    with pytest.raises(RecordError, match=rf"{path}:3: missing field 'completion'"):
        read_records(path, ["completion"])
    with pytest.raises(RecordError, match=":3:"):
        grade_file("gsm8k", path)


def test_malformed_json_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [json.dumps({"completion": "1"}), "{not json"])
    with pytest.raises(RecordError, match=rf"{path}:2: malformed JSON"):
        read_records(path)


def test_record_of_another_task_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [json.dumps({"problem": "p", "completion": "1"})])
    with pytest.raises(RecordError, match=":1: not a gsm8k record"):
        grade_file("gsm8k", path)


def test_hanging_item_is_killed_and_the_rest_graded():
    completions = {1: "hang", 3: "crash"}
    records = [{"question": "q", "answer": str(i), "completion": completions.get(i, str(i))}
               for i in range(6)]
    start = time.monotonic()
    graded = grade_records(HangingTask(), records, workers=2, item_timeout_s=1.5, progress=False)
    assert time.monotonic() - start < 15  # includes starting the workers
    assert graded[1]["error"] == "timeout" and graded[1]["correct"] is False
    assert graded[3]["error"] == "worker died" and graded[3]["correct"] is False
    assert [r["correct"] for r in graded] == [True, False, True, False, True, True]
    assert [r["question"] for r in graded] == ["q"] * 6  # native fields kept, order kept


def test_accuracy_counts_unparsed_as_wrong(tmp_path):
    records = [{"question": "q", "answer": "#### 7", "completion": c}
               for c in ("#### 7", "The answer is 8", "no number at all", "#### 7")]
    path = write_jsonl(tmp_path / "in.jsonl", [json.dumps(r) for r in records])
    summary = grade_file("gsm8k", path, tmp_path / "out.jsonl", workers=2, progress=False)
    assert summary["n"] == 4 and summary["accuracy"] == 0.5
    assert summary["parse_failure_rate"] == 0.25 and summary["accuracy_over_parsed"] == 2 / 3
    assert summary["strict_accuracy"] == 0.5 and summary["flexible_accuracy"] == 0.5
    graded = read_records(tmp_path / "out.jsonl", ["correct", "extracted", "strict"])
    assert [r["extracted"] for r in graded] == ["7", "8", None, "7"]


def test_summary_leaves_ungradable_out():
    graded = [{"correct": True, "extracted": "1"}, {"correct": False, "extracted": None},
              {"correct": False, "extracted": "2", "ungradable": True}]
    summary = summarize(graded)
    assert summary == {"n": 3, "accuracy": 0.5, "parse_failure_rate": 0.5,
                       "accuracy_over_parsed": 1.0, "ungradable": 1, "errors": 0}


def test_mbpp_without_opt_in_stops_before_any_work(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    path = write_jsonl(tmp_path / "in.jsonl", ["{not json"])  # reading it would raise RecordError
    with pytest.raises(CodeExecutionNotAllowed, match="--allow-code-execution"):
        grade_file("mbpp", path)
    with pytest.raises(CodeExecutionNotAllowed):
        grade_records("mbpp", [])


def test_grade_problems_grades_loaded_problems_in_order():
    task = HangingTask()
    problems = [task.from_record({"question": "q", "answer": str(i)}, i) for i in range(3)]
    outcomes = grade_problems(task, problems, ["0", "5", "x"], workers=2, progress=False)
    assert [(o["correct"], o["extracted"]) for o in outcomes] == [(True, "0"), (False, "5"), (False, None)]
    with pytest.raises(ValueError, match="3 problems but 2 completions"):
        grade_problems(task, problems, ["0", "1"])
