"""`cotrepro plan`: the cost of a run, counted from its params before it starts."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from cotrepro import steps
from cotrepro.plan import SET_SIZE, plan, plan_scale

REPO = Path(__file__).resolve().parents[1]
COUNTS = ("fine-tunes", "examples trained on", "generated tokens", "estimate")
STEP_FILES = steps.params_files("micro") + steps.params_files("smoke")


def _cost(path: Path, P=None, set_size=None):
    step, loaded = steps.load(path)
    P = loaded if P is None else P
    return importlib.import_module(step.module).cost(P, SET_SIZE[P.scale] if set_size is None else set_size)


def _counts(text: str) -> dict[str, str]:
    """The value of every count line of a plan."""
    return {label: m.group(1) for label in COUNTS[:3]
            for m in [re.search(rf"^  {label}\s+([\d,]+)", text, re.M)] if m}


def test_costs_follow_the_params():
    path = REPO / "params/micro/03_train_on_traces.yaml"
    _, p = steps.load(path)
    base = _cost(path, p, 100)
    more_seeds = _cost(path, replace(p, seeds=p.seeds * 2), 100)
    assert base.fine_tunes > 0 and more_seeds.fine_tunes == 2 * base.fine_tunes
    assert more_seeds.train_examples == 2 * base.train_examples
    # a bigger training set (the matched sets of step 02: `cost`'s set_size) means more examples
    assert _cost(path, p, 200).train_examples == 2 * base.train_examples
    train = replace(p.finetune.train, epochs=2 * p.finetune.train.epochs)
    longer = _cost(path, replace(p, finetune=replace(p.finetune, train=train)), 100)
    assert longer.train_examples == 2 * base.train_examples
    bigger_test = _cost(path, replace(p, task=replace(p.task, n_test=2 * p.task.n_test)), 100)
    assert bigger_test.generated_tokens == 2 * base.generated_tokens


def test_scaling_counts_rollouts_and_every_method():
    path = REPO / "params/micro/06_scale_synthetic_data.yaml"
    _, p = steps.load(path)
    c = _cost(path, p)
    assert c.generated_tokens > 0 and c.train_examples > 0
    assert c.fine_tunes >= len(p.ladder.sizes) * len(p.seeds)  # SFT at every rung and seed, and more
    more_rollouts = _cost(path, replace(p, stepvalues=replace(p.stepvalues, rollouts=2 * p.stepvalues.rollouts)))
    assert more_rollouts.generated_tokens > c.generated_tokens  # Monte Carlo rollouts are counted
    assert more_rollouts.fine_tunes == c.fine_tunes
    assert c.notes


@pytest.mark.parametrize("path", STEP_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_plan_prints_the_step_and_every_count(path):
    text = plan(path)
    step, params = steps.load(path)
    assert text.splitlines()[0] == f"{path} ({step.stem}, scale {params.scale})"
    for word in COUNTS:
        assert word in text, (path, word)
    cost = _cost(path)
    generated = cost.generated_tokens + getattr(cost, "teacher_tokens", 0)  # the teacher's share is in the total
    assert _counts(text) == {"fine-tunes": f"{cost.fine_tunes:,}", "examples trained on": f"{cost.train_examples:,}",
                             "generated tokens": f"{generated:,}"}


def test_plan_of_a_whole_scale_has_every_step():
    text = plan_scale("smoke")
    for path in steps.params_files("smoke"):
        assert f"{path} (" in text
    with pytest.raises(FileNotFoundError, match="no params files"):
        plan_scale("nowhere")


@pytest.mark.parametrize("name", ["03_train_on_traces.yaml", "06_scale_synthetic_data.yaml"])
def test_the_step_comes_from_the_step_key_not_the_file_name(tmp_path, name):
    copy = tmp_path / "params"
    shutil.copytree(REPO / "params", copy)  # the fragments and upstream files it names come along
    original = REPO / "params" / "micro" / name
    renamed = copy / "micro" / "07_inspect_advantages.yaml"  # another step's name
    renamed.write_text(original.read_text())
    other = copy / "micro" / "my experiment.yaml"
    other.write_text(original.read_text())
    expected = plan(original)
    step = steps.load(original)[0]
    for path in (renamed, other):
        text = plan(path)
        assert text.splitlines()[0] == f"{path} ({step.stem}, scale micro)"
        assert _counts(text) == _counts(expected)
        assert text.splitlines()[1:] == expected.splitlines()[1:]


def test_plan_cli():
    params = REPO / "params/micro/06_scale_synthetic_data.yaml"
    out = subprocess.run([sys.executable, "-m", "cotrepro.cli", "plan", str(params)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{params} (06_scale_synthetic_data, scale micro)")
    out = subprocess.run([sys.executable, "-m", "cotrepro.cli", "plan"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode != 0 and "Traceback" not in out.stderr


def test_the_estimate_names_the_machine_of_each_rate(tmp_path, monkeypatch):
    """The training and sampling benchmarks may run on different machines: the estimate says
    which machine each rate came from, not the last benchmark's machine for both."""
    from cotrepro import paths

    rates = tmp_path / "throughput.json"
    rates.write_text(json.dumps({"cpu": {
        "sample_tokens_per_s": 10000, "train_tokens_per_s": 7000,
        "measured_on": {"sample_tokens_per_s": "2026-12-03, AMD EPYC", "train_tokens_per_s": "2026-12-02, Intel Xeon"}}}))
    monkeypatch.setattr(paths, "THROUGHPUT", rates)
    text = plan(REPO / "params/micro/03_train_on_traces.yaml")
    assert "training rate measured 2026-12-02, Intel Xeon; sampling rate measured 2026-12-03, AMD EPYC" in text


def _estimates(text: str, unit: str) -> list[float]:
    return [float(m) for m in re.findall(rf"^  estimate\s+(?:at most )?([\d.]+) {unit}", text, re.M)]


@pytest.mark.parametrize("scale,unit", [("micro", "min"), ("paper", "GPU-hours")])
def test_a_scale_plan_ends_with_the_total_and_says_its_basis_once(scale, unit):
    text = plan_scale(scale)
    files = steps.params_files(scale)
    total = re.search(rf"^all {len(files)} params files of scale {scale}: (?:at most )?([\d.]+) ", text, re.M)
    assert total, text[-600:]
    per_step = _estimates(text, unit)
    assert len(per_step) == len(files)
    # each step's estimate is rounded for printing: the total may differ by the rounding
    slack = 0.5 * len(files) * (1 if unit == "min" else 0.1)
    assert abs(float(total.group(1)) - sum(per_step)) <= slack
    basis = "rates:" if scale == "micro" else "assumptions:"
    assert text.count(basis) == 1


def test_without_measured_rates_the_total_says_what_it_left_out(tmp_path, monkeypatch):
    from cotrepro import paths

    monkeypatch.setattr(paths, "THROUGHPUT", tmp_path / "absent.json")
    text = plan_scale("smoke")
    n = len(steps.params_files("smoke"))
    assert f"({n} of them unknown, left out)" in text and "run `make bench`" in text
