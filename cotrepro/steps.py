"""The pipeline's steps: the one table the runner, the figures, `plan` and the findings read.

A step has one name everywhere: its notebook `notebooks/NN_<name>.ipynb`, its params files
`params/<scale>/NN_<name>[__variant].yaml` (whose `step:` key names it), its module
`cotrepro/experiments/<name>.py` (which holds its params schema `Params`, its functions and its
claims), its run folders `runs/<name>/<hash>/` and the prefix of its figures. The order below is
the pipeline's order; a step reads only the steps above it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotrepro.params import ParamsError, from_dict, load_yaml_where
from cotrepro.paths import REPO_ROOT


class Degenerate(ValueError):
    """A step produced nothing usable (no examples, a teacher at 0%): it fails with one line that
    names the cause and the parameter to change, and is not marked done."""


@dataclass(frozen=True)
class Step:
    number: str
    name: str
    claims: tuple[str, ...]
    what: str

    @property
    def stem(self) -> str:
        return f"{self.number}_{self.name}"

    @property
    def notebook(self) -> Path:
        return REPO_ROOT / "notebooks" / f"{self.stem}.ipynb"

    @property
    def module(self) -> str:
        return f"cotrepro.experiments.{self.name}"

    def schema(self) -> type:
        """The step's params dataclass (`Params` of its module)."""
        return importlib.import_module(self.module).Params


STEPS = (
    Step("00", "verifier_sanity", (), "grades every gold solution of every real benchmark"),
    Step("01", "micro_world", (), "checks the shipped micro world and measures it (micro); rebuilds a small one (smoke)"),
    Step("02", "sample_teacher_traces", ("SoT-6", "SoT-7"), "teacher traces, graded; matched H, G, W sets"),
    Step("03", "train_on_traces", ("SoT-1", "SoT-2"), "the student fine-tuned on H, G and W over seeds"),
    Step("04", "paraphrase_distance", ("SoT-3", "SoT-4"), "NLL of each set under the student; H paraphrased (P)"),
    Step("05", "corrupt_steps", ("SoT-5",), "accuracy against the share of corrupted steps"),
    Step("06", "scale_synthetic_data", ("ST-1", "ST-2", "ST-3", "ST-4", "ST-5", "ST-7"),
         "test error against the amount of synthetic data for SFT, RFT and per-step DPO"),
    Step("07", "inspect_advantages", ("ST-6",), "step advantages of idle and progress steps"),
    Step("08", "stargraph_shortcut", ("ST-8",), "SFT against per-step DPO on the star graph"),
    Step("90", "write_findings", (), "every figure and table, and FINDINGS.md"),
)
BY_NAME = {s.name: s for s in STEPS}


def get_step(name: str) -> Step:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown step {name!r}; the steps are {', '.join(BY_NAME)}") from None


def step_of(params_file: str | Path) -> Step:
    """The step a params file is for (its `step:` key), with one-line errors."""
    data, where = load_yaml_where(params_file)
    name = data.get("step")
    if name is None:
        raise ParamsError(f"{params_file}: step: required key is missing (the step this file is for: "
                          f"{', '.join(BY_NAME)})")
    if name not in BY_NAME:
        line = where.get("step", ("", 0))[1]
        raise ParamsError(f"{params_file}: step: {name!r} is not one of {list(BY_NAME)} (line {line})")
    return BY_NAME[name]


def load(params_file: str | Path, overrides: dict | None = None) -> tuple[Step, Any]:
    """(step, params) of a params file: its YAML checked against its step's schema."""
    from cotrepro.params import deep_merge

    step = step_of(params_file)
    data, where = load_yaml_where(params_file)
    data.pop("step")
    if overrides:
        data = deep_merge(data, overrides)
    return step, from_dict(step.schema(), data, source=str(params_file), where=where)


def params_files(scale: str) -> list[Path]:
    """The pipeline params files of `scale`, in step order (variants after their base)."""
    from cotrepro.paths import repository

    return sorted((repository() / "params" / scale).glob("[0-9][0-9]_*.yaml"))


def label(params_file: str | Path) -> str:
    """`03_train_on_traces__math.yaml` -> `train_on_traces__math`: a figure prefix."""
    stem = Path(params_file).stem
    return stem.split("_", 1)[1] if stem[:2].isdigit() and "_" in stem else stem


# a params field naming another step's params file -> the step that file must be for
UPSTREAM_FIELDS = {"traces_from": "sample_teacher_traces", "scaling_from": "scale_synthetic_data"}


def check_references(params_file: str | Path, step: Step, params: Any) -> None:
    """The params files a step's params refer to exist, load, and are for the right step."""
    from cotrepro.params import step_params_file

    for field, wanted in UPSTREAM_FIELDS.items():
        name = getattr(params, field, None)
        if name is None:
            continue
        other = step_params_file(params_file, name, field)
        other_step, _ = load(other)
        if other_step.name != wanted:
            raise ParamsError(f"{params_file}: {field}: {name} is a params file for {other_step.name!r}, "
                              f"not for {wanted!r}")


@dataclass(frozen=True)
class Cost:
    """The work a step's params ask for (upper bounds: every completion at its token limit)."""

    fine_tunes: int = 0
    train_examples: int = 0  # examples seen by the optimisers, summed over runs and epochs
    generated_tokens: int = 0  # tokens the student (and models trained from it) sample and roll out
    teacher_tokens: int = 0  # tokens the teacher (or paraphraser) samples
    notes: tuple[str, ...] = ()
