"""Where figures and tables go, and the one place that writes them.

Figures and tables are written only from stored results (a step's run directory), so
`cotrepro figures` regenerates all of them without retraining. Paths are defined here once:
the micro scale writes to `figures/` (committed), other scales to `figures/<scale>/`;
`COTREPRO_FIGURES` overrides the root (the tests point it at a temporary folder).

Committed tables hold only numbers that a rerun reproduces exactly: no timings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cotrepro.config import REPO_ROOT

WRITERS: dict[str, Callable] = {}  # notebook name without number -> function(run_dir, out_dir) -> list[Path]


def figures_dir(scale: str = "micro") -> Path:
    root = Path(os.environ.get("COTREPRO_FIGURES", REPO_ROOT / "figures"))
    out = root if scale == "micro" else root / scale
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_table(df: pd.DataFrame, name: str, out_dir: Path, floatfmt: str = ".4f") -> list[Path]:
    """Write `df` as `name.md` (for reading) and `name.csv` (for machines)."""
    md, csv = out_dir / f"{name}.md", out_dir / f"{name}.csv"
    md.write_text(df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    df.to_csv(csv, index=False)
    return [md, csv]


def save_figure(fig, name: str, out_dir: Path) -> list[Path]:
    """Save a matplotlib figure as PNG (for the README) and PDF (for papers); closes it."""
    import matplotlib.pyplot as plt

    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    # a fixed creation date keeps the PDF byte-identical across reruns
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    plt.close(fig)
    return paths


def writer(step: str) -> Callable[[Callable], Callable]:
    """Register the function that turns a step's stored results into figures and tables."""
    def register(fn: Callable) -> Callable:
        WRITERS[step] = fn
        return fn
    return register


def write_all(stored: dict, scale: str = "micro") -> list[Path]:
    """Run the writer of every stored step; returns every path written."""
    import cotrepro.plots  # noqa: F401  (these imports register the writers)
    import cotrepro.plots_setlur  # noqa: F401
    import cotrepro.plots_sot  # noqa: F401
    from cotrepro.findings import write_findings

    out = figures_dir(scale)
    written: list[Path] = []
    for step, run in stored.items():
        fn = WRITERS.get(notebook_name(step))
        if fn is not None:
            written += fn(run, out)
    return written + write_findings(stored, out, scale)


def notebook_name(step: str) -> str:
    """`03_sot_main__math` -> `sot_main`: the key of a step's writer."""
    name = step.split("__")[0]
    return name.split("_", 1)[1] if name[:2].isdigit() else name


def experiment_name(run) -> str:
    """The `experiment` of a run directory: the prefix of every figure and table it produces."""
    import yaml

    return yaml.safe_load((run.path / "params.yaml").read_text())["experiment"]
