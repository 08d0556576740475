"""The STEPS table (`cotrepro.steps`) matches the files: notebooks, modules, writers, claims and
params files; and a params key the step's schema does not declare is refused in one line."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from cotrepro import claims, plots, steps
from cotrepro.params import ParamsError

REPO = Path(__file__).resolve().parents[1]
STEP_IDS = [s.name for s in steps.STEPS]
PARAMS_FILES = sorted(f for scale in ("micro", "smoke") for f in (REPO / "params" / scale).glob("*.yaml")
                      if f.name[:1].isdigit())


def test_the_table_is_in_pipeline_order_with_unique_names_and_numbers():
    numbers = [s.number for s in steps.STEPS]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    assert len(set(STEP_IDS)) == len(STEP_IDS)
    assert all(re.fullmatch(r"\d\d", n) for n in numbers)


@pytest.mark.parametrize("name", STEP_IDS)
def test_every_step_has_its_notebook_module_schema_cost_and_writer(name):
    step = steps.get_step(name)
    notebook = REPO / "notebooks" / f"{step.number}_{step.name}.ipynb"
    assert step.notebook == notebook
    assert notebook.is_file(), f"missing {notebook.relative_to(REPO)}"
    assert notebook.with_suffix(".py").is_file(), f"missing {notebook.with_suffix('.py').relative_to(REPO)}"
    module = importlib.import_module(f"cotrepro.experiments.{name}")
    assert step.module == module.__name__
    assert (REPO / "cotrepro" / "experiments" / f"{name}.py").is_file()
    schema = getattr(module, "Params", None)
    assert schema is not None and dataclasses.is_dataclass(schema), f"{module.__name__}.Params is not a dataclass"
    assert step.schema() is schema
    assert "scale" in {f.name for f in dataclasses.fields(schema)}
    cost = getattr(module, "cost", None)
    assert callable(cost), f"{module.__name__} has no cost function"
    assert next(iter(inspect.signature(cost).parameters)) == "P"
    assert name in plots.WRITERS, f"no writer for {name} in cotrepro.plots.WRITERS"
    assert callable(plots.WRITERS[name])


def test_writers_name_exactly_the_steps():
    assert set(plots.WRITERS) == set(STEP_IDS)


def test_the_steps_claims_exist_and_cover_every_claim_exactly_once():
    listed = Counter(c for s in steps.STEPS for c in s.claims)
    known = [c["id"] for c in claims.claim_list()]
    assert len(known) == len(set(known)), "a claim id is written twice in claims.yaml"
    unknown = sorted(set(listed) - set(known))
    twice = sorted(c for c, n in listed.items() if n > 1)
    uncovered = [c for c in known if c not in listed]
    assert not unknown, f"steps list claims not in claims.yaml: {unknown}"
    assert not twice, f"claims listed by more than one step: {twice}"
    assert not uncovered, f"claims no step tests: {uncovered}"
    for c in known:  # every claim has a test the step reads
        assert {"effect", "rule"} <= set(claims.test(c)), c


def test_there_are_params_files_to_check():
    scales = {f.parent.name for f in PARAMS_FILES}
    assert scales == {"micro", "smoke"}
    assert len(PARAMS_FILES) >= 2 * len(STEP_IDS)


@pytest.mark.parametrize("path", PARAMS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_params_file_names_its_step_and_the_command_that_runs_it(path):
    number, rest = path.stem.split("_", 1)
    name = rest.split("__", 1)[0]
    own = yaml.safe_load(path.read_text()) or {}
    assert own.get("step") == name, f"{path.relative_to(REPO)}: step: {own.get('step')!r}, expected {name!r}"
    step = steps.get_step(name)
    assert step.number == number, f"{path.relative_to(REPO)}: numbered {number}, but {name} is step {step.number}"
    assert steps.step_of(path) is step
    first = path.read_text().splitlines()[0]
    relative = path.relative_to(REPO).as_posix()
    assert first == f"# cotrepro run notebooks/{step.stem}.ipynb -f {relative}", first
    loaded_step, params = steps.load(path)
    assert loaded_step is step and isinstance(params, step.schema())
    assert params.scale == path.parent.name


def test_a_key_the_schema_does_not_declare_is_refused_in_one_line(tmp_path):
    base = REPO / "params" / "micro" / "03_train_on_traces.yaml"
    stray = tmp_path / "03_train_on_traces__stray.yaml"
    stray.write_text(f"include: {base}\nladder:\n  sizes: [64, 128, 256]\n")
    with pytest.raises(ParamsError) as raised:
        steps.load(stray)
    message = str(raised.value)
    assert "\n" not in message
    assert str(stray) in message
    assert re.search(r"(^|: )ladder: unknown key", message), message
    # and the same file without the stray section loads
    clean = tmp_path / "03_train_on_traces__clean.yaml"
    clean.write_text(f"include: {base}\n")
    step, _ = steps.load(clean)
    assert step.name == "train_on_traces"


def test_a_stray_key_inside_a_section_names_the_dotted_key(tmp_path):
    base = REPO / "params" / "micro" / "03_train_on_traces.yaml"
    stray = tmp_path / "03_train_on_traces__stray.yaml"
    stray.write_text(f"include: {base}\nfinetune:\n  ladder: 3\n")
    with pytest.raises(ParamsError) as raised:
        steps.load(stray)
    message = str(raised.value)
    assert "\n" not in message and str(stray) in message and "finetune.ladder: unknown key" in message, message
