"""Every command the README shows is run exactly as printed, in a fresh copy of the repository;
among them `cotrepro reproduce --scale smoke`, the whole pipeline from nothing, whose results are
then checked: every step ran on the shipped world (step 01 rebuilt a tiny one from scratch on the
way), nothing was written into run folders by hand, a second run finds everything stored, and the
figures regenerate from the stored results to the same bytes.

The copy holds the tracked and untracked (not ignored) files, as a fresh clone plus a user's edits
would, with `../shared` beside it; `PYTHONPATH` points at the copy, so the console script runs the
copy's code and writes only into the copy. The files the grading examples name are written first
(the README shows their format). Not run here: `make test` (this suite is it), `make reproduce`
(90 minutes: CI-sized runs of it are the smoke pipeline), installs, and `jupyter lab`, which is
started and stopped once its server answers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NOT_RUN = ("make ", "pip ", "python3.11 -m venv", "conda ", "source ", "jupyter lab", "accelerate ",
           "cat ", "git ", "PIP_", "python -m venv")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (REPO / "world" / "MANIFEST.json").is_file(),
                                                   reason="needs the shipped micro world")]


def readme_commands() -> list[str]:
    """Command lines of the README's bash blocks (comments stripped, `$ ` prompts dropped)."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip().removeprefix("$ ")
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def fresh_copy(tmp: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    copy = tmp / "cotrepro"
    for name in files:
        source = REPO / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    (tmp / "shared").symlink_to(REPO.parent / "shared")
    return copy


GSM8K = [{"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "#### 7",
          "completion": "3 + 4 = 7\n#### 7"},
         {"question": "A box holds 6 pens. How many pens are in 2 boxes?", "answer": "12",
          "completion": "6 * 2 = 10\n#### 10"}]
MBPP = [{"task_id": 2, "text": "Write a function that adds two numbers.", "test_list": ["assert add(1, 2) == 3"],
         "test_setup_code": "", "completion": "def add(a, b):\n    return a + b"}]


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    root = fresh_copy(tmp_path_factory.mktemp("clone"))
    (root / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GSM8K))
    (root / "mbpp_completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MBPP))
    return root


def test_the_readme_shows_the_commands_a_user_needs():
    commands = readme_commands()
    for wanted in ("make reproduce", "make test", "cotrepro validate", "cotrepro plan", "cotrepro run",
                   "cotrepro reproduce --scale smoke", "cotrepro figures", "cotrepro grade gsm8k",
                   "cotrepro world --json", "jupyter lab"):
        assert any(c.startswith(wanted) for c in commands), f"the README shows no {wanted!r}"


def user_env(copy: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(copy), "PATH": f"{BIN}:{os.environ['PATH']}"}
    for name in ("COTREPRO_RUNS", "COTREPRO_FIGURES"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def ran(copy):
    """Every runnable command of the README, in order, in the copy: (command, result) pairs."""
    results = []
    for command in readme_commands():
        if not command.startswith(NOT_RUN):
            # through a shell, as a user types it: globs such as params/micro/*.yaml expand
            results.append((command, subprocess.run(["bash", "-c", command], cwd=copy, capture_output=True,
                                                    text=True, env=user_env(copy), timeout=1500)))
    return results


def test_every_cotrepro_command_of_the_readme_runs_as_printed(ran, copy):
    for command, out in ran:
        assert out.returncode == 0, f"{command}\n{out.stdout[-1500:]}\n{out.stderr[-3000:]}"
        assert "Traceback" not in out.stderr and "WARNING" not in out.stderr, f"{command}\n{out.stderr[-3000:]}"
    assert len(ran) >= 8 and (copy / "graded.jsonl").is_file()


def test_the_smoke_pipeline_ran_every_step_from_nothing(ran, copy):
    from cotrepro import claims, steps

    root, figures = copy / "runs", copy / "figures" / "smoke"
    stems = [f.stem for f in steps.params_files("smoke")]
    assert len(list(root.glob("*/*/DONE.json"))) == len(stems)
    world = next(root.glob("micro_world/*/world"))  # step 01 rebuilt a world from scratch
    assert (world / "MANIFEST.json").is_file() and (world / "student" / "model.safetensors").is_file()
    sets = next(root.glob("sample_teacher_traces/*/sets"))
    sizes = {p.stem: len(p.read_text().splitlines()) for p in sets.glob("*.jsonl")}
    assert sizes["H"] == sizes["G"] == sizes["W"] >= 4  # the shipped teacher's own G and W traces
    rows = (figures / "findings.csv").read_text().splitlines()[1:]
    assert {r.split(",")[0] for r in rows} == {c["id"] for c in claims.claim_list()}
    assert "not run" not in (figures / "FINDINGS.md").read_text()


def test_a_second_run_finds_every_step_stored_and_figures_regenerate_the_same(ran, copy):
    env = user_env(copy)
    again = subprocess.run(["cotrepro", "reproduce", "--scale", "smoke"], cwd=copy, capture_output=True, text=True,
                           env=env, timeout=600)
    assert again.returncode == 0 and "running" not in again.stdout, again.stdout
    figures = copy / "figures" / "smoke"
    tables = {p.name: p.read_bytes() for p in figures.iterdir() if p.suffix in (".md", ".csv")}
    for name in sorted(tables)[:4]:
        (figures / name).unlink()
    out = subprocess.run(["cotrepro", "figures", "--scale", "smoke"], cwd=copy, capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert {p.name: p.read_bytes() for p in figures.iterdir() if p.suffix in (".md", ".csv")} == tables


def test_jupyter_lab_starts(copy, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(copy), "JUPYTER_RUNTIME_DIR": str(tmp_path),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    process = subprocess.Popen([str(BIN / "jupyter"), "lab", "--no-browser", "--port=0", "--allow-root",
                                "--ServerApp.token=", f"--notebook-dir={copy / 'notebooks'}"], cwd=copy, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, seen = time.time() + 120, ""
        while time.time() < deadline and "http://" not in seen:
            seen += process.stdout.readline()
        assert "http://" in seen, seen[-2000:]
    finally:
        process.terminate()
        process.wait(timeout=30)
