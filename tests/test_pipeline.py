"""The runner and the notebooks: hygiene of every notebook, a notebook refuses the wrong params,
paths resolve against the repository whatever the working directory, failed and degenerate steps
are not marked done, and `cotrepro figures` never overwrites results with nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cotrepro import pipeline, steps

REPO = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).parent / "cotrepro")]


def cli(*args, cwd=REPO, env=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=600)


def one_error_line(out, command: str) -> str:
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"cotrepro {command}: error: ")
    return lines[0]


def test_every_notebook_is_paired_clean_and_thin():
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert notebook.with_suffix(".py").exists(), f"{notebook} has no jupytext pair"
        assert notebook.stem in {s.stem for s in steps.STEPS}, f"{notebook} is no step of cotrepro.steps"
        nb = nbformat.read(notebook, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{notebook} has outputs"
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{notebook}: one cell must be tagged parameters"
        assert 'params_file = "params/' in tagged[0].source and 'run_root = "runs"' in tagged[0].source
        assert nb.cells[0].cell_type == "markdown" and "Run: `cotrepro run notebooks/" in nb.cells[0].source
        for cell in code:
            assert not any(line.lstrip().startswith(("def ", "class ")) for line in cell.source.splitlines()), \
                f"{notebook}: notebooks define no functions or classes"
        paired = subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "--output", "-",
                                 str(notebook.with_suffix(".py"))], capture_output=True, text=True, check=True)
        cells = [c.source for c in nbformat.reads(paired.stdout, as_version=4).cells]
        assert cells == [c.source for c in nb.cells], f"{notebook} is out of sync with its .py"


def test_a_notebook_refuses_a_params_file_of_another_step(tmp_path):
    out = cli("run", "notebooks/03_train_on_traces.ipynb", "-f", "params/smoke/02_sample_teacher_traces.yaml",
              "--run-root", str(tmp_path))
    line = one_error_line(out, "run")
    assert "params/smoke/02_sample_teacher_traces.yaml: step: the file is for 'sample_teacher_traces'" in line
    assert not list(tmp_path.rglob("DONE.json"))
    out = cli("run", "notebooks/03_train_on_traces.py", "-f", "params/smoke/03_train_on_traces.yaml",
              "--run-root", str(tmp_path))
    assert "run the notebook (.ipynb)" in one_error_line(out, "run")


def test_a_step_that_raises_is_not_marked_done_and_names_its_executed_notebook(tmp_path):
    # step 03 before step 02: it cannot find the sets, says which command to run, and is not done
    temp = tmp_path / "tmp"
    temp.mkdir()
    sockets_before = set(REPO.glob("kernel-ipc-*"))
    out = cli("run", "notebooks/03_train_on_traces.ipynb", "-f", "params/smoke/03_train_on_traces.yaml",
              "--run-root", str(tmp_path / "runs"), env={"TMPDIR": str(temp)})
    line = one_error_line(out, "run")
    assert "03_train_on_traces failed" in line and "run it first: cotrepro run notebooks/02_sample_teacher_traces" in line
    executed = tmp_path / "runs" / line.split("executed notebook: ")[1].split(str(tmp_path / "runs") + "/")[-1]
    assert executed.is_file() and not (executed.parent / "DONE.json").exists()
    # the kernel's sockets lived in a folder of their own, removed after it: none in the repository
    assert set(REPO.glob("kernel-ipc-*")) == sockets_before and not list(temp.iterdir())


def test_bad_params_stop_the_runner_with_one_line_naming_file_key_and_line(tmp_path):
    params = tmp_path / "03.yaml"
    params.write_text(f"include: {REPO}/params/smoke/03_train_on_traces.yaml\nfinetune:\n  train:\n    lr: fast\n")
    out = cli("run", "notebooks/03_train_on_traces.ipynb", "-f", str(params), "--run-root", str(tmp_path))
    assert one_error_line(out, "run") == (f"cotrepro run: error: {params}: finetune.train.lr: expected a number, "
                                          f"got str 'fast' (line 4)")


def test_figures_with_nothing_stored_write_nothing(tmp_path):
    figures = tmp_path / "figures"
    out = cli("figures", "--scale", "smoke", env={"COTREPRO_RUNS": str(tmp_path / "runs"),
                                                  "COTREPRO_FIGURES": str(figures)})
    assert "no stored results for scale smoke" in one_error_line(out, "figures")
    assert not figures.exists()


def test_figures_keep_the_rows_of_claims_no_stored_step_measured(tmp_path):
    from cotrepro.findings import write_findings

    out = tmp_path / "figures"
    write_findings([], out, "micro")
    rows = (out / "findings.csv").read_text().splitlines()
    assert all(",not run," in r for r in rows[1:])
    committed = (out / "findings.csv").read_text().replace("SoT-1,Shape of Thought,not run",
                                                           "SoT-1,Shape of Thought,reproduced")
    (out / "findings.csv").write_text(committed)
    write_findings([], out, "micro")  # nothing stored: the SoT-1 row stays as it was
    assert "SoT-1,Shape of Thought,reproduced" in (out / "findings.csv").read_text()
    assert "| SoT-1 | reproduced |" in (out / "FINDINGS.md").read_text()


def test_paths_resolve_against_the_repository_whatever_the_working_directory(tmp_path):
    code = ("from cotrepro.pipeline import locate; r = locate('params/smoke/03_train_on_traces.yaml', 'myruns'); "
            "print(r.params_file); print(r.root)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO / "notebooks",
                         check=True)
    params_file, root = out.stdout.split()
    assert params_file == str(REPO / "params/smoke/03_train_on_traces.yaml") and root == str(REPO / "myruns")


def test_a_regular_install_says_the_experiments_need_the_repository(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(REPO)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-m", "cotrepro.cli", "reproduce", "--scale", "smoke"], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and "the experiments need the cotrepro repository" in run.stderr
    assert "Traceback" not in run.stderr and not (target / "runs").exists() and not (target / "figures").exists()
    record = tmp_path / "g.jsonl"
    record.write_text(json.dumps({"question": "q", "answer": "#### 4", "completion": "#### 4"}) + "\n")
    graded = subprocess.run([sys.executable, "-m", "cotrepro.cli", "grade", "gsm8k", str(record)], cwd=tmp_path,
                            capture_output=True, text=True, env=env, timeout=120)
    assert graded.returncode == 0 and "accuracy=1.0000" in graded.stdout  # grading works from any install


def test_pipeline_selects_steps_by_number_name_or_stem():
    files = pipeline.pipeline("smoke", ["03", "train_on_traces", "90_write_findings"])
    assert [f.stem for f in files] == ["03_train_on_traces", "90_write_findings"]
    with pytest.raises(FileNotFoundError, match="no step 42 in params/smoke/"):
        pipeline.pipeline("smoke", ["42"])


def test_the_findings_step_is_rerun_when_a_step_it_reports_would_be(tmp_path, monkeypatch):
    """Step 90 reads every other step's stored results: another step's changed params give the
    findings a new run folder, so `reproduce` does not skip them as stored (it once did)."""
    repo = Path(__file__).resolve().parents[1]
    findings = repo / "params" / "smoke" / "90_write_findings.yaml"
    sanity = tmp_path / "params" / "smoke" / "00_verifier_sanity.yaml"
    sanity.parent.mkdir(parents=True)
    monkeypatch.setattr(steps, "params_files", lambda scale: [sanity, findings])
    folders = []
    for limit in (8, 9):
        data_dir = repo.parent / "shared" / "data"
        sanity.write_text(f"step: verifier_sanity\nscale: smoke\ndata: {{data_dir: {data_dir}}}\n"
                          f"datasets: [gsm8k]\nlimit: {limit}\n")
        folders.append(pipeline.locate(findings, tmp_path / "runs").path.name)
    assert folders[0] != folders[1]
