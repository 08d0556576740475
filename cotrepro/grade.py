"""Grade completions in parallel, with a hard time limit per item.

A pool of worker processes (`cotrepro.grade_pool`) grades one item at a time each; a worker that
overruns its limit is killed and replaced, and its item is marked wrong with `error: "timeout"`.

The default limit is 20 s per item, or a task's own program limit plus 25 s (mbpp: 5 + 25 = 30 s);
see `default_item_timeout_s`. A timed-out item counts as wrong; `summarize` counts it in `errors`
and `timeouts`, not as a parse failure.

Input records hold a task's native fields (as in the data files: gsm8k `question`, `answer` (a
`#### N` solution or a bare number); math/math500 `problem`, `answer` or `solution`; countdown
`target`, `nums`; mbpp `task_id`, `text`, `test_list`, ...) plus `completion`; `task.from_record`
maps them to Problems. A completion that is not a string (null) counts as wrong, with a `note`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from cotrepro import sandbox
from cotrepro.grade_pool import grade_one, grade_pool
from cotrepro.tasks import Problem, Task, get_task

DEFAULT_ITEM_TIMEOUT_S = 20.0  # per item, for tasks that run no program of their own
# A task that runs a program per item (MBPP: 5 s) gets its program limit plus this margin, for the
# interpreter's start-up, the sandbox and the reaping on a loaded machine.
_PROGRAM_MARGIN_S = 25.0


class RecordError(ValueError):
    """Bad grading input: a file that cannot be read, a malformed record, an output that cannot
    be written. The message names the file and, where there is one, the line."""


class OutputNotWritable(RecordError):
    """The output path cannot be written (checked before any grading)."""


def default_item_timeout_s(task: Task | str) -> float:
    """The per-item limit used when none is given.

    20 s, or a task's own program limit plus 25 s where it has one (mbpp: 5 + 25 = 30 s).
    """
    task = get_task(task) if isinstance(task, str) else task
    program_s = getattr(task, "timeout_s", None)
    if isinstance(program_s, (int, float)) and program_s > 0:
        return max(DEFAULT_ITEM_TIMEOUT_S, float(program_s) + _PROGRAM_MARGIN_S)
    return DEFAULT_ITEM_TIMEOUT_S


def read_records(path: str | Path, required_fields: Iterable[str] = ("completion",)) -> list[dict]:
    """The JSON objects of a JSONL file; RecordError naming file:line on bad JSON or a missing field."""
    return [record for _, record in _numbered_records(path, tuple(required_fields))]


def _check_input(path: str | Path) -> None:
    """RecordError unless `path` is a readable regular file."""
    p = Path(path)
    if not p.exists():
        raise RecordError(f"{path}: no such file")
    if p.is_dir():
        raise RecordError(f"{path}: is a folder, not a JSONL file")
    if not os.access(p, os.R_OK):
        raise RecordError(f"{path}: cannot be read (permission denied)")


def _numbered_records(path: str | Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    _check_input(path)
    records = []
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise RecordError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RecordError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                                  f"at column {exc.start + 1}); save the file as UTF-8") from None
            if number == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{number}: malformed JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise RecordError(f"{path}:{number}: expected a JSON object, "
                                  f"got {type(record).__name__}")
            missing = [field for field in required if field not in record]
            if missing:
                raise RecordError(f"{path}:{number}: missing field {', '.join(map(repr, missing))}")
            records.append((number, record))
    return records


def _check_output(path: str | Path) -> None:
    """OutputNotWritable unless `path` could be written (its folder existing or creatable)."""
    p = Path(path)
    if p.is_dir():
        raise OutputNotWritable(f"{path}: is a folder; give a file name for the graded records")
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputNotWritable(f"cannot write {path}: {ancestor} is a file, not a folder")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputNotWritable(f"cannot write {path}: the file is read-only")
    try:  # a file that vanishes on close: the only test that holds for root and odd file systems
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise OutputNotWritable(f"cannot write {path}: cannot create files in {ancestor} "
                                f"({exc.strerror or exc})") from None


def _write_atomically(path: str | Path, records: list[dict]) -> None:
    """Write JSONL to a temporary file next to `path`, then rename it over `path`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    temporary = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(temporary, p)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _check_limits(workers: int | None, item_timeout_s: float | None) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    if item_timeout_s is not None and not (isinstance(item_timeout_s, (int, float))
                                           and 0 < item_timeout_s < math.inf):
        raise ValueError(f"item_timeout_s must be a positive number of seconds, got {item_timeout_s!r}")


def grade_records(task: Task | str, records: list[dict], *, workers: int | None = None,
                  item_timeout_s: float | None = None, progress: bool = True,
                  allow_code_execution: bool = False) -> list[dict]:
    """Each record (native fields + `completion`) with `correct`, `extracted`, `ungradable` added.

    Task detail fields (e.g. gsm8k `strict`, mbpp `exec_status`) are added too, and `error` where
    grading failed ("timeout" when the item overran `item_timeout_s`; None: the task's default,
    see `default_item_timeout_s`). A completion that is not a string (null, a number) is not
    graded: it counts as wrong with nothing extracted and a `note`. `workers=None` uses all
    cores. A task that runs code needs `allow_code_execution` or COTREPRO_ALLOW_CODE_EXECUTION=1.
    """
    task = get_task(task) if isinstance(task, str) else task
    lacking = [index for index, record in enumerate(records) if "completion" not in record]
    if lacking:
        raise RecordError(f"record {lacking[0]} (0-based) has no 'completion' field")
    problems = [task.from_record(record, index) for index, record in enumerate(records)]
    outcomes = grade_problems(task, problems, [r["completion"] for r in records], workers=workers,
                              item_timeout_s=item_timeout_s, progress=progress,
                              allow_code_execution=allow_code_execution)
    return [{**record, **outcome} for record, outcome in zip(records, outcomes)]


def grade_problems(task: Task | str, problems: list[Problem], completions: list[str], *,
                   workers: int | None = None, item_timeout_s: float | None = None,
                   progress: bool = True, allow_code_execution: bool = False) -> list[dict]:
    """Grade `completions[i]` against `problems[i]` in the pool; one outcome dict per item.

    A task whose verifier is bounded by construction (`task.bounded_verify`: the generated tasks,
    whose verifiers are a linear scan and integer arithmetic, tested on megabyte-long inputs) is
    graded in this process: a pool round trip per item would cost more than the check itself, on
    the hundreds of thousands of Monte Carlo rollouts the experiments grade.

    An outcome holds `correct`, `extracted`, `ungradable`, the task's detail fields, and `error`
    where grading failed (or `note` for a completion that is not a string). Same limits and
    opt-in as `grade_records`.
    """
    task = get_task(task) if isinstance(task, str) else task
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    _check_limits(workers, item_timeout_s)
    opted_in = allow_code_execution or getattr(task, "allow_code_execution", False)  # a step's task section
    allow = sandbox.code_execution_allowed(True if opted_in else None)
    if task.needs_code_execution and not allow:
        raise sandbox.CodeExecutionNotAllowed()
    timeout_s = default_item_timeout_s(task) if item_timeout_s is None else float(item_timeout_s)
    results: list[dict | None] = [None] * len(problems)
    to_grade = []
    for index, completion in enumerate(completions):
        if isinstance(completion, str):
            to_grade.append(index)
        else:
            results[index] = {"correct": False, "extracted": None, "ungradable": False,
                              "note": _not_a_string(completion)}
    items = [(problems[i], completions[i]) for i in to_grade]
    if getattr(task, "bounded_verify", False):
        graded = [grade_one(task, *item) for item in items]
    else:
        graded = grade_pool(task, items, workers or _cores(), timeout_s, progress, allow)
    for index, outcome in zip(to_grade, graded):
        results[index] = outcome
    return results


def _not_a_string(completion: Any) -> str:
    if completion is None:
        shown = "null"
    else:
        shown = f"{type(completion).__name__} {json.dumps(completion, default=str)[:40]}"
    return f"completion is {shown}, not a string: counted as wrong, not graded"


def grade_file(task_name: str, in_path: str | Path, out_path: str | Path | None = None,
               allow_code_execution: bool = False, workers: int | None = None,
               item_timeout_s: float | None = None, progress: bool = True) -> dict:
    """Grade a JSONL file of records; write the graded records to `out_path` (if given).

    Returns `summarize` of the graded records. Before grading anything it checks the
    code-execution opt-in, the limits, the input (RecordError names file:line; an empty file is
    an error), every record, and that `out_path` can be written (OutputNotWritable).
    `out_path` is written atomically (a temporary file renamed over it), so an interrupted run
    leaves an existing file unchanged. `item_timeout_s=None`: the task's default.
    """
    task = get_task(task_name)
    if task.needs_code_execution:
        sandbox.require_code_execution(True if allow_code_execution else None)
    _check_limits(workers, item_timeout_s)
    numbered = _numbered_records(in_path, ("completion",))
    if not numbered:
        raise RecordError(f"{in_path}: holds no records (one JSON object per line expected)")
    for index, (number, record) in enumerate(numbered):
        try:
            task.from_record(record, index)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RecordError(f"{in_path}:{number}: not a {task_name} record ({exc})") from None
    if out_path is not None:
        _check_output(out_path)
    graded = grade_records(task, [record for _, record in numbered], workers=workers,
                           item_timeout_s=item_timeout_s, progress=progress,
                           allow_code_execution=allow_code_execution)
    summary = summarize(graded)
    if out_path is not None:
        _write_atomically(out_path, graded)
    return summary


def summarize(graded: list[dict]) -> dict[str, Any]:
    """Accuracy over all gradable records (an unparsed or failed item counts as wrong).

    Ungradable records (the gold itself does not parse) are left out and counted. Also reported:
    the share of completions with nothing extracted (items whose grading failed, e.g. timed out,
    are not parse failures: they are counted in `errors`, and in `timeouts` when there are any),
    accuracy over parsed records only (the Shape of Thought release's convention), gsm8k's
    strict/flexible accuracies, and `non_string_completions` when some completions were not
    strings (null: counted as unparsed and wrong).
    """
    gradable = [r for r in graded if not r.get("ungradable")]
    parsed = [r for r in gradable if r.get("extracted") is not None]
    unparsed = [r for r in gradable if r.get("extracted") is None and not r.get("error")]
    n = len(gradable)
    errors = sum(1 for r in graded if r.get("error"))
    summary: dict[str, Any] = {
        "n": len(graded),
        "accuracy": _share(sum(bool(r["correct"]) for r in gradable), n),
        "parse_failure_rate": _share(len(unparsed), n),
        "accuracy_over_parsed": _share(sum(bool(r["correct"]) for r in parsed), len(parsed)),
        "ungradable": len(graded) - n,
        "errors": errors,
    }
    if errors:
        summary["timeouts"] = sum(1 for r in graded if r.get("error") == "timeout")
    not_strings = sum(1 for r in graded if "completion" in r and not isinstance(r["completion"], str))
    if not_strings:
        summary["non_string_completions"] = not_strings
    for rule in ("strict", "flexible"):
        if any(rule in r for r in gradable):
            summary[f"{rule}_accuracy"] = _share(sum(bool(r.get(rule)) for r in gradable), n)
    return summary


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
