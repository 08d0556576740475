"""Run the notebooks with papermill: one step, or the whole pipeline of a scale.

A step runs as its notebook `notebooks/NN_<step>.ipynb` with a params file whose `step:` names
it. Its results go to `<run root>/<step>/<params hash>/`, beside the executed notebook; a
`DONE.json` there marks the step complete, written only after the notebook finished without
error, so `reproduce` skips it next time and a killed pipeline resumes at the first unfinished
step. A step that produced nothing usable raises (`steps.Degenerate`) and is not marked done.

Notebooks open their step with `open_step(params_file, run_root, step=...)`: it checks that the
params file is for this notebook, resolves every path against the repository root (so a notebook
opened in Jupyter from `notebooks/` finds the same runs as the command line), creates the run
folder and quiets the libraries.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotrepro import paths, steps
from cotrepro.params import ParamsError, step_params_file
from cotrepro.store import RunDir

DONE = "DONE.json"
FINDINGS_STEP = "write_findings"  # step 90: reads every other step's stored results


class StepFailed(RuntimeError):
    """A notebook raised; the message names the step, the error and the executed notebook."""


@dataclass(frozen=True)
class StepRun:
    """A step opened with its params: where its results live."""

    step: steps.Step
    params: Any
    params_file: Path
    dir: RunDir
    root: Path

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def done(self) -> bool:
        return (self.path / DONE).is_file()

    @property
    def figures(self) -> Path:
        return paths.figures_dir(self.params.scale, self.root)

    @property
    def label(self) -> str:
        return steps.label(self.params_file)

    def upstream(self, field: str) -> StepRun:
        """The stored run of the step whose params file this step's `field` names (relative to
        this params file's folder); one line telling the command to run when it is not done."""
        other = step_params_file(self.params_file, getattr(self.params, field), field)
        run = locate(other, self.root)
        if not run.done:
            raise FileNotFoundError(
                f"{paths.shown(self.params_file)}: {field}: step {run.step.stem} has no stored results for "
                f"{paths.shown(other)}; run it first: cotrepro run {paths.shown(run.step.notebook)} -f {paths.shown(other)}")
        return run


def locate(params_file: str | Path, run_root: str | Path | None = None) -> StepRun:
    """The run of a params file (its folder is not created)."""
    params_file = paths.resolve(params_file)
    step, params = steps.load(params_file)
    root = paths.run_root(run_root)
    return StepRun(step, params, params_file,
                   RunDir.locate(step.name, params, root, inputs(params, params_file, root, step.name)), root)


def inputs(params, params_file: Path, root: Path, step: str) -> dict:
    """What a step's results depend on besides its params, so that a changed input gives a new
    run folder instead of stale results: the files of each micro-world model the params name
    (`world.model_identity`), the shipped world as a whole for step 01, the run of each
    upstream step (`traces_from`, `scaling_from`), whose folder name carries its own inputs, and
    for the findings step the run of every other step of its scale (it reads them all)."""
    from cotrepro import world
    from cotrepro.params import to_dict

    found: dict = {}

    def scan(value) -> None:
        if isinstance(value, dict):
            for v in value.values():
                scan(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                scan(v)
        elif isinstance(value, str) and value.startswith("micro:"):
            found[value] = world.model_identity(value.split(":", 1)[1])

    scan(to_dict(params))
    if getattr(params, "world_dir", None) and getattr(params, "rebuild", True) is None:
        found["world"] = world.check(paths.resolve(params.world_dir))
    for field in ("traces_from", "scaling_from"):
        if getattr(params, field, None):
            found[field] = locate(step_params_file(params_file, getattr(params, field), field), root).path.name
    if step == FINDINGS_STEP:
        found["runs"] = {f.stem: locate(f, root).path.name for f in steps.params_files(params.scale)
                         if steps.load(f)[0].name != FINDINGS_STEP}
    return dict(sorted(found.items()))


def open_step(params_file: str | Path, run_root: str | Path | None = None, step: str | None = None) -> StepRun:
    """Load a step's params, check they are for `step`, create its run folder, set threads and
    quiet the libraries: the first cell of every notebook."""
    run = locate(params_file, run_root)
    if step is not None and run.step.name != step:
        raise ParamsError(f"{paths.shown(run.params_file)}: step: the file is for {run.step.name!r}, but this "
                          f"notebook runs {step!r} (use params/<scale>/{steps.get_step(step).stem}.yaml)")
    RunDir.open(run.step.name, run.params, run.root,
                inputs=inputs(run.params, run.params_file, run.root, run.step.name))
    compute = getattr(run.params, "compute", None)
    if compute is not None:
        import torch

        torch.set_num_threads(compute.threads)
    from cotrepro.quiet import quiet_libraries

    quiet_libraries()
    return run


def run_notebook(notebook: str | Path, params_file: str | Path, run_root: str | Path | None = None,
                 force: bool = False) -> tuple[StepRun, bool]:
    """Execute `notebook` with `params_file` unless its results are stored; (run, whether it ran)."""
    notebook = paths.resolve(notebook)
    if notebook.suffix != ".ipynb":
        raise FileNotFoundError(f"{paths.shown(notebook)}: run the notebook (.ipynb); the .py beside it is its "
                                f"jupytext text copy")
    if not notebook.is_file():
        raise FileNotFoundError(f"no such notebook: {paths.shown(notebook)}")
    run = locate(params_file, run_root)  # validates the params: one line on error
    if notebook.stem != run.step.stem:
        raise ParamsError(f"{paths.shown(run.params_file)}: step: the file is for {run.step.name!r} "
                          f"({run.step.stem}.ipynb), not {notebook.name}")
    if run.done and not force:
        return run, False
    run.path.mkdir(parents=True, exist_ok=True)
    (run.path / DONE).unlink(missing_ok=True)
    executed = run.path / notebook.name
    start = time.time()
    _execute(notebook, executed, run)
    RunDir(run.path).write_json(DONE, {"notebook": notebook.name, "params_file": paths.shown(run.params_file),
                                       "seconds": round(time.time() - start, 1)})
    return run, True


def _execute(notebook: Path, executed: Path, run: StepRun) -> None:
    import papermill
    from traitlets.config import Config

    # IPC sockets, not TCP: the kernel is local, and over TCP ipykernel warns on every start
    # that its traffic is unencrypted. The sockets go in a folder of their own: by default they
    # are files named kernel-ipc-N in the working directory (the repository), and a kernel that is
    # killed leaves them there.
    sockets = Path(tempfile.mkdtemp(prefix="cotrepro-kernel-"))
    config = Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "ipc")}})
    try:
        papermill.execute_notebook(
            str(notebook), str(executed), cwd=str(paths.REPO_ROOT), kernel_name="python3",
            parameters={"params_file": str(run.params_file), "run_root": str(run.root)},
            progress_bar=False, log_output=False, stdout_file=None, stderr_file=None, config=config)
    except papermill.PapermillExecutionError as e:
        raise StepFailed(f"{run.step.stem} failed ({e.ename}: {_first_line(e.evalue)}); "
                         f"executed notebook: {paths.shown(executed)}") from None
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def _first_line(text: str) -> str:
    return (str(text).strip().splitlines() or [""])[0][:400]


def pipeline(scale: str, only: list[str] | None = None) -> list[Path]:
    """The params files of `scale` to run, in order (`only`: step names, numbers or file stems)."""
    files = steps.params_files(scale)
    if not files:
        raise FileNotFoundError(f"no params files under {paths.shown(paths.REPO_ROOT / 'params' / scale)}")
    if not only:
        return files
    picked = [f for f in files if {f.stem, f.stem[:2], steps.label(f), steps.label(f).split("__")[0]} & set(only)]
    known = {k for f in files for k in (f.stem, f.stem[:2], steps.label(f), steps.label(f).split("__")[0])}
    missing = [name for name in only if name not in known]
    if missing:
        raise FileNotFoundError(f"no step {', '.join(missing)} in params/{scale}/ (steps: "
                                f"{', '.join(f.stem for f in files)})")
    return picked


def reproduce(scale: str = "micro", only: list[str] | None = None, run_root: str | Path | None = None,
              force: bool = False) -> list[StepRun]:
    """Run every step of `scale` in order, skipping stored ones; one line per step."""
    files = pipeline(scale, only)
    runs, total_start = [], time.time()
    for i, params_file in enumerate(files, start=1):
        run = locate(params_file, run_root)
        prefix = f"[{i}/{len(files)}] {params_file.stem}"
        if run.done and not force:
            print(f"{prefix}: stored in {paths.shown(run.path)}, skipped", flush=True)
            runs.append(run)
            continue
        print(f"{prefix}: running ...", flush=True)
        start = time.time()
        run, _ = run_notebook(run.step.notebook, params_file, run_root, force)
        print(f"{prefix}: done in {time.time() - start:.0f}s, results in {paths.shown(run.path)}", flush=True)
        runs.append(run)
    print(f"{scale}: {len(files)} steps in {time.time() - total_start:.0f}s", flush=True)
    return runs


def stored_results(scale: str, run_root: str | Path | None = None) -> list[StepRun]:
    """The runs of `scale`'s params files whose results are stored, in pipeline order."""
    return [run for f in steps.params_files(scale) if (run := locate(f, run_root)).done]


def figures(scale: str = "micro", run_root: str | Path | None = None) -> list[Path]:
    """Regenerate every figure and table of `scale` from stored results (nothing is trained)."""
    from cotrepro.plots import write_all

    stored = stored_results(scale, run_root)
    if not any(run.step.name != FINDINGS_STEP for run in stored):
        raise FileNotFoundError(f"no stored results for scale {scale} under {paths.shown(paths.run_root(run_root))}: "
                                f"nothing written (run `cotrepro reproduce --scale {scale}` first)")
    return write_all(stored, scale, paths.figures_dir(scale, run_root))


def read_done(run: StepRun) -> dict:
    return json.loads((run.path / DONE).read_text())
