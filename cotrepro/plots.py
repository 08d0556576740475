"""Figures and tables of each pipeline step, written from its stored results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cotrepro.report import save_figure, write_table, writer
from cotrepro.store import RunDir


@writer("verifier_sanity")
def verifier_sanity(run: RunDir, out: Path) -> list[Path]:
    rows = run.read_json("sanity.json")["rows"]
    return write_table(pd.DataFrame(rows), "verifier_sanity", out)


@writer("pretrain_micro_world")
def micro_world(run: RunDir, out: Path) -> list[Path]:
    """The micro world's models: sizes and held-out accuracies (timings stay out: they vary)."""
    import json

    import matplotlib.pyplot as plt
    import seaborn as sns

    paths = run.read_json("micro_world.json")
    report = json.loads(Path(paths["report"]).read_text())
    rows = [{"model": role, "parameters": report[role]["params"], "documents": report[role]["documents"],
             "final_loss": round(report[role]["final_loss"], 4),
             "multi_step_accuracy": report[role]["multi_step_accuracy"],
             "one_step_accuracy": report[role].get("one_step_accuracy")}
            for role in ("student", "teacher")]
    written = write_table(pd.DataFrame(rows), "micro_world", out)
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for role in ("student", "teacher"):
        curve = pd.DataFrame(json.loads((Path(paths[role]) / "loss.json").read_text()))
        ax.plot(curve["step"], curve["loss"], label=role)
    ax.set(xlabel="optimizer step", ylabel="training loss (nats/token)", title="Micro-world pretraining")
    ax.legend()
    return written + save_figure(fig, "micro_world_loss", out)
