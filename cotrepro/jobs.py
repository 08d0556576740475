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

With `launcher="accelerate"` a fine-tune job runs instead as N data-parallel processes,
`accelerate launch --num_processes N -m cotrepro.jobs TARGET SPEC OUT` (`launch_job`): each
process is one rank of the Trainer's DDP, the per-device batch is the spec's divided by N (the
global batch does not change), and rank 0 alone writes the job's final files
(tests/engines/test_accelerate.py, `make test-engines`).
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
             progress: bool = True, desc: str = "jobs", launcher: str = "none", processes: int = 1) -> list[Path]:
    """Run every job of `jobs` that is not done yet; returns each job's folder, in order.

    `workers` processes run at once (None: one per core); with one worker, or one job to do, the
    jobs run in this process. A failing job raises its error after the jobs already running
    have finished (the finished ones stay stored).

    `launcher="accelerate"` (`ComputeSection.launcher`) runs each fine-tune job (kind in
    `LAUNCHED_KINDS`: SFT, RFT, DPO) as `accelerate launch --num_processes <processes> -m
    cotrepro.jobs TARGET SPEC OUT`, one after another, each a data-parallel run over all
    `processes`; the other jobs run as above.
    """
    if launcher not in ("none", "accelerate"):
        raise ValueError(f"unknown launcher {launcher!r}; choose none or accelerate")
    todo: dict[str, Job] = {}
    for job in jobs:
        if not is_done(job_dir(job, root)):
            todo.setdefault(job.key, job)
    if launcher == "accelerate":
        launched = [job for job in todo.values() if job.kind in LAUNCHED_KINDS]
        if launched:
            bar = _bar(len(launched), f"{desc} (accelerate, {processes} processes)", progress)
            for job in launched:
                launch_job(job, root, processes=processes, threads=threads)
                bar.update(1)
            bar.close()
            todo = {key: job for key, job in todo.items() if job.kind not in LAUNCHED_KINDS}
    workers = workers or _default_workers()
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


LAUNCHED_KINDS = ("finetune",)  # the jobs launcher="accelerate" runs data-parallel (train and dpo jobs)


def accelerate_command(target: str, spec_path: str | Path, out: str | Path, *, processes: int,
                       threads: int = 1) -> list[str]:
    """The `accelerate launch` command that runs one job on `processes` processes.

    `--multi_gpu` is accelerate's torchrun launcher: N processes, one per GPU with NCCL, or, on a
    machine without a GPU, N CPU processes with gloo (the Trainer runs with `use_cpu` there).
    accelerate's `--cpu` is added only for a single process without a GPU: with `--cpu`,
    accelerate 1.x starts ONE process whatever `--num_processes` says (its simple launcher,
    multi-process only through mpirun).
    """
    import sys

    import torch

    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", str(threads)]
    if processes > 1:
        command += ["--multi_gpu", "--main_process_port", "0"]  # 0: a free port, so launches never collide
    elif not torch.cuda.is_available():
        command.append("--cpu")
    return command + ["-m", "cotrepro.jobs", target, str(spec_path), str(out), "--threads", str(threads)]


def launch_job(job: Job, root: str | Path | None, *, processes: int, threads: int = 1) -> Path:
    """Run `job` under `accelerate launch` (see `accelerate_command`) and return its folder.

    The ranks share the job's partial folder; rank 0 alone writes its final files, DONE and the
    rename (`python -m cotrepro.jobs`, `_run_ranks`). Output goes to this process's stdout/stderr.
    """
    import subprocess

    out = job_dir(job, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec_path = out.with_name(out.name + ".launch.json")  # specs hold whole datasets: too long for argv
    spec_path.write_text(json.dumps(per_device_spec(job.spec, processes), default=str))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    try:
        result = subprocess.run(accelerate_command(job.target, spec_path, out, processes=processes, threads=threads),
                                env=env)
    finally:
        spec_path.unlink(missing_ok=True)
    if result.returncode != 0:
        raise RuntimeError(f"job {job.label or job.key} ({job.target}) failed under accelerate launch "
                           f"(exit status {result.returncode}); its ranks' errors are above")
    if not is_done(out):
        raise RuntimeError(f"job {job.label or job.key}: accelerate launch returned but {out} has no DONE")
    return out


def per_device_spec(spec: dict, processes: int) -> dict:
    """`spec` with its training batch split over `processes` data-parallel ranks.

    The Trainer's global batch is processes x batch_size x grad_accum; dividing batch_size (or,
    where it does not divide, grad_accum) by `processes` keeps it at the spec's batch_size x
    grad_accum. So a fine-tune learns the same whether 1 or N processes ran it (up to float
    rounding: tests/engines/test_accelerate.py), and its cache key, the spec's, stays true.
    """
    if processes == 1:
        return spec
    import copy

    from cotrepro.sections import TrainParams

    out = copy.deepcopy(spec)
    sections = [out[k]["train"] for k in ("finetune", "dpo") if isinstance(out.get(k), dict)
                and isinstance(out[k].get("train"), dict)]
    if not sections:
        raise ValueError("a launched job's spec needs a finetune.train or dpo.train section (its batch)")
    for train in sections:
        batch = train.get("batch_size", TrainParams.batch_size)
        accum = train.get("grad_accum", TrainParams.grad_accum)
        if batch % processes == 0:
            train["batch_size"] = batch // processes
        elif accum % processes == 0:
            train["grad_accum"] = accum // processes
        else:
            raise ValueError(f"the global batch (batch_size {batch} x grad_accum {accum}) cannot be split over "
                             f"{processes} processes: make batch_size or grad_accum a multiple of {processes}")
    return out


def _run_ranks(target: str, spec: dict, out: str, threads: int) -> None:
    """One rank of a job launched on several processes: `_run_one`'s protocol, made rank-safe.

    Rank 0 holds the job's lock, makes the partial folder and writes spec.json; every rank runs the
    job function in that folder (the Trainer shards the batches and all-reduces the gradients);
    only rank 0 writes the results (`train.is_main_process`), then DONE, and renames the folder.
    Before training, rank 0 deletes incomplete checkpoints, so the ranks agree on where to resume.
    """
    import fcntl

    import torch
    from accelerate import PartialState

    torch.set_num_threads(threads)
    state = PartialState(cpu=not torch.cuda.is_available())  # joins the process group (gloo, nccl); sets the GPU
    out_dir = Path(out)
    partial = out_dir.with_name(out_dir.name + ".partial")
    lock = None
    done = None
    if state.is_main_process:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        lock = open(out_dir.with_name(out_dir.name + ".lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = is_done(out_dir)
        if not done:
            partial.mkdir(exist_ok=True)
            record = {"target": target, "spec": spec, "processes": state.num_processes}
            (partial / "spec.json").write_text(json.dumps(record, indent=1, default=str))
            from cotrepro.train import last_checkpoint

            last_checkpoint(partial / "train")  # deletes incomplete checkpoints now, on one rank
    flag = [done]
    torch.distributed.broadcast_object_list(flag, src=0)
    if flag[0]:
        if lock is not None:
            lock.close()
        return
    module, function = target.split(":")
    job = getattr(importlib.import_module(module), function)
    if not state.is_main_process:
        job(spec, partial)
        return
    try:
        job(spec, partial)
        (partial / "DONE").write_text(canonical_json({"target": target}))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(partial, out_dir)
    finally:
        lock.close()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m cotrepro.jobs TARGET SPEC OUT_DIR [--threads N]`: run one job in this process.

    SPEC is a JSON file (or JSON text); OUT_DIR the job's folder (`job_dir`). Alone, this is
    `run_jobs` for one job; under `accelerate launch` (WORLD_SIZE > 1) this process is one rank.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cotrepro.jobs", description=main.__doc__.splitlines()[0])
    parser.add_argument("target", help="module:function")
    parser.add_argument("spec", help="the job's spec: a JSON file, or JSON text")
    parser.add_argument("out", help="the job's folder")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    text = args.spec if args.spec.lstrip().startswith("{") else Path(args.spec).read_text()
    spec = json.loads(text)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _run_ranks(args.target, spec, args.out, args.threads)
    else:
        _run_one(args.target, spec, args.out, args.threads)


def _die_with_parent() -> None:
    """Pool workers get SIGKILL when the process that started them dies (Linux), so a killed
    notebook leaves no job running behind it; its partial folder is continued by the rerun."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _default_workers() -> int:
    """One job per core on a CPU machine; one at a time where a GPU is present (jobs on one GPU
    would compete for its memory: a GPU machine parallelises inside each job instead)."""
    import torch

    if torch.cuda.is_available():
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="job", disable=not progress, leave=False)


def read_json(path: Path, name: str) -> Any:
    return json.loads((path / name).read_text())


if __name__ == "__main__":
    main()
