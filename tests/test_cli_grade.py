"""`cotrepro grade` as a user types it: the real console script, run in a fresh folder.

Each bad input must give exactly one line on stderr (`cotrepro grade: error: ...`) naming the
file, line or field, exit status 2, no traceback, and no file written. Small inputs and one or two
workers keep the whole file to well under a minute on two busy cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cotrepro.grade import default_item_timeout_s
from cotrepro.sandbox import ALLOW_ENV

COTREPRO = Path(sys.executable).parent / "cotrepro"
MBPP_BASE = {"task_id": 1, "text": "Write a function add(a, b) returning their sum.",
             "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"],
             "test_setup_code": "", "challenge_test_list": []}
RIGHT_PROGRAM = "```python\ndef add(a, b):\n    return a + b\n```"
WRONG_PROGRAM = "def add(a, b):\n    return a - b"
ENDLESS_PROGRAM = "def add(a, b):\n    while True:\n        pass"


def cotrepro(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `cotrepro ARGS` in `cwd`, with the code-execution opt-in unset in its environment."""
    env = {k: v for k, v in os.environ.items() if k != ALLOW_ENV}
    return subprocess.run([str(COTREPRO), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def summary_of(stdout: str) -> dict[str, str]:
    """The `key=value` pairs of the one summary line."""
    (line,) = stdout.strip().splitlines()
    return dict(part.split("=", 1) for part in line.split()[1:])


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, status: int = 2):
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cotrepro grade: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == "" or status != 2


@pytest.fixture
def folder(tmp_path):
    """A fresh working folder, as a user's, holding only what a test writes there."""
    return tmp_path


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- what works ---------------------------------------------------------------------------------


def test_readme_command_grades_gsm8k_without_timeout(folder):
    records = [
        {"question": "q1", "answer": "3 + 4 = <<3+4=7>>7\n#### 7", "completion": "3 + 4 = 7.\n#### 7"},
        {"question": "q2", "answer": "7", "completion": "The answer is 7"},  # bare-number gold
        {"question": "q3", "answer": 1500, "completion": "It costs $1,500."},  # integer gold
        {"question": "q4", "answer": "#### 2", "completion": "no idea"},
        {"question": "q5", "answer": "#### 2", "completion": None},  # null completion
    ]
    write_jsonl(folder / "completions.jsonl", records)
    result = cotrepro(folder, "grade", "gsm8k", "completions.jsonl", "-o", "graded.jsonl",
                      "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = summary_of(result.stdout)
    assert result.stdout.startswith("gsm8k: ")
    assert summary["n"] == "5" and summary["accuracy"] == "0.6000"
    assert summary["ungradable"] == "0" and summary["errors"] == "0"
    assert summary["parse_failure_rate"] == "0.4000"
    graded = read_jsonl(folder / "graded.jsonl")
    assert [r["correct"] for r in graded] == [True, True, True, False, False]
    assert [r["extracted"] for r in graded] == ["7", "7", "1500", None, None]
    assert [r["question"] for r in graded] == ["q1", "q2", "q3", "q4", "q5"]  # order, fields kept
    assert "error" not in graded[4] and "not a string" in graded[4]["note"]
    assert "AttributeError" not in (folder / "graded.jsonl").read_text()
    assert "null or not strings" in result.stderr  # one note line about the null completion
    assert files_in(folder) == {"completions.jsonl", "graded.jsonl"}  # no temporary file left


def test_uppercase_task_name_is_accepted(folder):
    write_jsonl(folder / "c.jsonl", [{"question": "q", "answer": "#### 1", "completion": "#### 1"}])
    result = cotrepro(folder, "grade", "GSM8K", "c.jsonl", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert summary_of(result.stdout)["accuracy"] == "1.0000"


def test_math500_records_without_solution_grade_against_answer(folder):
    records = [
        {"problem": "Half of 1?", "answer": "\\frac{1}{2}", "completion": "So \\boxed{\\frac12}."},
        {"problem": "1+1?", "answer": "2",
         "completion": "Final Answer: The final answer is $3$. I hope it is correct."},
        {"problem": "2+2?", "answer": "4", "completion": "It is \\boxed{4}"},
    ]
    write_jsonl(folder / "math500.jsonl", records)
    result = cotrepro(folder, "grade", "math500", "math500.jsonl", "-o", "graded.jsonl",
                      "--workers", "2")
    assert result.returncode == 0, result.stderr
    summary = summary_of(result.stdout)
    assert summary["n"] == "3" and summary["accuracy"] == "0.6667" and summary["ungradable"] == "0"
    assert [r["correct"] for r in read_jsonl(folder / "graded.jsonl")] == [True, False, True]


def test_mbpp_with_opt_in_runs_the_programs(folder):
    write_jsonl(folder / "mbpp.jsonl", [{**MBPP_BASE, "completion": RIGHT_PROGRAM},
                                        {**MBPP_BASE, "task_id": 2, "completion": WRONG_PROGRAM}])
    result = cotrepro(folder, "grade", "mbpp", "mbpp.jsonl", "--allow-code-execution",
                      "-o", "graded.jsonl", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert summary_of(result.stdout)["accuracy"] == "0.5000"
    graded = read_jsonl(folder / "graded.jsonl")
    assert [r["exec_status"] for r in graded] == ["passed", "failed"]
    assert graded[1]["exec_error"] == "AssertionError"


def test_mbpp_without_opt_in_is_refused(folder):
    write_jsonl(folder / "mbpp.jsonl", [{**MBPP_BASE, "completion": RIGHT_PROGRAM}])
    result = cotrepro(folder, "grade", "mbpp", "mbpp.jsonl", "-o", "graded.jsonl")
    assert_one_line_error(result, "--allow-code-execution")
    assert files_in(folder) == {"mbpp.jsonl"}


def test_every_item_timed_out_exits_non_zero_with_one_line(folder):
    write_jsonl(folder / "mbpp.jsonl", [{**MBPP_BASE, "task_id": i, "completion": ENDLESS_PROGRAM}
                                        for i in (1, 2)])
    result = cotrepro(folder, "grade", "mbpp", "mbpp.jsonl", "--allow-code-execution",
                      "--timeout", "1", "--workers", "2", "-o", "graded.jsonl")
    assert_one_line_error(result, "nothing could be graded", "2 timed out", "--timeout", status=1)
    summary = summary_of(result.stdout)
    assert summary["errors"] == "2" and summary["timeouts"] == "2"
    assert summary["parse_failure_rate"] == "0.0000"  # a timeout is not a parse failure
    assert [r["error"] for r in read_jsonl(folder / "graded.jsonl")] == ["timeout", "timeout"]


def wait_for_a_worker(group: int, limit_s: float = 30) -> None:
    """Wait until process group `group` holds a grading worker (a child of the forkserver)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        forkserver_processes = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                pgid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            forkserver_processes += pgid == group and b"multiprocessing.forkserver" in cmdline
        if forkserver_processes >= 2:  # the forkserver and one worker forked from it
            return
        time.sleep(0.1)
    raise AssertionError(f"no grading worker started within {limit_s} s")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
def test_ctrl_c_writes_nothing_and_promises_no_resume(folder):
    # 20 programs of 5 s each, so the interrupt lands mid-run on a slow machine too
    write_jsonl(folder / "mbpp.jsonl", [{**MBPP_BASE, "task_id": i, "completion": ENDLESS_PROGRAM}
                                        for i in range(1, 21)])
    (folder / "graded.jsonl").write_text("an earlier result\n")
    env = {**os.environ, ALLOW_ENV: "1"}
    process = subprocess.Popen([str(COTREPRO), "grade", "mbpp", "mbpp.jsonl", "--workers", "1",
                                "-o", "graded.jsonl"], cwd=folder, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True,  # its own process group, as a terminal's
                               # a shell's background job ignores SIGINT and its children inherit
                               # that; a terminal's foreground command does not
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_a_worker(process.pid)  # then its first program runs for 5 s
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in stderr and "resume" not in stderr
    assert stderr.splitlines() == ["cotrepro grade: interrupted: nothing was written; "
                                   "graded.jsonl is unchanged"]
    assert (folder / "graded.jsonl").read_text() == "an earlier result\n"
    assert files_in(folder) == {"mbpp.jsonl", "graded.jsonl"}


def test_help_lists_tasks_fields_default_timeout_and_an_example(folder):
    result = cotrepro(folder, "grade", "--help")
    assert result.returncode == 0
    text = result.stdout
    for task in ("gsm8k", "math500", "countdown", "mbpp", "stargraph", "arith"):
        assert task in text
    for field in ("question", "answer", "#### N", "problem", "solution", "target", "nums",
                  "task_id", "test_list", "completion"):
        assert field in text, field
    assert "write the graded records to OUT" in text  # -o has a help text
    assert f"default: {default_item_timeout_s('gsm8k'):g}" in text
    assert f"mbpp: {default_item_timeout_s('mbpp'):g}" in text
    assert "cotrepro grade gsm8k completions.jsonl -o graded.jsonl" in text


def test_help_example_works_as_shown(folder):
    text = cotrepro(folder, "grade", "--help").stdout.splitlines()
    record = next(line.strip() for line in text if line.strip().startswith('{"question"'))
    (folder / "completions.jsonl").write_text(record + "\n")
    result = cotrepro(folder, "grade", "gsm8k", "completions.jsonl", "-o", "graded.jsonl",
                      "--workers", "1")
    assert result.returncode == 0, result.stderr
    shown = next(line.strip() for line in text if line.strip().startswith("gsm8k: n=1"))
    assert result.stdout.startswith(shown.removesuffix("..."))


# --- bad input: one line, status 2, nothing written ---------------------------------------------


GOOD = {"question": "q", "answer": "#### 1", "completion": "#### 1"}


@pytest.mark.parametrize("args, fragments", [
    (["--timeout", "0"], ["--timeout", "'0'"]),
    (["--timeout", "-1"], ["--timeout", "'-1'"]),
    (["--workers", "-2"], ["--workers", "'-2'"]),
    (["--workers", "0"], ["--workers", "'0'"]),
])
def test_nonpositive_limits_are_rejected_at_parsing(folder, args, fragments):
    write_jsonl(folder / "c.jsonl", [GOOD])
    result = cotrepro(folder, "grade", "gsm8k", "c.jsonl", "-o", "graded.jsonl", *args)
    assert_one_line_error(result, *fragments)
    assert files_in(folder) == {"c.jsonl"}


def test_unknown_task_lists_the_tasks(folder):
    write_jsonl(folder / "c.jsonl", [GOOD])
    result = cotrepro(folder, "grade", "gsm9k", "c.jsonl", "-o", "graded.jsonl")
    assert_one_line_error(result, "gsm9k", "gsm8k", "math500", "countdown", "mbpp")
    assert files_in(folder) == {"c.jsonl"}


def test_latin1_byte_names_the_line(folder):
    lines = [json.dumps(GOOD).encode(), '{"question": "caf\u00e9", "answer": "#### 1", '
                                        '"completion": "1"}'.encode("latin-1")]
    (folder / "c.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = cotrepro(folder, "grade", "gsm8k", "c.jsonl", "-o", "graded.jsonl")
    assert_one_line_error(result, "c.jsonl:2:", "UTF-8", "0xe9")
    assert files_in(folder) == {"c.jsonl"}


def test_malformed_json_names_the_line(folder):
    (folder / "c.jsonl").write_text(json.dumps(GOOD) + "\n\n" + '{"question": "q" "answer": 1}\n')
    result = cotrepro(folder, "grade", "gsm8k", "c.jsonl", "-o", "graded.jsonl")
    assert_one_line_error(result, "c.jsonl:3:", "malformed JSON")
    assert files_in(folder) == {"c.jsonl"}


@pytest.mark.parametrize("task, record, fragments", [
    ("gsm8k", {"question": "q", "answer": "#### 1"}, ["missing field 'completion'"]),
    ("gsm8k", {"question": "q", "completion": "1"}, ["not a gsm8k record", "answer"]),
    ("gsm8k", {"question": "q", "answer": None, "completion": "1"}, ["'answer'", "null"]),
    ("math500", {"problem": "p", "completion": "1"}, ["not a math500 record", "answer"]),
    ("countdown", {"nums": [1, 2], "completion": "x"}, ["not a countdown record", "target"]),
    ("countdown", {"nums": None, "target": 3, "completion": "x"}, ["'nums'"]),
    ("mbpp", {"task_id": 1, "text": "t", "completion": "x"}, ["not a mbpp record", "test_list"]),
    ("mbpp", {**MBPP_BASE, "test_list": "assert f()", "completion": "x"}, ["'test_list'"]),
])
def test_missing_or_bad_field_names_field_and_line(folder, task, record, fragments):
    good = {"gsm8k": GOOD, "math500": {"problem": "p", "answer": "1", "completion": "1"},
            "countdown": {"nums": [1, 2], "target": 3, "completion": "x"},
            "mbpp": {**MBPP_BASE, "completion": "x"}}[task]
    write_jsonl(folder / "c.jsonl", [good, record])
    result = cotrepro(folder, "grade", task, "c.jsonl", "-o", "graded.jsonl",
                      "--allow-code-execution")
    assert_one_line_error(result, "c.jsonl:2:", *fragments)
    assert files_in(folder) == {"c.jsonl"}


def test_directory_as_input(folder):
    (folder / "outputs").mkdir()
    result = cotrepro(folder, "grade", "gsm8k", "outputs", "-o", "graded.jsonl")
    assert_one_line_error(result, "outputs", "folder")
    assert files_in(folder) == {"outputs"}


def test_missing_input_file(folder):
    result = cotrepro(folder, "grade", "gsm8k", "nope.jsonl", "-o", "graded.jsonl")
    assert_one_line_error(result, "nope.jsonl", "no such file")
    assert files_in(folder) == set()


def test_unwritable_output_is_refused_before_grading(folder):
    write_jsonl(folder / "c.jsonl", [GOOD])
    (folder / "somefile").write_text("a regular file\n")
    start = time.monotonic()
    result = cotrepro(folder, "grade", "gsm8k", "c.jsonl", "-o", "somefile/out.jsonl")
    assert_one_line_error(result, "somefile/out.jsonl", "somefile is a file")
    assert time.monotonic() - start < 10  # refused before any worker started
    assert files_in(folder) == {"c.jsonl", "somefile"}
    assert (folder / "somefile").read_text() == "a regular file\n"


def test_empty_file_holds_no_records(folder):
    (folder / "c.jsonl").write_text("\n\n")
    result = cotrepro(folder, "grade", "gsm8k", "c.jsonl", "-o", "graded.jsonl")
    assert_one_line_error(result, "c.jsonl", "no records")
    assert files_in(folder) == {"c.jsonl"}
