"""The grading pool: worker processes that grade one item at a time, under a hard time limit.

The parent enforces the limit: a worker that overruns is killed and replaced, and its item is
marked wrong with `error: "timeout"`. This is what makes math-verify safe to use (its own timeouts
rely on `signal.alarm`, which works only on a main thread), and it bounds any grader that hangs on
a pathological completion. Workers come from the "forkserver" context (never plain fork: the
parent may hold torch threads), with the task's module preloaded, so a replacement worker starts
quickly. `cotrepro.grade` reads and writes the records around it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from multiprocessing.connection import wait
from typing import Any

from tqdm import tqdm

from cotrepro import sandbox
from cotrepro.tasks import Task

# Heavy modules a task's verify imports on first use; the forkserver imports them once, so each
# worker (and each replacement of a killed one) starts with them loaded.
_LAZY_IMPORTS = {"cotrepro.tasks.math": ("math_verify",)}


def grade_one(task: Task, problem, completion: str) -> dict[str, Any]:
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
    try:
        while True:
            message = conn.recv()
            if message is None:
                return
            conn.send(grade_one(task, *message))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        # Ctrl-C reaches the workers too (one process group); the parent stops and reaps them,
        # so leave quietly instead of printing one traceback per worker.
        return


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


def grade_pool(task: Task, items: list, workers: int, timeout_s: float, progress: bool,
              allow: bool) -> list[dict]:
    if not items:
        return []
    context = multiprocessing.get_context("forkserver")
    module = type(task).__module__
    context.set_forkserver_preload(["cotrepro.grade_pool", module, *_LAZY_IMPORTS.get(module, ())])
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
