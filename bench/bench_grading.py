"""Grading throughput: the parallel grader against grading one item at a time in one process.

    .venv/bin/python bench/bench_grading.py [--data-dir ../shared/data] [--workers N]

MATH500: the 500 gold solutions graded against their answers with math-verify, once through
`grade_records` (a pool with a hard per-item limit) and once by calling the task's verify (which
calls math-verify) item after item in this process, the baseline, in the same run. MBPP: the 974
gold programs run against their asserts through the pool. Prints a Markdown table and writes it
to bench/results/grading.md. On a shared machine the load average is part of the result.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _machine import cpu_name
from cotrepro.grade import grade_records, summarize
from cotrepro.tasks import get_task
from cotrepro.tasks.hub import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "grading.md"



def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def serial(task_name: str, records: list[dict]) -> list[bool]:
    task = get_task(task_name)
    return [task.verify(task.from_record(r, i), r["completion"]).correct for i, r in enumerate(records)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    workers = args.workers or cores

    math500 = [{**r, "completion": r["solution"]} for r in read_jsonl(args.data_dir / "math500" / "test.jsonl")]
    mbpp = [{**r, "completion": r["code"]} for r in read_jsonl(args.data_dir / "mbpp" / "mbpp.jsonl")]

    load_before = os.getloadavg()[0]
    baseline, baseline_s = timed(lambda: serial("math500", math500))
    pooled, pooled_s = timed(lambda: grade_records("math500", math500, workers=workers, progress=False))
    programs, programs_s = timed(lambda: grade_records("mbpp", mbpp, workers=workers, progress=False,
                                                       allow_code_execution=True))
    load_after = os.getloadavg()[0]

    rows = [("MATH500 gold, math-verify one at a time, one process (baseline)", len(math500),
             baseline_s, sum(baseline) / len(baseline)),
            (f"MATH500 gold, parallel grader ({workers} workers)", len(math500), pooled_s,
             summarize(pooled)["accuracy"]),
            (f"MBPP gold programs, parallel grader ({workers} workers)", len(mbpp), programs_s,
             summarize(programs)["accuracy"])]
    lines = [f"# Grading throughput ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"Machine: {cpu_name()}, {cores} cores; load average {load_before:.1f} before, "
             f"{load_after:.1f} after (other jobs shared the machine).", "",
             "| what | items | seconds | items/s | accuracy |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {n} | {s:.1f} | {n / s:.1f} | {acc:.3f} |" for name, n, s, acc in rows]
    lines += ["", f"Parallel speed-up on MATH500: {baseline_s / pooled_s:.2f}x. Both timings include "
              "start-up (importing math-verify; for the pool, starting the workers). The pool buys a "
              "hard per-item time limit; its speed-up is bounded by the cores left free by other jobs."]
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
