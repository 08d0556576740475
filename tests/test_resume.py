"""A killed run resumes without losing or duplicating work, whatever moment it was killed.

The real CLI (`cotrepro run ...`) is started in its own session and SIGKILLed, with everything it
started (the papermill kernel, job workers), at several moments: while the teacher samples, while
a fine-tune writes a checkpoint, while a model is evaluated, and while the figures are written.
The same command is then run again; it must finish, and the step's stored results and tables
must equal, byte for byte, those of a run that was never interrupted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "cotrepro")
STEP02 = ["run", "notebooks/02_sample_teacher_traces.ipynb", "-f", "params/smoke/02_sample_teacher_traces.yaml"]
STEP03 = ["run", "notebooks/03_train_on_traces.ipynb", "-f", "params/smoke/03_train_on_traces.yaml"]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (REPO / "world" / "MANIFEST.json").is_file(),
                                                   reason="needs the shipped micro world")]


def env_for(root: Path) -> dict:
    (root / "tmp").mkdir(parents=True, exist_ok=True)  # a killed kernel's sockets stay in there
    return {**os.environ, "COTREPRO_RUNS": str(root), "COTREPRO_FIGURES": str(root / "figures"),
            "TMPDIR": str(root / "tmp")}


def run(args: list[str], root: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([CLI, *args], capture_output=True, text=True, cwd=REPO, env=env_for(root), timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def kill_when(args: list[str], root: Path, ready, timeout: float = 300) -> bool:
    """Start the command and SIGKILL its whole session as soon as `ready()` holds; False if the
    command finished first."""
    sockets_before = set(REPO.glob("kernel-ipc-*"))
    process = subprocess.Popen([CLI, *args], cwd=REPO, env=env_for(root), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and process.poll() is None:
            if ready():
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                # the killed kernel's socket files are left behind, but not in the repository
                assert set(REPO.glob("kernel-ipc-*")) == sockets_before
                return True
            time.sleep(0.01)
        return False
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def results(root: Path, step: str) -> dict[str, bytes]:
    """What a step stored and tabled: its run folder's JSON and its figures' tables."""
    stored = {p.name: p.read_bytes() for p in (root / step).glob("*/*.json") if p.name not in ("DONE.json",
                                                                                                "manifest.json")}
    tables = {p.name: p.read_bytes() for p in (root / "figures" / "smoke").glob(f"{step}*") if p.suffix in (".md", ".csv")}
    return {**stored, **tables}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    run(STEP02, root)
    run(STEP03, root)
    return root, results(root, "sample_teacher_traces"), results(root, "train_on_traces")


def share_step02(reference_root: Path, root: Path) -> None:
    """Step 02's stored run (and the job cache it filled) copied from the reference."""
    shutil.copytree(reference_root / "sample_teacher_traces", root / "sample_teacher_traces")


def test_killed_while_the_teacher_samples(reference, tmp_path):
    _, want, _ = reference
    samples = tmp_path / "sample_teacher_traces"
    killed = kill_when(STEP02, tmp_path, lambda: any(p.stat().st_size for p in samples.glob("*/teacher_samples.jsonl")))
    assert killed, "the run finished before it could be killed mid-sampling"
    run(STEP02, tmp_path)
    assert results(tmp_path, "sample_teacher_traces") == want


@pytest.mark.parametrize("moment, ready", [
    ("while a checkpoint is written", lambda root: any((root / "cache" / "finetune").glob("*.partial/train/checkpoint-*"))),
    ("while a model is evaluated", lambda root: any((root / "cache" / "evaluate").glob("*.partial/generations.jsonl"))),
    ("while the figures are written", lambda root: any((root / "figures" / "smoke").glob("train_on_traces*"))),
])
def test_killed_during_step_03(reference, tmp_path, moment, ready):
    reference_root, _, want = reference
    share_step02(reference_root, tmp_path)
    assert kill_when(STEP03, tmp_path, lambda: ready(tmp_path)), f"the run finished before it was killed {moment}"
    run(STEP03, tmp_path)
    assert results(tmp_path, "train_on_traces") == want, moment
    leftovers = list((tmp_path / "cache").glob("*/*.partial"))
    assert not leftovers, f"unfinished job folders after the rerun: {leftovers}"
