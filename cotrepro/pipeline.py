"""Run notebooks with papermill: one step, or the whole pipeline of a scale.

A step is a notebook `notebooks/NN_name.ipynb` and its params file `params/<scale>/NN_name.yaml`;
a variant of a step (another task or model) is `params/<scale>/NN_name__variant.yaml`, run by the
same notebook.
The executed notebook is kept in the step's run directory (`runs/<experiment>/<params-hash>/`)
beside its results; a `DONE.json` there marks the step complete, so `reproduce` skips it next
time and a killed pipeline resumes at the first unfinished step.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from cotrepro.config import REPO_ROOT, load_experiment
from cotrepro.store import DEFAULT_ROOT, RunDir

log = logging.getLogger(__name__)

NOTEBOOKS = REPO_ROOT / "notebooks"
PARAMS = REPO_ROOT / "params"
DONE = "DONE.json"


class StepFailed(RuntimeError):
    """A notebook raised; the message names the step and its executed notebook."""


def run_root(root: str | Path | None) -> Path:
    path = Path(root) if root else DEFAULT_ROOT
    return path if path.is_absolute() else (REPO_ROOT / path)


def step_run_dir(params_file: str | Path, root: str | Path | None = None) -> RunDir:
    """The run directory a params file's step writes to (created if missing)."""
    params = load_experiment(params_file)
    return RunDir.open(params.experiment, params, root=run_root(root), seeds=[params.seed])


def run_notebook(notebook: str | Path, params_file: str | Path, run_root: str | Path | None = None,
                 force: bool = False) -> Path:
    """Execute `notebook` with `params_file`; returns the executed notebook's path."""
    import papermill

    notebook, params_file = Path(notebook).resolve(), Path(params_file).resolve()
    if not notebook.exists():
        raise FileNotFoundError(f"no such notebook: {notebook}")
    run = step_run_dir(params_file, run_root)  # validates the params first: one line on error
    executed = run.path / notebook.name
    if (run.path / DONE).exists() and not force:
        log.info("%s: results stored in %s, skipped", notebook.stem, run.path)
        return executed
    start = time.time()
    try:
        papermill.execute_notebook(
            str(notebook), str(executed), cwd=str(REPO_ROOT), kernel_name="python3",
            parameters={"params_file": str(params_file), "run_root": str(run.path.parents[1])},
            progress_bar=False, log_output=False,
        )
    except papermill.PapermillExecutionError as e:
        raise StepFailed(f"{notebook.stem} failed ({e.ename}: {e.evalue}); executed notebook: {executed}") from None
    run.write_json(DONE, {"notebook": notebook.name, "params_file": str(params_file),
                          "seconds": round(time.time() - start, 1)})
    return executed


def steps(scale: str, only: list[str] | None = None) -> list[tuple[Path, Path]]:
    """(notebook, params file) pairs of a scale, in pipeline order."""
    folder = PARAMS / scale
    pairs = []
    for params_file in sorted(folder.glob("[0-9][0-9]_*.yaml")):
        if only and params_file.stem not in only and params_file.stem[:2] not in only:
            continue
        notebook = NOTEBOOKS / f"{params_file.stem.split('__')[0]}.ipynb"
        if not notebook.exists():
            raise FileNotFoundError(f"{params_file}: no notebook {notebook.relative_to(REPO_ROOT)}")
        pairs.append((notebook, params_file))
    if only:
        found = {p.stem for _, p in pairs} | {p.stem[:2] for _, p in pairs}
        missing = [name for name in only if name not in found]
        if missing:
            raise FileNotFoundError(f"no step named {', '.join(missing)} in {folder}")
    return pairs


def reproduce(scale: str = "micro", only: list[str] | None = None, run_root: str | Path | None = None,
              force: bool = False) -> list[Path]:
    """Run every step of `scale` in order, skipping stored ones; one log line per step."""
    pairs = steps(scale, only)
    executed = []
    total_start = time.time()
    for i, (notebook, params_file) in enumerate(pairs, start=1):
        run = step_run_dir(params_file, run_root)
        stored = (run.path / DONE).exists() and not force
        prefix = f"[{i}/{len(pairs)}] {notebook.stem}"
        if stored:
            print(f"{prefix}: stored in {run.path.relative_to(REPO_ROOT) if run.path.is_relative_to(REPO_ROOT) else run.path}, skipped", flush=True)
        else:
            print(f"{prefix}: running ...", flush=True)
        start = time.time()
        executed.append(run_notebook(notebook, params_file, run_root, force))
        if not stored:
            print(f"{prefix}: done in {time.time() - start:.0f}s", flush=True)
    print(f"{scale}: {len(pairs)} steps in {time.time() - total_start:.0f}s", flush=True)
    return executed


def stored_results(scale: str, run_root: str | Path | None = None) -> dict[str, RunDir]:
    """Step name -> run directory, for every step of `scale` whose results are stored."""
    found = {}
    for _, params_file in steps(scale):
        run = step_run_dir(params_file, run_root)
        if (run.path / DONE).exists():
            found[params_file.stem] = run
    return found


def figures(scale: str = "micro", run_root: str | Path | None = None) -> list[Path]:
    """Regenerate every figure and table of `scale` from stored results (no training)."""
    from cotrepro.report import write_all

    return write_all(stored_results(scale, run_root), scale=scale)


def read_done(run: RunDir) -> dict:
    return json.loads((run.path / DONE).read_text())
