"""Grade completions in parallel, with a hard time limit per item.

A pool of worker processes grades one item at a time each; the parent enforces the limit: a
worker that overruns is killed and replaced, and its item is marked wrong with `error: "timeout"`.
This is what makes math-verify safe to use (its own timeouts rely on `signal.alarm`, which works
only on a main thread), and it bounds any grader that hangs on a pathological completion.
Workers come from the "forkserver" context (never plain fork: the parent may hold torch threads),
with the task's module preloaded, so a replacement worker starts quickly.

Input records hold a task's native fields (as in the data files: gsm8k `question`, `answer`;
math500 `problem`, `answer`; countdown `target`, `nums`; mbpp `task_id`, `text`, `test_list`, ...)
plus `completion`; `task.from_record` maps them to Problems.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Iterable

from tqdm import tqdm

from cotrepro import sandbox
from cotrepro.tasks import Problem, Task, get_task

DEFAULT_ITEM_TIMEOUT_S = 20.0  # beyond a task's own limit (MBPP's 5 s), for start-up and reaping
# Heavy modules a task's verify imports on first use; the forkserver imports them once, so each
# worker (and each replacement of a killed one) starts with them loaded.
_LAZY_IMPORTS = {"cotrepro.tasks.math": ("math_verify",)}


class RecordError(ValueError):
    """A malformed input record; the message names the file and the line."""


def read_records(path: str | Path, required_fields: Iterable[str] = ("completion",)) -> list[dict]:
    """The JSON objects of a JSONL file; RecordError naming file:line on bad JSON or a missing field."""
    return [record for _, record in _numbered_records(path, tuple(required_fields))]


def _numbered_records(path: str | Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
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


def grade_records(task: Task | str, records: list[dict], *, workers: int | None = None,
                  item_timeout_s: float = DEFAULT_ITEM_TIMEOUT_S, progress: bool = True,
                  allow_code_execution: bool = False) -> list[dict]:
    """Each record (native fields + `completion`) with `correct`, `extracted`, `ungradable` added.

    Task detail fields (e.g. gsm8k `strict`, mbpp `exec_status`) are added too, and `error` where
    grading failed ("timeout" when the item overran `item_timeout_s`). `workers=None` uses all
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
                   workers: int | None = None, item_timeout_s: float = DEFAULT_ITEM_TIMEOUT_S,
                   progress: bool = True, allow_code_execution: bool = False) -> list[dict]:
    """Grade `completions[i]` against `problems[i]` in the pool; one outcome dict per item.

    An outcome holds `correct`, `extracted`, `ungradable`, the task's detail fields, and `error`
    where grading failed. Same limits and opt-in as `grade_records`.
    """
    task = get_task(task) if isinstance(task, str) else task
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    allow = sandbox.code_execution_allowed(True if allow_code_execution else None)
    if task.needs_code_execution and not allow:
        raise sandbox.CodeExecutionNotAllowed()
    return _run_pool(task, list(zip(problems, completions)), workers or _cores(), item_timeout_s,
                     progress, allow)


def grade_file(task_name: str, in_path: str | Path, out_path: str | Path | None = None,
               allow_code_execution: bool = False, workers: int | None = None,
               item_timeout_s: float = DEFAULT_ITEM_TIMEOUT_S, progress: bool = True) -> dict:
    """Grade a JSONL file of records; write the graded records to `out_path` (if given).

    Returns `summarize` of the graded records. Checks the code-execution opt-in and every
    record before grading anything (RecordError names file:line).
    """
    task = get_task(task_name)
    if task.needs_code_execution:
        sandbox.require_code_execution(True if allow_code_execution else None)
    numbered = _numbered_records(in_path, ("completion",))
    for index, (number, record) in enumerate(numbered):
        try:
            task.from_record(record, index)
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"{in_path}:{number}: not a {task_name} record ({exc})") from None
    graded = grade_records(task, [record for _, record in numbered], workers=workers,
                           item_timeout_s=item_timeout_s, progress=progress,
                           allow_code_execution=allow_code_execution)
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "w", encoding="utf-8") as f:
            for record in graded:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return summarize(graded)


def summarize(graded: list[dict]) -> dict[str, Any]:
    """Accuracy over all gradable records (an unparsed completion counts as wrong).

    Ungradable records (the gold itself does not parse) are left out and counted. Also reported:
    the share with nothing extracted, accuracy over parsed records only (the Shape of Thought
    release's convention), the number of grading errors, and gsm8k's strict/flexible accuracies.
    """
    gradable = [r for r in graded if not r.get("ungradable")]
    parsed = [r for r in gradable if r.get("extracted") is not None]
    n = len(gradable)
    summary: dict[str, Any] = {
        "n": len(graded),
        "accuracy": _share(sum(bool(r["correct"]) for r in gradable), n),
        "parse_failure_rate": _share(n - len(parsed), n),
        "accuracy_over_parsed": _share(sum(bool(r["correct"]) for r in parsed), len(parsed)),
        "ungradable": len(graded) - n,
        "errors": sum(1 for r in graded if r.get("error")),
    }
    for rule in ("strict", "flexible"):
        if any(rule in r for r in gradable):
            summary[f"{rule}_accuracy"] = _share(sum(bool(r.get(rule)) for r in gradable), n)
    return summary


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _grade_one(task: Task, problem, completion: str) -> dict[str, Any]:
    try:
        verdict = task.verify(problem, completion)
    except Exception as exc:  # a grader bug on one item must not stop the other items
        return {"correct": False, "extracted": None, "ungradable": False,
                "error": f"{type(exc).__name__}: {exc}"}
    return {**verdict.detail, "correct": bool(verdict.correct), "extracted": verdict.extracted,
            "ungradable": bool(verdict.ungradable)}


def _worker(conn, task: Task, allow_code_execution: bool) -> None:
    """Grade (problem, completion) messages until a None arrives."""
    if allow_code_execution:
        os.environ[sandbox.ALLOW_ENV] = "1"
    while True:
        message = conn.recv()
        if message is None:
            return
        conn.send(_grade_one(task, *message))


class _Slot:
    """One worker process and the item it is grading."""

    def __init__(self, context, task: Task, allow: bool):
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_worker, args=(child_conn, task, allow), daemon=True)
        self.process.start()
        child_conn.close()
        self.index: int | None = None
        self.deadline = 0.0

    def send(self, index: int, item, timeout_s: float) -> None:
        self.index, self.deadline = index, time.monotonic() + timeout_s
        self.conn.send(item)

    def stop(self, kill: bool) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.process.kill()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _failed(error: str) -> dict[str, Any]:
    return {"correct": False, "extracted": None, "ungradable": False, "error": error}


def _run_pool(task: Task, items: list, workers: int, timeout_s: float, progress: bool,
              allow: bool) -> list[dict]:
    if not items:
        return []
    context = multiprocessing.get_context("forkserver")
    module = type(task).__module__
    context.set_forkserver_preload(["cotrepro.grade", module, *_LAZY_IMPORTS.get(module, ())])
    results: list[dict | None] = [None] * len(items)
    pending = list(range(len(items) - 1, -1, -1))  # popped from the end: file order
    slots = [_Slot(context, task, allow) for _ in range(min(workers, len(items)))]

    def assign(position: int) -> None:
        if not pending:
            return
        index = pending.pop()
        try:
            slots[position].send(index, items[index], timeout_s)
        except OSError:  # the worker died after its last answer: replace it
            slots[position].stop(kill=True)
            slots[position] = _Slot(context, task, allow)
            slots[position].send(index, items[index], timeout_s)

    bar = tqdm(total=len(items), disable=not progress, desc=f"grading {getattr(task, 'name', '')}")
    try:
        for position in range(len(slots)):
            assign(position)
        while busy := [s for s in slots if s.index is not None]:
            nearest = min(s.deadline for s in busy)
            ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy],
                         timeout=max(0.0, nearest - time.monotonic()))
            now = time.monotonic()
            for position, slot in enumerate(slots):
                if slot.index is None:
                    continue
                outcome, replace = None, False
                if slot.conn in ready:
                    try:
                        outcome = slot.conn.recv()
                    except (EOFError, OSError):
                        outcome, replace = _failed("worker died"), True
                elif slot.process.sentinel in ready:
                    outcome, replace = _failed("worker died"), True
                elif now >= slot.deadline:
                    outcome, replace = _failed("timeout"), True
                if outcome is None:
                    continue
                results[slot.index] = outcome
                slot.index = None
                bar.update(1)
                if replace:
                    slot.stop(kill=True)
                    slots[position] = _Slot(context, task, allow)
                assign(position)
    finally:
        bar.close()
        for slot in slots:
            slot.stop(kill=slot.index is not None)
    return results
