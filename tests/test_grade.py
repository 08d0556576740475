"""The parallel grader: input checks naming the line, a hard per-item limit, honest accuracy."""

from __future__ import annotations

import json
import os
import time

import pytest

from cotrepro import grade
from cotrepro.grade import (DEFAULT_ITEM_TIMEOUT_S, OutputNotWritable, RecordError,
                            default_item_timeout_s, grade_file, grade_problems, grade_records,
                            read_records, summarize)
from cotrepro.sandbox import ALLOW_ENV, CodeExecutionNotAllowed
from cotrepro.tasks import get_task
from cotrepro.tasks.base import Problem, Verdict
from cotrepro.tasks.mbpp import MBPPTask


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
    summary = summarize(graded)  # failed items count as wrong, but not as parse failures
    assert summary["errors"] == 2 and summary["timeouts"] == 1
    assert summary["parse_failure_rate"] == 0.0 and summary["accuracy"] == 4 / 6


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


def test_non_string_completion_counts_as_wrong_with_a_note():
    records = [{"question": "q", "answer": "1", "completion": c} for c in (None, 1, "1")]
    graded = grade_records(HangingTask(), records, workers=1, progress=False)
    assert [(r["correct"], r["extracted"]) for r in graded] == [(False, None), (False, None),
                                                                (True, "1")]
    assert "completion is null, not a string" in graded[0]["note"]
    assert "completion is int 1, not a string" in graded[1]["note"]
    assert not any("error" in r for r in graded) and "note" not in graded[2]
    summary = summarize(graded)
    assert summary["errors"] == 0 and summary["non_string_completions"] == 2
    assert summary["parse_failure_rate"] == 2 / 3


def test_default_item_timeout_is_per_task_and_limits_must_be_positive():
    assert default_item_timeout_s("gsm8k") == DEFAULT_ITEM_TIMEOUT_S == 20.0
    assert default_item_timeout_s("mbpp") == 30.0 > get_task("mbpp").timeout_s + 5
    assert default_item_timeout_s(MBPPTask(timeout_s=30)) == 55.0
    task = HangingTask()
    problems = [task.from_record({"question": "q", "answer": "1"})]
    for bad in ({"item_timeout_s": 0}, {"item_timeout_s": -1}, {"item_timeout_s": float("nan")},
                {"workers": 0}, {"workers": -2}):
        with pytest.raises(ValueError, match="must be a positive"):
            grade_problems(task, problems, ["1"], progress=False, **bad)


def test_unreadable_inputs_name_the_file_and_line(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"completion": "1"}\n{"completion": "caf\xe9"}\n')
    with pytest.raises(RecordError, match=r"latin\.jsonl:2: not UTF-8 text \(byte 0xe9"):
        read_records(latin)
    with pytest.raises(RecordError, match="is a folder"):
        grade_file("gsm8k", tmp_path)
    with pytest.raises(RecordError, match="nope.jsonl: no such file"):
        grade_file("gsm8k", tmp_path / "nope.jsonl")
    empty = write_jsonl(tmp_path / "empty.jsonl", [""])
    with pytest.raises(RecordError, match="empty.jsonl: holds no records"):
        grade_file("gsm8k", empty)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"completion": "1"}\n')  # a byte-order mark is not an error
    assert read_records(bom) == [{"completion": "1"}]


def test_output_is_checked_before_grading_and_written_atomically(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "in.jsonl", [json.dumps({"question": "q", "answer": "#### 1",
                                                           "completion": "#### 1"})])
    (tmp_path / "somefile").write_text("x")

    def must_not_grade(*args, **kwargs):
        raise AssertionError("graded before the output was checked")

    monkeypatch.setattr(grade, "grade_records", must_not_grade)
    with pytest.raises(OutputNotWritable, match="somefile is a file"):
        grade_file("gsm8k", path, tmp_path / "somefile" / "out.jsonl")
    with pytest.raises(OutputNotWritable, match="is a folder"):
        grade_file("gsm8k", path, tmp_path)

    out = tmp_path / "out.jsonl"
    out.write_text("an earlier result\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(grade, "grade_records", interrupted)
    with pytest.raises(KeyboardInterrupt):
        grade_file("gsm8k", path, out)
    assert out.read_text() == "an earlier result\n"

    with pytest.raises(TypeError):  # a failure half-way through the writing
        grade._write_atomically(out, [{"a": 1}, {"b": object()}])
    assert out.read_text() == "an earlier result\n"
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl", "somefile"]
    grade_file("gsm8k", path, out)
    assert json.loads(out.read_text())["completion"] == "#### 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl", "somefile"]


def test_records_as_users_hold_them():
    gsm8k = get_task("gsm8k")
    golds = {"#### 7": "7", "7": "7", 7: "7", "1,234": "1234", "$1,500": "1500", 2.5: "2.5",
             "no final line": ""}
    for answer, gold in golds.items():
        assert gsm8k.from_record({"question": "q", "answer": answer}).answer == gold
        if gold:
            assert gsm8k.verify(gsm8k.from_record({"question": "q", "answer": answer}),
                                f"so #### {gold}").correct
    for answer, shown in ((None, "null"), (True, "bool"), ([7], "list")):
        with pytest.raises(ValueError, match=f"'answer' must be .* got {shown}"):
            gsm8k.from_record({"question": "q", "answer": answer})

    math500 = get_task("math500")
    answer_only = math500.from_record({"problem": "1+1?", "answer": "2"})
    assert answer_only.answer == "2" and answer_only.solution is None
    assert math500.verify(answer_only, "It is \\boxed{2}.").correct
    assert math500.from_record({"problem": "p", "answer": 4}).answer == "4"
    assert math500.from_record({"problem": "p", "answer": "", "solution": "\\boxed{3}"}).answer == "3"
    with pytest.raises(ValueError, match="lacks a non-empty answer"):
        math500.from_record({"problem": "p", "answer": None})
    with pytest.raises(ValueError, match="'solution' must be a string"):
        math500.from_record({"problem": "p", "solution": 5})

    countdown = get_task("countdown")
    assert countdown.from_record({"nums": [1, "2", 3.0], "target": "6"}).meta == \
        {"nums": [1, 2, 3], "target": 6}
    for record, field in (({"nums": None, "target": 3}, "nums"),
                          ({"nums": [1, 2.5], "target": 3}, "nums"),
                          ({"nums": [1], "target": None}, "target"),
                          ({"input": "a,1", "output": 1}, "input")):
        with pytest.raises(ValueError, match=f"countdown field '{field}'"):
            countdown.from_record(record)

    mbpp = get_task("mbpp")
    row = {"task_id": 1, "text": "t", "test_list": ["assert f() == 1"]}
    for bad, field in (({"test_list": "assert f() == 1"}, "test_list"),
                       ({"test_setup_code": 3}, "test_setup_code"), ({"code": 1}, "code"),
                       ({"challenge_test_list": "x"}, "challenge_test_list")):
        with pytest.raises(ValueError, match=f"mbpp field '{field}'"):
            mbpp.from_record({**row, **bad})


def test_grade_file_names_the_line_of_a_badly_typed_field(tmp_path):
    records = [{"question": "q", "answer": "#### 1", "completion": "1"},
               {"question": "q", "answer": None, "completion": "1"}]
    path = write_jsonl(tmp_path / "in.jsonl", [json.dumps(r) for r in records])
    with pytest.raises(RecordError, match=r":2: not a gsm8k record \(gsm8k field 'answer' .* got null"):
        grade_file("gsm8k", path)
