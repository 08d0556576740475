"""Figures and tables of the Setlur et al. steps (06, 07, 08), written from stored results only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cotrepro import stats
from cotrepro.report import experiment_name, save_figure, write_table, writer
from cotrepro.store import RunDir

LABELS = {"sft": "SFT (teacher positives)", "rft": "RFT (+ self-generated positives)", "dpo_step": "per-step DPO",
          "dpo_random": "standard DPO", "dpo_edit": "edit-distance DPO"}
COLORS = {"sft": "tab:blue", "rft": "tab:orange", "dpo_step": "tab:green", "dpo_random": "tab:red",
          "dpo_edit": "tab:purple"}


def _score_rows(evals: list[dict]) -> pd.DataFrame:
    """Per (method, n, k): mean score over seeds, the test error and a bootstrap CI of the score."""
    from cotrepro.experiments.scaling import outcomes

    rows = []
    for method in LABELS:
        for k in sorted({r["k"] for r in evals}):
            for n, scores in outcomes(evals, method, k).items():
                ci = stats.bootstrap_ci(scores, n_boot=1000)
                rows.append({"method": method, "n": n, "k": k, "score": ci.estimate, "score_low": ci.low,
                             "score_high": ci.high, "error": 1 - ci.estimate})
    return pd.DataFrame(rows)


@writer("scale_synthetic_data")
def scale_synthetic_data(run: RunDir, out: Path) -> list[Path]:
    """Error vs n (log-log, fits), the DPO variants at the comparison size, pass@1 vs pass@k."""
    import matplotlib.pyplot as plt

    name = experiment_name(run)
    summary = run.read_json("scaling_summary.json")
    size, pass_k = summary["compare_size"], summary["pass_k"]
    table = _score_rows(list(run.jsonl("evals")))
    written = write_table(table, f"{name}_errors", out)
    written += write_table(pd.DataFrame(summary["multipliers"]), f"{name}_multipliers", out)

    greedy = table[table.k == 1]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, rows in greedy.groupby("method", sort=False):
        rows = rows.sort_values("n")
        err_low, err_high = rows.error - (1 - rows.score_high), (1 - rows.score_low) - rows.error
        ax.errorbar(rows.n, rows.error, yerr=[err_low, err_high], fmt="o", color=COLORS[method],
                    label=LABELS[method], capsize=3)
        fit = summary["fits"].get(method)
        if fit and len(rows) > 1:
            grid = np.geomspace(rows.n.min(), rows.n.max(), 50)
            ax.plot(grid, fit["a"] * grid ** -fit["b"], color=COLORS[method],
                    label=f"fit: {fit['a']:.2g} n^({-fit['b']:.2f})")
    ax.set(xscale="log", yscale="log", xlabel="synthetic training problems n", ylabel="test error (1 - pass@1)",
           title="Test error vs synthetic data")
    ax.legend(fontsize=7)
    written += save_figure(fig, f"{name}_error_vs_n", out)

    at_size = greedy[greedy.n == size].set_index("method")
    variants = [m for m in ("sft", "dpo_random", "dpo_edit", "dpo_step") if m in at_size.index]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    rows = at_size.loc[variants]
    ax.bar([LABELS[m] for m in variants], rows.error, color=[COLORS[m] for m in variants],
           yerr=[rows.error - (1 - rows.score_high), (1 - rows.score_low) - rows.error], capsize=3)
    ax.set(ylabel="test error", title=f"DPO pairings at n={size}")
    ax.tick_params(axis="x", rotation=20)
    written += save_figure(fig, f"{name}_dpo_variants", out)

    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for offset, method in ((-0.2, "sft"), (0.2, "dpo_step")):
        rows = table[(table.method == method) & (table.n == size)].sort_values("k")
        ax.bar(np.arange(len(rows)) + offset, rows.score, width=0.4, color=COLORS[method], label=LABELS[method],
               yerr=[rows.score - rows.score_low, rows.score_high - rows.score], capsize=3)
    ax.set_xticks(range(2), ["pass@1 (greedy)", f"pass@{pass_k}"])
    ax.set(ylabel="share of test problems solved", title=f"n={size}")
    ax.legend(fontsize=7)
    written += save_figure(fig, f"{name}_pass_at_k", out)
    return written


@writer("inspect_advantages")
def inspect_advantages(run: RunDir, out: Path) -> list[Path]:
    """Histogram of step advantages by trace kind, critical-step positions, the ST-6 rates."""
    import matplotlib.pyplot as plt

    name = experiment_name(run)
    steps = pd.DataFrame(run.read_json("step_rows.json"))
    critical = run.read_json("critical_positions.json")
    steps["group"] = np.where(steps.idle.isna(), "no true claim", np.where(steps.idle == True, "idle", "progress"))  # noqa: E712
    low = yaml.safe_load((run.path / "params.yaml").read_text())["advantages"]["low_advantage"]
    rates = (steps.dropna(subset=["A"]).assign(low_advantage=lambda d: d.A <= -low)
             .groupby(["kind", "group"]).agg(steps=("A", "size"), mean_advantage=("A", "mean"),
                                             low_advantage_rate=("low_advantage", "mean")).reset_index())
    written = write_table(rates, f"{name}_advantages", out)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    bins = np.linspace(-1, 1, 21)
    for kind, color in (("correct", "tab:blue"), ("probe", "tab:orange"), ("incorrect", "tab:red")):
        values = steps[(steps.kind == kind) & steps.A.notna()].A
        if len(values):
            axes[0].hist(values, bins=bins, alpha=0.5, color=color, label=f"{kind} traces ({len(values)} steps)")
    inserted = steps[steps.inserted & steps.A.notna()].A
    if len(inserted):
        axes[0].hist(inserted, bins=bins, histtype="step", color="black", label="inserted idle steps")
    axes[0].set(xlabel="step advantage A_i = Q_i - Q_(i-1)", ylabel="steps", yscale="log", title="Step advantages")
    axes[0].legend(fontsize=7)
    for label, positions in critical.items():
        if positions:
            axes[1].hist(positions, bins=np.linspace(0, 1, 11), alpha=0.5, label=f"{label} ({len(positions)})")
    axes[1].set(xlabel="relative position of the critical step (0 = first, 1 = last)", ylabel="traces",
                title="Where wrong traces go wrong")
    axes[1].legend(fontsize=7)
    written += save_figure(fig, f"{name}_advantages", out)
    return written


@writer("stargraph_shortcut")
def stargraph_shortcut(run: RunDir, out: Path) -> list[Path]:
    """Accuracy, first-step and later-step accuracy of SFT and per-step DPO, against 1/degree."""
    import matplotlib.pyplot as plt

    name = experiment_name(run)
    rows = pd.DataFrame(run.read_json("summary.json")["rows"])
    written = write_table(rows, f"{name}_accuracy", out)
    metrics = [("accuracy", "path accuracy"), ("first_step_accuracy", "first step"),
               ("later_step_accuracy", "later steps")]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    width = 0.8 / len(rows)
    for i, row in rows.iterrows():
        x = np.arange(len(metrics)) + (i - (len(rows) - 1) / 2) * width
        heights = [row[m] for m, _ in metrics]
        ax.bar(x, heights, width=width, label=row["model"])
    ax.axhline(rows.shortcut_level.iloc[0], color="black", linestyle="--", label="shortcut level 1/degree")
    ax.set_xticks(range(len(metrics)), [label for _, label in metrics])
    ax.set(ylim=(0, 1.05), ylabel="greedy accuracy on test graphs", title="Star graph: the Clever Hans shortcut")
    ax.legend(fontsize=7)
    written += save_figure(fig, f"{name}_accuracy", out)
    return written
