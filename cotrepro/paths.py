"""Every path the package writes or reads, defined once.

Paths given by a user (a params file, `--run-root`, a notebook's `run_root`) are resolved against
the repository root, never the working directory, so a notebook opened in Jupyter from
`notebooks/` and a command run from the repository root find the same runs.

    <repo>/params/<scale>/NN_<step>[__variant].yaml    what each step runs with
    <repo>/notebooks/NN_<step>.ipynb                   the step's driver
    <repo>/world/                                      the shipped micro world (checkpoints)
    <run root>/<step>/<params hash>/                   a step's results (default run root: <repo>/runs)
    <run root>/cache/<kind>/<key>/                     shared jobs (fine-tunes, evaluations), by content
    figures/ (micro), figures/<scale>/                 figures and tables of the default run root
    <run root>/figures/<scale>/                        ... of any other run root
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WORLD_DIR = REPO_ROOT / "world"
THROUGHPUT = REPO_ROOT / "bench" / "results" / "throughput.json"


class NotInRepository(RuntimeError):
    """The experiments were asked for from an installed copy of the package, without its repository."""


def repository() -> Path:
    """The repository root, or a one-line error when the package runs from a regular install.

    The experiments need the repository's params, notebooks and shipped world; a wheel install
    carries only the library (enough for `cotrepro grade`). Writing runs and figures beside an
    installed package would scatter results into site-packages.
    """
    if not ((REPO_ROOT / "params").is_dir() and (REPO_ROOT / "notebooks").is_dir()):
        raise NotInRepository(
            f"the experiments need the cotrepro repository (params/, notebooks/, world/), but the package was "
            f"imported from {REPO_ROOT}: clone the repository and install it with `pip install -e .` "
            f"(`cotrepro grade` works from any install)")
    return REPO_ROOT


def resolve(path: str | Path) -> Path:
    """`path` made absolute against the repository root (an absolute path is kept)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else repository() / path


def default_run_root() -> Path:
    return resolve(os.environ.get("COTREPRO_RUNS", "runs"))


def run_root(root: str | Path | None = None) -> Path:
    """The run root: `root` resolved against the repository root, or the default (`runs/`)."""
    return default_run_root() if root is None else resolve(root)


def cache_dir(root: str | Path | None, kind: str) -> Path:
    return run_root(root) / "cache" / kind


def figures_dir(scale: str, root: str | Path | None = None) -> Path:
    """Where the figures of `scale` from run root `root` go (see the module docstring);
    `COTREPRO_FIGURES` overrides the folder of the default run root (the tests use it)."""
    if root is not None and run_root(root) != default_run_root():
        return run_root(root) / "figures" / scale
    base = resolve(os.environ.get("COTREPRO_FIGURES", "figures"))
    return base if scale == "micro" else base / scale


def shown(path: Path) -> str:
    """`path` relative to the repository root when it lies inside it (for messages)."""
    path = Path(path)
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
