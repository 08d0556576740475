"""Shared by the notebook tests: run one step under papermill, read its claims."""

from __future__ import annotations

import math
from pathlib import Path

from cotrepro.config import REPO_ROOT
from cotrepro.pipeline import run_notebook, step_run_dir

NOTEBOOKS = REPO_ROOT / "notebooks"
SMOKE = REPO_ROOT / "params" / "smoke"
PAPER = REPO_ROOT / "params" / "paper"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VERDICTS = {"reproduced", "not reproduced", "inconclusive"}


def run_step(name: str, params_file: Path, run_root: Path):
    """Execute notebook `name` with `params_file`; its run directory, marked done."""
    run_notebook(NOTEBOOKS / f"{name}.ipynb", params_file, run_root=run_root)
    run = step_run_dir(params_file, run_root)
    assert (run.path / "DONE.json").is_file()
    return run


def claims_of(run, ids: set[str]) -> dict[str, dict]:
    """The step's claims.json by claim id, checked: exactly `ids`, a verdict, an interval around
    the effect (an unmeasurable effect is None or NaN)."""
    claims = {c["claim"]: c for c in run.read_json("claims.json")}
    assert set(claims) == ids
    for c in claims.values():
        assert c["verdict"] in VERDICTS and c["what"] and c["unit"]
        effect = c["effect"]
        if effect is not None and not math.isnan(effect):
            low, high = c["ci"]
            assert low <= effect <= high or math.isclose(low, high)
    return claims
