"""Figures and tables of the Shape of Thought steps 02-05, written from their stored results alone.

Each writer reads one step's run directory and writes files prefixed with the experiment name
(so variants never overwrite each other). Accuracy intervals are 95% bootstrap intervals over
(seed, test problem) outcomes, as seaborn draws them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cotrepro import stats
from cotrepro.experiments.sot import NO_FINE_TUNING, accuracy_rows, long_outcomes
from cotrepro.report import experiment_name, save_figure, write_table, writer
from cotrepro.store import RunDir

CONDITION_LABELS = {NO_FINE_TUNING: "no fine-tuning", "H": "H: human", "G": "G: teacher, correct",
                    "W": "W: teacher, wrong", "P": "P: H paraphrased", "H@P": "H on P's problems"}


def _results(run: RunDir) -> list[dict]:
    return list(run.jsonl("results"))


def accuracy_table(records: list[dict], conditions: list[str], n_boot: int = 2000) -> pd.DataFrame:
    """Per condition: accuracy over all test problems (95% CI over seeds x problems), parsed-only
    accuracy and parse-failure rate (means over seeds)."""
    runs, outcomes = pd.DataFrame(accuracy_rows(records)), pd.DataFrame(long_outcomes(records))
    rows = []
    for condition in conditions:
        mine = runs[runs.condition == condition]
        if mine.empty:
            continue
        ci = stats.bootstrap_ci(outcomes[outcomes.condition == condition].correct.to_numpy(), n_boot=n_boot)
        rows.append({"condition": CONDITION_LABELS.get(condition, condition), "seeds": len(mine),
                     "n_train": int(mine.n_train.iloc[0]), "n_test": int(mine.n_test.iloc[0]),
                     "accuracy": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
                     "parsed_accuracy": mine.parsed_accuracy.mean(),
                     "parse_failure_rate": mine.parse_failure_rate.mean()})
    return pd.DataFrame(rows)


def _accuracy_bars(records: list[dict], conditions: list[str], title: str):
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = pd.DataFrame(long_outcomes(records))
    data = data[data.condition.isin(conditions)]
    data["training set"] = data.condition.map(lambda c: CONDITION_LABELS.get(c, c))
    order = [CONDITION_LABELS.get(c, c) for c in conditions if c in set(data.condition)]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    sns.barplot(data=data, x="training set", y="correct", order=order, errorbar=("ci", 95), seed=0,
                color="#4c72b0", ax=ax)
    ax.set_ylabel("test accuracy (greedy, all problems)")
    ax.set_xlabel("")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=15)
    return fig


@writer("sample_teacher_traces")
def sample_teacher_traces(run: RunDir, out: Path) -> list[Path]:
    """Step 02: teacher accuracy, set sizes, SoT-6/7 table; histograms of step validity."""
    import matplotlib.pyplot as plt

    name = experiment_name(run)
    summary = run.read_json("summary.json")
    written = write_table(pd.DataFrame(summary["rows"]), f"{name}_traces", out)
    graded = pd.DataFrame(run.read_json("graded.json"))
    graded = graded[(graded.n_claims > 0) & graded.parsed & ~graded.ungradable]
    graded["true share"] = 1 - graded.n_false / graded.n_claims
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    per_problem = run.read_json("per_problem_accuracy.json")
    axes[0].hist(per_problem, bins=10, range=(0, 1), color="#4c72b0")
    axes[0].set(xlabel="teacher's share of correct traces", ylabel="training problems",
                title="Teacher accuracy per problem")
    for correct, label, color in ((True, "G (correct answer)", "#55a868"), (False, "W (wrong answer)", "#c44e52")):
        shares = graded[graded.correct == correct]["true share"]
        if len(shares):  # each group's bars sum to 1: G is rare next to W when the teacher is weak
            axes[1].hist(shares, bins=10, range=(0, 1), weights=[1 / len(shares)] * len(shares), alpha=0.6,
                         label=f"{label}, n={len(shares)}", color=color)
    axes[1].set(xlabel="share of true arithmetic steps in a trace", ylabel="share of the group's traces",
                title="Step validity (SoT-6, SoT-7)")
    axes[1].legend()
    fig.tight_layout()
    return written + save_figure(fig, f"{name}_step_validity", out)


@writer("train_on_traces")
def train_on_traces(run: RunDir, out: Path) -> list[Path]:
    """Step 03: accuracy per training set (SoT-1, SoT-2)."""
    name = experiment_name(run)
    records = _results(run)
    conditions = [NO_FINE_TUNING, "H", "G", "W"]
    written = write_table(accuracy_table(records, conditions), f"{name}_accuracy", out)
    fig = _accuracy_bars(records, conditions, "Student fine-tuned on each training set (SoT-1, SoT-2)")
    return written + save_figure(fig, f"{name}_accuracy", out)


@writer("paraphrase_distance")
def paraphrase_distance(run: RunDir, out: Path) -> list[Path]:
    """Step 04: NLL under the student against downstream accuracy (SoT-3, SoT-4)."""
    import matplotlib.pyplot as plt

    name = experiment_name(run)
    points = pd.DataFrame(run.read_json("points.json"))
    written = write_table(points, f"{name}_nll_accuracy", out)
    written += write_table(accuracy_table(_results(run), [NO_FINE_TUNING, "H", "H@P", "P", "G", "W"]),
                           f"{name}_accuracy", out)
    fig, ax = plt.subplots(figsize=(5.6, 4))
    has_acc = points.dropna(subset=["accuracy"])
    ax.errorbar(has_acc.nll, has_acc.accuracy,
                xerr=[has_acc.nll - has_acc.nll_low, has_acc.nll_high - has_acc.nll],
                yerr=[has_acc.accuracy - has_acc.acc_low, has_acc.acc_high - has_acc.accuracy],
                fmt="o", capsize=3, color="#4c72b0")
    for _, p in has_acc.iterrows():
        ax.annotate(CONDITION_LABELS.get(p.set, p.set), (p.nll, p.accuracy), textcoords="offset points",
                    xytext=(6, 6), fontsize=8)
    ax.set(xlabel="per-token NLL of the training set under the student base (nats)",
           ylabel="test accuracy after fine-tuning", title="Distance to the student vs. accuracy (SoT-3, SoT-4)")
    return written + save_figure(fig, f"{name}_nll_accuracy", out)


@writer("corrupt_steps")
def corrupt_steps(run: RunDir, out: Path) -> list[Path]:
    """Step 05: accuracy against the share of corrupted steps, one line per operator (SoT-5)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    name = experiment_name(run)
    design = run.read_json("corruption.json")
    records = _results(run)
    outcomes = pd.DataFrame(long_outcomes(records))
    # level 0 (plain G) starts every operator's line
    specs = pd.DataFrame([{**spec, "operator": op} for spec in design["sets"]
                          for op in (design["operators"] if spec["level"] == 0 else [spec["operator"]])])
    data = specs[["condition", "operator", "level"]].merge(outcomes, on="condition")
    table = (data.groupby(["operator", "level"]).correct.agg(["mean", "count"]).reset_index()
             .rename(columns={"mean": "accuracy", "count": "outcomes"})
             .merge(specs[["operator", "level", "mean_fraction_hit", "still_correct"]], on=["operator", "level"]))
    written = write_table(table, f"{name}_accuracy_by_level", out)
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=data, x="level", y="correct", hue="operator", errorbar=("ci", 95), seed=0, marker="o",
                 err_style="bars", err_kws={"capsize": 3}, ax=ax)
    baseline = outcomes[outcomes.condition == NO_FINE_TUNING]
    if not baseline.empty:
        ax.axhline(baseline.correct.mean(), color="grey", linestyle="--", label="no fine-tuning")
        ax.legend()
    ax.set(xlabel="share of corrupted steps in the G traces", ylabel="test accuracy after fine-tuning",
           title="Tolerance to flawed traces (SoT-5)")
    return written + save_figure(fig, f"{name}_accuracy_by_level", out)
