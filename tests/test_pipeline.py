"""The runner: notebooks under papermill, the pipeline of a scale, figures from stored results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cotrepro import pipeline
from cotrepro.findings import claim_list

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="needs ../shared/data")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Steps 00, 01 and 90 of the smoke pipeline, run once for this module."""
    root = tmp_path_factory.mktemp("runs")
    figures = tmp_path_factory.mktemp("figures")
    mp = pytest.MonkeyPatch()
    mp.setenv("COTREPRO_FIGURES", str(figures))
    mp.setenv("COTREPRO_ALLOW_CODE_EXECUTION", "1")
    executed = pipeline.reproduce("smoke", only=["00", "01", "90"], run_root=root)
    yield root, figures / "smoke", executed
    mp.undo()


@pytest.mark.slow
def test_steps_run_in_order_and_keep_executed_notebooks(smoke_run):
    root, _, executed = smoke_run
    assert [p.name for p in executed] == ["00_verifier_sanity.ipynb", "01_pretrain_micro_world.ipynb",
                                          "90_write_findings.ipynb"]
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), path
        assert (path.parent / "DONE.json").exists()
        assert (path.parent / "params.yaml").exists() and (path.parent / "manifest.json").exists()


@pytest.mark.slow
def test_verifier_sanity_table_grades_every_gold_correct(smoke_run):
    _, figures, _ = smoke_run
    lines = (figures / "verifier_sanity.md").read_text().splitlines()
    rows = [l for l in lines[2:] if l.startswith("|")]
    assert {r.split("|")[1].strip() for r in rows} == {"gsm8k", "math500", "math", "countdown", "mbpp"}
    csv = (figures / "verifier_sanity.csv").read_text().splitlines()
    header = csv[0].split(",")
    rate = header.index("gold_pass_rate")
    assert all(float(line.split(",")[rate]) == 1.0 for line in csv[1:])


@pytest.mark.slow
def test_findings_lists_every_claim_with_a_verdict(smoke_run):
    _, figures, _ = smoke_run
    text = (figures / "FINDINGS.md").read_text()
    table = [l for l in text.splitlines() if l.startswith("| ") and not l.startswith("| claim")]
    ids = {l.split("|")[1].strip() for l in table}
    assert ids == {c["id"] for c in claim_list()}
    for line in table:
        assert line.split("|")[2].strip() in ("reproduced", "not reproduced", "inconclusive", "not run")


@pytest.mark.slow
def test_rerun_skips_stored_steps(smoke_run, capsys):
    root, _, _ = smoke_run
    pipeline.reproduce("smoke", only=["00", "01"], run_root=root)
    out = capsys.readouterr().out
    assert out.count("skipped") == 2 and "running" not in out


@pytest.mark.slow
def test_figures_regenerate_from_stored_results_without_training(smoke_run, monkeypatch):
    root, figures, _ = smoke_run
    import cotrepro.micro

    def no_training(*args, **kwargs):
        raise AssertionError("figures must not train")

    monkeypatch.setattr(cotrepro.micro, "pretrain_micro", no_training)
    before = (figures / "verifier_sanity.md").read_text()
    (figures / "verifier_sanity.md").unlink()
    written = pipeline.figures("smoke", run_root=root)
    assert figures / "verifier_sanity.md" in written and figures / "FINDINGS.md" in written
    assert (figures / "verifier_sanity.md").read_text() == before


def test_failed_step_names_its_executed_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    params_cell = nbformat.v4.new_code_cell("params_file = ''\nrun_root = ''")
    params_cell.metadata["tags"] = ["parameters"]
    nb.cells = [params_cell, nbformat.v4.new_code_cell("raise RuntimeError('boom')")]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    notebook = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, notebook)
    params = tmp_path / "broken.yaml"
    params.write_text("experiment: broken\n")
    with pytest.raises(pipeline.StepFailed) as err:
        pipeline.run_notebook(notebook, params, run_root=tmp_path / "runs")
    message = str(err.value)
    assert "99_broken failed (RuntimeError: boom)" in message
    executed = Path(message.split("executed notebook: ")[1])
    assert executed.exists() and executed.name == "99_broken.ipynb"
    assert not (executed.parent / "DONE.json").exists()


def test_bad_params_stop_the_runner_with_one_line(tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text("experiment: x\ntrain: {lr: fast}\n")
    out = subprocess.run([sys.executable, "-m", "cotrepro.cli", "run", "notebooks/00_verifier_sanity.ipynb",
                          "-f", str(params), "--run-root", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    assert out.stderr.strip() == f"cotrepro run: error: {params}: train.lr: expected a number, got str 'fast'"


def test_every_step_has_its_notebook_and_every_notebook_is_paired_and_clean():
    for scale in ("micro", "smoke", "paper"):
        assert pipeline.steps(scale), scale
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert notebook.with_suffix(".py").exists(), f"{notebook} has no jupytext pair"
        nb = nbformat.read(notebook, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{notebook} has outputs"
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{notebook}: one cell must be tagged parameters"
        assert "params_file" in tagged[0].source and "run_root" in tagged[0].source
        for cell in code:
            assert not cell.source.lstrip().startswith(("def ", "class ")) and "\ndef " not in cell.source \
                and "\nclass " not in cell.source, f"{notebook}: notebooks define no functions or classes"
        paired = subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "--output", "-",
                                 str(notebook.with_suffix(".py"))], capture_output=True, text=True, check=True)
        cells = [c.source for c in nbformat.reads(paired.stdout, as_version=4).cells]
        assert cells == [c.source for c in nb.cells], f"{notebook} is out of sync with its .py"
