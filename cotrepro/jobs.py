"""Independent jobs (a fine-tune, an evaluation, a sampled set), stored by content, run in parallel.

A job is a function `module:function(spec, out_dir)` and a JSON spec holding everything that
decides its output. Its folder is `<run root>/cache/<kind>/<hash of target and spec>/`, so two
steps that ask for the same fine-tune (step 04's H and step 03's H) share one run, and a rerun
finds it done. The folder is built as `<key>.partial/` and renamed when the job returns, with a
`DONE` file inside: a job killed at any moment leaves a partial folder, which the rerun continues
(a trainer resumes from its last complete checkpoint there; a sampler from its store).

`run_jobs(jobs, root, workers=...)` runs the jobs that are not done, one per process, `workers`
at a time. Each job is single-threaded and seeded by its spec, so the outputs are the same
whether the jobs run one after another in this process or side by side in others
(`tests/test_jobs.py`).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotrepro.paths import cache_dir
from cotrepro.store import canonical_json, stable_hash

CACHE_VERSION = 1  # bump when a job's outputs change meaning: every cached job is then redone


@dataclass(frozen=True)
class Job:
    kind: str  # the cache folder: finetune, evaluate, sample, ...
    target: str  # "module:function", called as function(spec, out_dir)
    spec: dict = field(hash=False)
    label: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return stable_hash({"version": CACHE_VERSION, "target": self.target, "spec": self.spec}, length=16)


def job_dir(job: Job, root: str | Path | None) -> Path:
    return cache_dir(root, job.kind) / job.key


def is_done(path: Path) -> bool:
    return (path / "DONE").is_file()


def run_jobs(jobs: Sequence[Job], root: str | Path | None, *, workers: int | None = 1, threads: int = 1,
             progress: bool = True, desc: str = "jobs") -> list[Path]:
    """Run every job of `jobs` that is not done yet; returns each job's folder, in order.

    `workers` processes run at once (None: one per core); with one worker, or one job to do, the
    jobs run in this process. A failing job raises its error after the jobs already running
    have finished (the finished ones stay stored).
    """
    todo: dict[str, Job] = {}
    for job in jobs:
        if not is_done(job_dir(job, root)):
            todo.setdefault(job.key, job)
    workers = workers or _cores()
    if todo:
        bar = _bar(len(todo), desc, progress)
        if workers == 1 or len(todo) == 1:
            for job in todo.values():
                _run_one(job.target, job.spec, str(job_dir(job, root)), threads)
                bar.update(1)
        else:
            _run_pool(list(todo.values()), root, min(workers, len(todo)), threads, bar)
        bar.close()
    return [job_dir(job, root) for job in jobs]


def _run_pool(jobs: list[Job], root, workers: int, threads: int, bar) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    # Children inherit the environment: one OpenMP thread each, set before they import torch.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    context = multiprocessing.get_context("spawn")  # never fork a process that holds torch threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent) as pool:
        futures = {pool.submit(_run_one, j.target, j.spec, str(job_dir(j, root)), threads): j for j in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    wait(pending)
                    raise error
                bar.update(1)


def _run_one(target: str, spec: dict, out: str, threads: int) -> None:
    import fcntl

    import torch

    torch.set_num_threads(threads)
    out_dir = Path(out)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # One process at a time per job: a rerun started while a killed run's worker is still
    # finishing waits for it (and then finds the job done) instead of writing the same files.
    with open(out_dir.with_name(out_dir.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_done(out_dir):
            return
        partial = out_dir.with_name(out_dir.name + ".partial")
        partial.mkdir(exist_ok=True)
        (partial / "spec.json").write_text(json.dumps({"target": target, "spec": spec}, indent=1, default=str))
        module, function = target.split(":")
        getattr(importlib.import_module(module), function)(spec, partial)
        (partial / "DONE").write_text(canonical_json({"target": target}))
        if out_dir.exists():  # a folder without DONE: left by an older layout; replace it
            shutil.rmtree(out_dir)
        os.replace(partial, out_dir)


def _die_with_parent() -> None:
    """Pool workers get SIGKILL when the process that started them dies (Linux), so a killed
    notebook leaves no job running behind it; its partial folder is continued by the rerun."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="job", disable=not progress, leave=False)


def read_json(path: Path, name: str) -> Any:
    return json.loads((path / name).read_text())
