"""`cotrepro.jobs.run_jobs`: the same bytes with one worker (in this process) and with two (spawned
processes); a done job is not rerun; a killed run leaves `<key>.partial/` that the rerun finishes;
a failing job raises its own error while the other jobs' results stay stored.

The jobs (`tests/_jobs_fixture.py`) of the byte comparison train the tiny Llama of `tests/_tiny.py`
for a few steps and sample from it, so float determinism across processes is what is compared; the
kill and failure tests use a lighter torch job (a seeded SGD fit, resumable from its checkpoints)
so that their pool workers start without transformers.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cotrepro import jobs

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TEXT = "Question: 3 + 4 = ?\nAnswer: 3 + 4 = 7\n#### 7"
COMPARED = ("spec.json", "DONE", "result.json", "weights.bin")


def train(seed: int, steps: int = 6, text: str = TEXT) -> jobs.Job:
    return jobs.Job("testtrain", "_jobs_fixture:train_job", {"seed": seed, "steps": steps, "text": text},
                    label=f"train s={seed}")


JOBS = [train(0), train(1), train(2, steps=4, text=TEXT.replace("7", "8"))]


@pytest.fixture(autouse=True)
def importable_fixture(monkeypatch):
    """The spawned workers import `_jobs_fixture` and `_tiny` from tests/."""
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", str(TESTS) + (os.pathsep + path if path else ""))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # run_jobs sets it in os.environ; restore afterwards
    monkeypatch.syspath_prepend(str(TESTS))


def outputs(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in COMPARED}


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory):
    """The jobs run into two run roots, with one worker and with two."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    mp.setenv("OMP_NUM_THREADS", "1")
    mp.syspath_prepend(str(TESTS))
    one, two = tmp_path_factory.mktemp("one_worker"), tmp_path_factory.mktemp("two_workers")
    try:
        dirs_one = jobs.run_jobs(JOBS, one, workers=1, progress=False)
        dirs_two = jobs.run_jobs(JOBS, two, workers=2, progress=False)
    finally:
        mp.undo()
    return one, two, dirs_one, dirs_two


def test_one_and_two_workers_write_the_same_bytes(clean_runs):
    one, two, dirs_one, dirs_two = clean_runs
    assert [d.name for d in dirs_one] == [j.key for j in JOBS] == [d.name for d in dirs_two]
    assert len({j.key for j in JOBS}) == len(JOBS)
    for job, a, b in zip(JOBS, dirs_one, dirs_two):
        assert a == one / "cache" / "testtrain" / job.key and b == two / "cache" / "testtrain" / job.key
        assert jobs.is_done(a) and jobs.is_done(b)
        assert not a.with_name(a.name + ".partial").exists() and not b.with_name(b.name + ".partial").exists()
        assert not (a / "checkpoint.pt").exists()
        ours, theirs = outputs(a), outputs(b)
        for name in COMPARED:
            assert ours[name] == theirs[name], f"{job.label}: {name} differs between 1 and 2 workers"
    # the jobs did real, different work: a model that learned, and distinct weights per spec
    import json

    losses = [float(x) for x in json.loads((dirs_one[0] / "result.json").read_text())["losses"]]
    assert losses[-1] < losses[0]
    weights = {(d / "weights.bin").read_bytes() for d in dirs_one}
    assert len(weights) == len(JOBS)


def test_a_done_job_is_not_rerun(clean_runs):
    one, two, dirs_one, dirs_two = clean_runs
    before = {d: (d / "DONE").stat().st_mtime_ns for d in dirs_one + dirs_two}
    contents = {d: outputs(d) for d in dirs_one + dirs_two}
    started = time.perf_counter()
    again_one = jobs.run_jobs(JOBS, one, workers=2, progress=False)
    again_two = jobs.run_jobs(list(reversed(JOBS)), two, workers=1, progress=False)
    elapsed = time.perf_counter() - started
    assert again_one == dirs_one and again_two == list(reversed(dirs_two))
    assert {d: (d / "DONE").stat().st_mtime_ns for d in dirs_one + dirs_two} == before
    assert {d: outputs(d) for d in dirs_one + dirs_two} == contents
    assert elapsed < 2.0, f"checking done jobs took {elapsed:.1f} s: something ran"


def _lock_is_free(lock: Path) -> bool:
    with open(lock, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def regress(seed: int, sleep: float = 0.0) -> jobs.Job:
    return jobs.Job("testtrain", "_jobs_fixture:regress_job", {"seed": seed, "steps": 50, "sleep": sleep},
                    label=f"regress s={seed}")


def test_a_killed_run_leaves_partial_folders_that_the_rerun_completes(tmp_path):
    root, clean_root = tmp_path / "killed", tmp_path / "clean"
    killed = [regress(0), regress(1)]
    clean = jobs.run_jobs(killed, clean_root, workers=1, progress=False)  # uninterrupted, in this process
    script = textwrap.dedent(f"""
        from cotrepro import jobs
        from test_jobs import regress
        jobs.run_jobs([regress(0), regress(1)], {str(root)!r}, workers=2, progress=False)
    """)
    env = {**os.environ, "JOBS_FIXTURE_STALL_AT": "30"}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    partials = [jobs.job_dir(j, root).with_name(j.key + ".partial") for j in killed]
    try:
        deadline = time.monotonic() + 90
        while not all((p / "stalled").is_file() for p in partials):
            assert proc.poll() is None, f"the run ended early: {proc.communicate()[1].decode()[-2000:]}"
            assert time.monotonic() < deadline, "the jobs never reached their stall point"
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    for job, partial in zip(killed, partials):
        assert partial.is_dir() and (partial / "checkpoint.pt").is_file()
        assert not jobs.job_dir(job, root).exists() and not jobs.is_done(jobs.job_dir(job, root))
    # the pool workers die with the process that started them: their locks come free
    locks = [jobs.job_dir(j, root).with_name(j.key + ".lock") for j in killed]
    deadline = time.monotonic() + 20
    while not all(_lock_is_free(lock) for lock in locks):
        assert time.monotonic() < deadline, "a pool worker outlived the killed run (its job lock is held)"
        time.sleep(0.2)
    # the rerun continues each partial folder (from its step-30 checkpoint) to the same bytes
    done = jobs.run_jobs(killed, root, workers=1, progress=False)
    for job, folder, reference, partial in zip(killed, done, clean, partials):
        assert jobs.is_done(folder) and not partial.exists()
        assert (folder / "resumed_from.txt").read_text() == "30", "the rerun started over instead of resuming"
        assert (folder / "weights.bin").read_bytes() == (reference / "weights.bin").read_bytes(), \
            f"{job.label}: the resumed run differs from an uninterrupted one"
    assert (done[0] / "weights.bin").read_bytes() != (done[1] / "weights.bin").read_bytes()


def test_a_failing_job_raises_its_error_and_the_others_stay_stored(tmp_path):
    fail = jobs.Job("testtrain", "_jobs_fixture:fail_job", {"why": "bad spec"}, label="fails")
    # one worker, in this process: the jobs before the failing one are stored
    one = tmp_path / "one"
    with pytest.raises(ValueError, match="fixture job failed on purpose: bad spec"):
        jobs.run_jobs([regress(0), fail, regress(1)], one, workers=1, progress=False)
    first = jobs.job_dir(regress(0), one)
    assert jobs.is_done(first)
    assert not jobs.is_done(jobs.job_dir(fail, one))
    assert (jobs.job_dir(fail, one).with_name(fail.key + ".partial") / "started").is_file()
    # two workers: the job running beside the failing one finishes and is stored, same bytes
    two = tmp_path / "two"
    with pytest.raises(ValueError, match="fixture job failed on purpose: bad spec"):
        jobs.run_jobs([regress(0, sleep=1.0), fail], two, workers=2, progress=False)
    beside = jobs.job_dir(regress(0, sleep=1.0), two)
    assert jobs.is_done(beside)
    assert (beside / "weights.bin").read_bytes() == (first / "weights.bin").read_bytes()
    assert not jobs.is_done(jobs.job_dir(fail, two))
    # the rerun redoes only the failed job (and fails again); the stored one is not touched
    mtime = (first / "DONE").stat().st_mtime_ns
    with pytest.raises(ValueError, match="bad spec"):
        jobs.run_jobs([regress(0), fail], one, workers=1, progress=False)
    assert (first / "DONE").stat().st_mtime_ns == mtime
