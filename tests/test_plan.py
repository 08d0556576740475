"""`cotrepro plan`: the cost of a run, counted from its params before it starts."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from cotrepro.config import load_experiment
from cotrepro.plan import plan, step_cost

REPO = Path(__file__).resolve().parents[1]


def test_costs_follow_the_params():
    p = load_experiment(REPO / "params/micro/03_train_on_traces.yaml")
    base = step_cost("train_on_traces", p)
    more_seeds = step_cost("train_on_traces", replace(p, sot=replace(p.sot, seeds=p.sot.seeds * 2)))
    assert base.runs > 0 and more_seeds.runs == 2 * base.runs
    assert more_seeds.train_tokens == 2 * base.train_tokens
    bigger = step_cost("train_on_traces", replace(p, task=replace(p.task, n_train=2 * p.task.n_train)))
    assert bigger.train_tokens == 2 * base.train_tokens


def test_scaling_counts_rollouts_and_every_method():
    p = load_experiment(REPO / "params/micro/06_scale_synthetic_data.yaml")
    c = step_cost("scale_synthetic_data", p)
    assert c.rollouts > 0 and c.runs >= len(p.scaling.sizes) and c.train_tokens > 0


def test_plan_prints_every_count_for_every_step():
    for params in sorted((REPO / "params").glob("*/[0-9][0-9]_*.yaml")):
        text = plan(params)
        for word in ("problems", "sampled completions", "Monte Carlo rollouts", "training tokens", "estimate"):
            assert word in text, (params, word)


def test_plan_cli():
    params = REPO / "params/micro/06_scale_synthetic_data.yaml"
    out = subprocess.run([sys.executable, "-m", "cotrepro.cli", "plan", str(params)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{params} (scale_synthetic_data, scale micro)")
