"""GSM8K: loading (local copy, hub fallback), strict/flexible extraction, grading every human answer.

Also covers the shared loading helpers of `cotrepro.tasks.hub`.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from cotrepro.tasks import DataNotFound, get_task
from cotrepro.tasks import gsm8k
from cotrepro.tasks.hub import load_local_or_hub, read_jsonl, subset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason="shared/data/gsm8k absent")

TASK = gsm8k.TASK
PROBLEM = TASK.from_record({"question": "How many?", "answer": "2 + 3 = <<2+3=5>>5\n#### 1,234"})


@pytest.fixture(scope="module")
def real():
    return {split: TASK.load(split, DATA) for split in ("train", "test")}


def test_registry_returns_the_module_task():
    assert get_task("gsm8k") is TASK and TASK.name == "gsm8k" and not TASK.needs_code_execution


@needs_data
def test_load_maps_the_real_files(real):
    assert (len(real["train"]), len(real["test"])) == (7473, 1319)
    first = real["test"][0]
    assert first.id == "test/0" and first.question.startswith("Janet\u2019s ducks lay 16 eggs")
    assert first.answer == "18"
    assert first.solution.startswith("Janet sells 16 - 3 - 4") and first.solution.endswith("\n#### 18")
    assert len({p.id for p in real["train"]}) == 7473


@needs_data
@pytest.mark.parametrize("split", ["train", "test"])
def test_every_human_answer_grades_correct_by_both_rules(real, split):
    wrong = [p.id for p in real[split]
             if not ((v := TASK.verify(p, p.solution)).correct and v.detail["strict"])
             or v.extracted is None or v.ungradable]
    assert wrong == []


@pytest.mark.parametrize("completion, strict, flexible", [
    ("The answer is **1,234**.", "1234", "1234"),
    ("#### $5", "5", "5"),
    ("So \\boxed{7} then later text 9", None, "7"),
    ("Final Answer: The final answer is $1,000$. I hope it is correct.", "1000", "1000"),
    ("The answer is 12 (see step 2).", "12", "2"),  # flexible = last number, as lm-eval's
    ("#### 3\nmore text then #### 4", "4", "4"),
    ("She pays 3*4 = 12 dollars", None, "12"),  # `*` between digits is a product, not emphasis
    ("The answer is: _-7_", "-7", "-7"),
    ("days 3-4 of the trip", None, "4"),  # a hyphen is not a minus sign
    ("\\boxed{\\$1{,}500}", None, "1500"),
    ("no digits at all", None, None),
])
def test_strict_and_flexible_extraction(completion, strict, flexible):
    assert gsm8k.extract_strict(completion) == strict
    assert gsm8k.extract_flexible(completion) == flexible
    assert TASK.extract(completion) == flexible


def test_answers_compare_as_numbers():
    assert gsm8k.same_number("72.0", "72") and gsm8k.same_number("1,000", "1000")
    assert not gsm8k.same_number("72.5", "72") and not gsm8k.same_number(None, "72")
    assert not gsm8k.same_number("abc", "abc")
    assert TASK.verify(PROBLEM, "The answer is 1234.00").correct


def test_verdict_reports_both_rules():
    verdict = TASK.verify(PROBLEM, "The answer is 12. Oh wait, 1,234 in total.")
    assert (verdict.correct, verdict.extracted) == (True, "1234")
    assert verdict.detail == {"strict": False, "flexible": True, "strict_extracted": "12"}


def test_wrong_and_unparseable_completions_grade_wrong():
    wrong = TASK.verify(PROBLEM, "#### 1235")
    assert (wrong.correct, wrong.extracted, wrong.ungradable) == (False, "1235", False)
    empty = TASK.verify(PROBLEM, "I am not sure.")
    assert (empty.correct, empty.extracted, empty.ungradable) == (False, None, False)
    assert empty.detail["strict_extracted"] is None


def test_a_gold_without_a_number_is_ungradable():
    problem = TASK.from_record({"question": "q", "answer": "no final line"})
    verdict = TASK.verify(problem, "#### 5")
    assert verdict.ungradable and not verdict.correct


def test_steps_are_lines_with_the_final_answer_line_joined_to_the_last():
    trace = "First 2+3=5.\n\n  Then 5*2=10.\n#### 10\n"
    assert TASK.steps(trace) == ["First 2+3=5.", "Then 5*2=10.\n#### 10"]
    assert TASK.steps("#### 10") == ["#### 10"]


def test_prompt_uses_the_default_template():
    text = TASK.prompt(PROBLEM)
    assert text.endswith("Problem:\nHow many?\n\nSolution:") and "Final Answer:" in text


@needs_data
def test_limit_takes_a_seeded_sample_or_the_file_head(real):
    head = TASK.load("test", DATA, limit=5, seed=None)
    assert [p.id for p in head] == [f"test/{i}" for i in range(5)]
    sample = TASK.load("test", DATA, limit=5, seed=1)
    assert [p.id for p in sample] == [p.id for p in TASK.load("test", DATA, limit=5, seed=1)]
    assert [p.id for p in sample] != [p.id for p in head]
    by_id = {p.id: p for p in real["test"]}
    assert all(by_id[p.id] == p for p in sample)  # ids follow the file row, not the shuffle
    assert TASK.load("test", DATA, limit=0) == []


@needs_data
def test_hub_fallback_maps_hub_rows_like_the_local_file(tmp_path, monkeypatch):
    rows = read_jsonl(DATA / "gsm8k" / "test.jsonl")[:20]  # hub rows have the same two fields
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    from_hub = TASK.load("test", tmp_path)  # no gsm8k/ under tmp_path
    assert calls == [("openai/gsm8k", "main", "test")]
    assert from_hub == TASK.load("test", DATA, limit=20, seed=None)


def test_hub_failure_is_data_not_found_naming_the_local_path(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataNotFound, match=r"gsm8k/train\.jsonl does not exist.*ConnectionError"):
        TASK.load("train", tmp_path)


def test_unknown_split_and_bad_record_raise():
    with pytest.raises(ValueError, match="choose one of train, test"):
        TASK.load("validation")
    with pytest.raises(ValueError, match="lacks answer"):
        TASK.from_record({"question": "q"})


def test_read_jsonl_names_file_and_line_of_bad_json(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(ValueError, match=r"rows\.jsonl:3: malformed JSON"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n\n[1]\n')
    with pytest.raises(ValueError, match=r"rows\.jsonl:3: expected a JSON object"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n\n' + json.dumps({"a": 2}) + "\n")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_load_local_or_hub_prefers_the_local_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n')

    def hub():
        raise AssertionError("hub must not be called when the local file exists")

    assert load_local_or_hub(path, hub) == [{"a": 1}]
    assert load_local_or_hub(None, lambda: [{"a": 2}]) == [{"a": 2}]


def test_subset_rules():
    items = list(range(10))
    assert subset(items) == items and subset(items, seed=3) == items  # no limit: file order
    assert subset(items, 3, seed=None) == [0, 1, 2]
    assert subset(items, 3, seed=7) == subset(items, 3, seed=7) != [0, 1, 2]
    assert sorted(subset(items, 10, seed=7)) == items
    with pytest.raises(ValueError, match="limit must be >= 0"):
        subset(items, -1)
