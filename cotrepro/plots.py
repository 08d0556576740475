"""Every figure and table, written from stored results alone (the one figures module).

Each step's writer reads the JSON its notebook stored in the step's run folder (never a model,
never training code: `cotrepro figures` runs without torch) and writes `<label>_<name>.png/.pdf`
(figures) and `.md/.csv` (tables), where the label is the params file's name without its number
(`train_on_traces`, `train_on_traces__math`). WRITERS maps each step to its writer, explicitly.
Every interval drawn says its kind and its n on the figure; bars carry their value printed, so a
bar at zero reads as zero, not as missing. Committed tables hold no timings (they must rerun to
the same bytes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cotrepro import stats

BLUE, ORANGE, GREEN, RED, GREY, PURPLE = "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8c8c8c", "#8172b3"
LABELS = {"none": "untuned base", "H": "H: human", "G": "G: teacher, right", "W": "W: teacher, wrong",
          "S": "S: gold, student's style", "P": "P: H paraphrased", "H@P": "H on P's problems",
          "sft": "SFT (teacher positives)", "rft": "RFT (+ self positives)", "dpo_step": "per-step DPO",
          "dpo_random": "standard DPO", "dpo_edit": "edit-distance DPO"}
TWO_LEVEL = "95% two-level bootstrap (seeds, then problems)"
# Tables keep 6 significant digits: the NLLs, computed in floating point by kernels that vary with
# the CPU's instruction set, differ between machines of one kind in the 8th (measured: 3e-8
# relative), and a reader's rerun should give the committed bytes.
CSV_FLOATS = "%.6g"


def write_table(rows: Sequence[dict], name: str, out: Path, floatfmt: str = ".4f") -> list[Path]:
    """Write rows as `name.md` (for reading) and `name.csv` (for machines)."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    for column in df.columns:  # counts stay counts ("1000", not "1000.0000")
        values = pd.to_numeric(df[column], errors="coerce")
        if df[column].dtype.kind == "f" and values.notna().any() and (values.dropna() % 1 == 0).all() \
                and values.dropna().abs().max() > 1:
            df[column] = values.astype("Int64")
    out.mkdir(parents=True, exist_ok=True)
    md, csv = out / f"{name}.md", out / f"{name}.csv"
    shown = df.astype(object).where(df.notna(), None)  # a missing value reads "–", not nan or <NA>
    md.write_text(shown.to_markdown(index=False, floatfmt=floatfmt, missingval="–") + "\n")
    df.to_csv(csv, index=False, float_format=CSV_FLOATS)
    return [md, csv]


def save_figure(fig, name: str, out: Path) -> list[Path]:
    """Save as PNG (README) and PDF (papers), byte-stable across reruns; closes the figure."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None, "Creator": None, "Producer": None})
    plt.close(fig)
    return paths


def _figure(width: float = 6.4, height: float = 3.8):
    import matplotlib.pyplot as plt

    plt.rcParams.update({"axes.spines.top": False, "axes.spines.right": False, "font.size": 9})
    return plt.subplots(figsize=(width, height))


def _interactive() -> bool:
    try:
        from IPython import get_ipython

        return get_ipython() is not None
    except ImportError:
        return False


def show(paths: Sequence[Path]) -> None:
    """Display the PNGs among `paths` inline when running in IPython (a notebook's last cell)."""
    if _interactive():
        from IPython.display import Image, display

        for path in paths:
            if Path(path).suffix == ".png":
                display(Image(filename=str(path)))


def _read(run, name: str):
    return json.loads((run.path / name).read_text())


def _seed_matrix(records: list[dict]) -> np.ndarray:
    return np.array([r["scores"] for r in records], dtype=float)


def _bars(ax, labels: list[str], values: list[float], lows: list[float], highs: list[float], colors, fmt="{:.3f}"):
    # drawn at the tables' precision, so that a PDF (exact coordinates) is as stable as its table
    values, lows, highs = (np.array([float(CSV_FLOATS % v) for v in vs]) for vs in (values, lows, highs))
    x = np.arange(len(labels))
    ax.bar(x, values, color=colors, yerr=[np.subtract(values, lows), np.subtract(highs, values)], capsize=4)
    for xi, v, hi in zip(x, values, highs):
        ax.annotate(fmt.format(v), (xi, hi), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(x, labels, rotation=12)


def _legend(ax, **where) -> None:
    """A legend only when something carries a label (an empty one makes matplotlib warn)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False, **where)


def _condition_rows(outcomes: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for condition, records in outcomes.items():
        ci = stats.hier_mean_ci(_seed_matrix(records), n_boot=1000)
        rows.append({"condition": LABELS.get(condition, condition), "seeds": len(records),
                     "n_test": len(records[0]["scores"]), "accuracy": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
                     "parsed_accuracy": float(np.mean([r["summary"]["parsed_accuracy"] for r in records])),
                     "unparsed": float(np.mean([r["unparsed"] for r in records]))})
    return rows


def _accuracy_figure(rows: list[dict], title: str, out: Path, name: str, chance: float | None = None) -> list[Path]:
    fig, ax = _figure()
    colors = [GREY if r["condition"] == LABELS["none"] else BLUE for r in rows]
    _bars(ax, [r["condition"] for r in rows], [r["accuracy"] for r in rows], [r["ci_low"] for r in rows],
          [r["ci_high"] for r in rows], colors)
    if chance is not None:
        ax.axhline(chance, color=RED, linestyle=":", linewidth=1)
        ax.annotate(f"chance (best constant answer) {chance:.3f}", (ax.get_xlim()[1], chance), ha="right",
                    va="bottom", fontsize=7, color=RED)
    n = rows[0]["n_test"] if rows else 0
    ax.set(ylabel="test accuracy (greedy, all problems)", title=title)
    ax.set_xlabel(f"mean over seeds; bars: {TWO_LEVEL}; n = {n} test problems", fontsize=7)
    return save_figure(fig, name, out)


# ---------------------------------------------------------------------------------------------
# One writer per step


def verifier_sanity(run, out: Path) -> list[Path]:
    return write_table(_read(run, "sanity.json")["rows"], f"{run.label}", out)


def micro_world(run, out: Path) -> list[Path]:
    """Accuracy of each model beside chance, the token table of the trace styles, the NLL table
    with its style control, the star-graph models, the seed spread and the training curves."""
    m = _read(run, "measures.json")
    tables = {"accuracy": m["accuracy"], "tokens": m["tokens"], "nll": m["nll"], "stargraph": m["stargraph"],
              "spread": m["spread"]}
    written = [p for name, rows in tables.items() if rows for p in write_table(rows, f"{run.label}_{name}", out)]
    table = {name: (out / f"{run.label}_{name}.md").read_text() if rows else "(none)\n"
             for name, rows in tables.items()}
    c, build = m["chance"], m["manifest"]
    lines = ["# The micro world", "", f"Built by `{build['command']}` in {build['cpu_seconds']:.0f} CPU-seconds "
             f"(params hash `{build['params_hash']}`; sha256 of every file in `world/MANIFEST.json`).", "",
             f"Chance on the held-out problems: uniform guessing {c['uniform']:.4f} "
             f"({c['distinct_answers']} distinct answers), best constant answer ({c['best_constant_answer']}) "
             f"{c['best_constant']:.4f}.", "", "## Greedy accuracy (95% Wilson intervals)", "", table["accuracy"],
             "## Trace styles against the student's corpus", "",
             "Share of the tokens (and of the distinct tokens) of each style's gold solutions, on the held-out "
             "problems, that never occur in the student's pretraining corpus, and the longest solution against "
             "the evaluation budget.", "", table["tokens"],
             "## Per-token NLL under the untuned student", "",
             "H: human solution; S: the same gold solution in the student's step-by-step style (the style "
             "control); G, W: the teacher's right and wrong samples of the same problems. 95% bootstrap "
             "intervals over problems.", "", table["nll"],
             "## Star-graph models (one per training seed)", "", table["stargraph"],
             "## The same settings with other seeds", "",
             "Greedy accuracy of the shipped world (seed 0) and of worlds built with the same settings and "
             "another seed of the corpora, initialisation and data order (`world/spread/`), from their build "
             "reports.", "", table["spread"]]
    (out / f"{run.label}.md").write_text("\n".join(lines))
    return written + [out / f"{run.label}.md"] + _world_curves(m["curves"], run.label, out)


def _world_curves(curves: dict[str, list[dict]], label: str, out: Path) -> list[Path]:
    """Held-out accuracy against optimizer steps while each world model was trained."""
    if not any(curves.values()):
        return []
    fig, ax = _figure()
    for (name, points), color in zip(sorted(curves.items()), (BLUE, ORANGE, GREEN, PURPLE, GREY, RED)):
        if points:
            ax.plot([p["step"] for p in points], [p["accuracy"] for p in points], marker=".", color=color, label=name)
    ax.set(xlabel="optimizer step", ylabel="held-out greedy accuracy", ylim=(0, 1),
           title="Micro world pretraining (multi-step problems; star graph: whole path)")
    _legend(ax, loc="upper left")
    return save_figure(fig, f"{label}_curves", out)


def sample_teacher_traces(run, out: Path) -> list[Path]:
    summary, graded = _read(run, "summary.json"), _read(run, "graded.json")
    acc = summary["teacher_accuracy"]
    rows = [{"measure": "teacher accuracy (share of traces with a correct answer)", "value": acc[0], "low": acc[1],
             "high": acc[2], "n": summary["n_traces"]}]
    rows += [{"measure": f"set size {k} (problems)", "value": None, "low": None, "high": None, "n": v}
             for k, v in summary["set_sizes"].items()]
    written = write_table(rows, f"{run.label}_traces", out)
    fig, ax = _figure()
    for correct, label, color in ((True, "G (correct answer)", GREEN), (False, "W (wrong answer)", RED)):
        shares = [1 - g["n_invalid"] / g["n_claims"] for g in graded
                  if g["n_claims"] and g["parsed"] and g["correct"] == correct]
        if shares:
            ax.hist(shares, bins=np.linspace(0, 1, 11), weights=np.full(len(shares), 1 / len(shares)), alpha=0.6,
                    color=color, label=f"{label}, n = {len(shares)} traces")
    ax.set(xlabel="share of valid steps in a trace (true arithmetic, operands from the question or earlier results)",
           ylabel="share of the group's traces", title="Step validity of teacher traces (SoT-6, SoT-7)")
    _legend(ax, loc="upper left")
    return written + save_figure(fig, f"{run.label}_step_validity", out)


def train_on_traces(run, out: Path) -> list[Path]:
    rows = _condition_rows(_read(run, "outcomes.json"))
    chance = next((c.get("chance") for c in _read(run, "claims.json") if c.get("chance") is not None), None)
    return (write_table(rows, f"{run.label}_accuracy", out)
            + _accuracy_figure(rows, "Student fine-tuned on each training set (SoT-1, SoT-2)", out,
                               f"{run.label}_accuracy", chance))


def paraphrase_distance(run, out: Path) -> list[Path]:
    nll = _read(run, "nll.json")
    rows = []
    for name, per_problem in nll.items():
        ci = stats.bootstrap_ci(list(per_problem.values()), n_boot=1000)
        rows.append({"set": LABELS.get(name, name), "nll": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
                     "n": len(per_problem)})
    written = write_table(rows, f"{run.label}_nll", out)
    fig, ax = _figure()
    _bars(ax, [r["set"] for r in rows], [r["nll"] for r in rows], [r["ci_low"] for r in rows],
          [r["ci_high"] for r in rows], [ORANGE if r["set"].startswith(("H", "S", "P")) else BLUE for r in rows])
    ax.set(ylabel="per-token NLL under the untuned student (nats)", title="Distance of each set to the student (SoT-3)")
    ax.set_xlabel("95% bootstrap intervals over training problems", fontsize=7)
    written += save_figure(fig, f"{run.label}_nll", out)
    outcomes = _read(run, "outcomes.json")
    if outcomes:
        acc = _condition_rows(outcomes)
        written += write_table(acc, f"{run.label}_accuracy", out)
        written += _accuracy_figure(acc, "Paraphrased human traces against human traces (SoT-4)", out,
                                    f"{run.label}_accuracy")
    return written


def corrupt_steps(run, out: Path) -> list[Path]:
    outcomes, design = _read(run, "outcomes.json"), _read(run, "design.json")
    rows = []
    for d in design:
        ci = stats.hier_mean_ci(_seed_matrix(outcomes[d["condition"]]), n_boot=1000)
        rows.append({**d, "accuracy": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
                     "seeds": len(outcomes[d["condition"]])})
    written = write_table(rows, f"{run.label}_accuracy_by_level", out)
    fig, ax = _figure()
    for operator in dict.fromkeys(r["operator"] for r in rows if r["operator"] != "none"):
        line = [rows[0]] + [r for r in rows if r["operator"] == operator]
        ax.errorbar([r["level"] for r in line], [r["accuracy"] for r in line], capsize=3, marker="o", label=operator,
                    yerr=[[r["accuracy"] - r["ci_low"] for r in line], [r["ci_high"] - r["accuracy"] for r in line]])
    base = _seed_matrix(outcomes["none"]).mean()
    ax.axhline(base, color=GREY, linestyle="--", linewidth=1, label=f"untuned base {base:.3f}")
    ax.set(xlabel="share of corrupted steps in the G traces", ylabel="test accuracy after fine-tuning",
           title="Tolerance to flawed traces (SoT-5)", ylim=(0, None))
    _legend(ax, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f"bars: {TWO_LEVEL}; n = {len(outcomes['none'][0]['scores'])}", fontsize=7, loc="right", y=-0.25)
    return written + save_figure(fig, f"{run.label}_accuracy_by_level", out)


def _log_ticks(ax, sizes: Sequence[int]) -> None:
    from matplotlib.ticker import NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_xticks(list(sizes), [str(s) for s in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def scale_synthetic_data(run, out: Path) -> list[Path]:
    evals, claims = _read(run, "outcomes.json"), _read(run, "claims.json")
    by_method: dict[str, dict[int, list]] = {}
    for name, record in evals.items():
        if name.endswith("@k") or name == "base" or name.startswith("rft_first"):
            continue
        method, n, _ = name.split("/")
        by_method.setdefault(method, {}).setdefault(int(n[1:]), []).append(record)
    rows = []
    for method, curve in by_method.items():
        for n, records in sorted(curve.items()):
            ci = stats.hier_mean_ci(_seed_matrix(records), n_boot=1000)
            rows.append({"method": method, "n": n, "seeds": len(records), "error": 1 - ci.estimate,
                         "ci_low": 1 - ci.high, "ci_high": 1 - ci.low})
    written = write_table(rows, f"{run.label}_errors", out)
    written += write_table([{k: c.get(k) for k in ("claim", "verdict", "effect", "ci", "extrapolated", "contains_2",
                                                    "contains_8")} for c in claims if c["claim"] in ("ST-2", "ST-4")],
                           f"{run.label}_multipliers", out)
    fig, ax = _figure(7, 4)
    colors = {"sft": BLUE, "rft": GREEN, "dpo_step": RED, "dpo_random": GREY, "dpo_edit": PURPLE}
    for method, color in colors.items():
        line = [r for r in rows if r["method"] == method]
        if line:
            ax.errorbar([r["n"] for r in line], [r["error"] for r in line], capsize=3, marker="o", color=color,
                        label=LABELS[method], yerr=[[r["error"] - r["ci_low"] for r in line],
                                                    [r["ci_high"] - r["error"] for r in line]],
                        linestyle="-" if len(line) > 1 else "none")
    base = 1 - evals["base"]["summary"]["accuracy"]
    ax.axhline(base, color=GREY, linestyle="--", linewidth=1, label=f"untuned base {base:.3f}")
    _log_ticks(ax, sorted({r["n"] for r in rows}))
    ax.set(xlabel="synthetic training problems n", ylabel="test error (1 - greedy accuracy)",
           title="Test error against synthetic data (ST-1 to ST-5)")
    _legend(ax, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f"bars: {TWO_LEVEL}; n = {len(evals['base']['scores'])} test problems", fontsize=7,
                 loc="right", y=-0.22)
    return written + save_figure(fig, f"{run.label}_error_vs_n", out)


def inspect_advantages(run, out: Path) -> list[Path]:
    rows = _read(run, "step_rows.json")
    groups = {"idle": [r["A"] for r in rows if r["idle"] is True and r["A"] is not None and r["kind"] != "incorrect"],
              "progress": [r["A"] for r in rows if r["idle"] is False and r["A"] is not None and r["kind"] != "incorrect"]}
    table = [{"steps": k, "n": len(v), "mean_advantage": float(np.mean(v)) if v else None,
              "share_A_le_-0.1": float(np.mean([a <= -0.1 for a in v])) if v else None} for k, v in groups.items()]
    written = write_table(table, f"{run.label}_advantages", out)
    fig, ax = _figure()
    for (name, values), color in zip(groups.items(), (ORANGE, BLUE)):
        if values:
            ax.hist(values, bins=np.linspace(-1, 1, 21), weights=np.full(len(values), 1 / len(values)), alpha=0.6,
                    color=color, label=f"{name} steps of correct traces, n = {len(values)}")
    ax.set(xlabel="step advantage A = Q(i) - Q(i-1) (best-of-5 values)", ylabel="share of the group's steps",
           title="Advantages of idle and progress steps (ST-6)")
    _legend(ax, loc="upper left")
    return written + save_figure(fig, f"{run.label}_advantages", out)


def stargraph_shortcut(run, out: Path) -> list[Path]:
    rows = _read(run, "summary.json")["rows"]
    written = write_table(rows, f"{run.label}_accuracy", out)
    metrics = [("accuracy", "path accuracy"), ("first_step_accuracy", "first step"), ("later_step_accuracy", "later steps")]
    fig, ax = _figure()
    width = 0.8 / len(rows)
    for i, (row, color) in enumerate(zip(rows, (BLUE, RED))):
        x = np.arange(len(metrics)) + (i - (len(rows) - 1) / 2) * width
        heights = [row[m] for m, _ in metrics]
        ax.bar(x, heights, width=width, color=color, label=f"{row['model']} ({row['seeds']} seeds)")
        for xi, h in zip(x, heights):
            ax.annotate(f"{h:.2f}", (xi, h), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
    ax.axhline(rows[0]["shortcut_level"], color="black", linestyle="--", linewidth=1, label="1/degree (the shortcut)")
    ax.set_xticks(range(len(metrics)), [label for _, label in metrics])
    ax.set(ylim=(0, 1.12), ylabel=f"greedy accuracy, n = {rows[0]['n_test']} test graphs",
           title="Star graph: the Clever Hans shortcut (ST-8)")
    _legend(ax, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return written + save_figure(fig, f"{run.label}_accuracy", out)


def write_findings_step(run, out: Path) -> list[Path]:
    return []  # its output is written by write_all, over every stored step


WRITERS: dict[str, Callable] = {
    "verifier_sanity": verifier_sanity, "micro_world": micro_world, "sample_teacher_traces": sample_teacher_traces,
    "train_on_traces": train_on_traces, "paraphrase_distance": paraphrase_distance, "corrupt_steps": corrupt_steps,
    "scale_synthetic_data": scale_synthetic_data, "inspect_advantages": inspect_advantages,
    "stargraph_shortcut": stargraph_shortcut, "write_findings": write_findings_step,
}


def write_step(run) -> list[Path]:
    """Figures and tables of one stored step (a notebook's last cell)."""
    return WRITERS[run.step.name](run, run.figures)


def write_all(stored: Sequence, scale: str, out: Path) -> list[Path]:
    """Every stored step's figures and tables, then FINDINGS.md and findings.csv."""
    from cotrepro.findings import write_findings

    written: list[Path] = []
    for run in stored:
        written += WRITERS[run.step.name](run, out)
    return written + write_findings(stored, out, scale)
