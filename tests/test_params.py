"""The params loader: frozen dataclasses, `include:` overrides, and one-line errors naming file and key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from cotrepro.config import ExperimentParams, load_experiment
from cotrepro.params import ParamsError, from_dict, load_params, param

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Inner:
    lr: float = param(1e-4, "learning rate", gt=0)
    kind: str = param("sft", "method", choices=("sft", "dpo"))


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = param(help="required name")
    epochs: int = param(1, "epochs", ge=1, le=100)
    sizes: tuple[int, ...] = param((1, 2), "sizes", ge=1)
    inner: Inner = param(default_factory=Inner, help="inner section")
    note: str | None = param(None, "optional")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_into_frozen_dataclass_with_defaults(tmp_path):
    p = load_params(write(tmp_path, "a.yaml", "name: x\ninner: {lr: 0.5}\nsizes: [3, 4]\n"), Outer)
    assert p == Outer(name="x", inner=Inner(lr=0.5), sizes=(3, 4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "y"


@pytest.mark.parametrize("text, key, words", [
    ("name: x\nepochz: 3\n", "epochz", "did you mean 'epochs'"),
    ("name: x\ninner: {lrr: 1}\n", "inner.lrr", "unknown key"),
    ("name: x\nepochs: three\n", "epochs", "expected an integer"),
    ("name: x\nepochs: true\n", "epochs", "expected an integer"),
    ("name: x\nepochs: 0\n", "epochs", "below the minimum"),
    ("name: x\nepochs: 101\n", "epochs", "above the maximum"),
    ("name: x\ninner: {lr: 0}\n", "inner.lr", "greater than"),
    ("name: x\ninner: {lr: fast}\n", "inner.lr", "expected a number"),
    ("name: x\ninner: {kind: ppo}\n", "inner.kind", "not one of"),
    ("name: x\nsizes: [1, -2]\n", "sizes", "below the minimum"),
    ("name: x\nsizes: [1, b]\n", "sizes[1]", "expected an integer"),
    ("name: x\ninner: 3\n", "inner", "expected a mapping"),
    ("epochs: 2\n", "name", "required key is missing"),
    ("name: [x\n", "line", "invalid YAML"),
])
def test_bad_values_name_file_and_key_in_one_line(tmp_path, text, key, words):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ParamsError) as err:
        load_params(path, Outer)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}")
    assert words in message


def test_include_overrides_base_key_by_key(tmp_path):
    write(tmp_path, "base.yaml", "name: base\nepochs: 5\ninner: {lr: 0.1, kind: dpo}\n")
    child = write(tmp_path, "child.yaml", "include: base.yaml\ninner: {lr: 0.2}\n")
    p = load_params(child, Outer)
    assert (p.name, p.epochs, p.inner.lr, p.inner.kind) == ("base", 5, 0.2, "dpo")


def test_errors_in_a_base_name_the_including_file(tmp_path):
    write(tmp_path, "base.yaml", "name: base\nepochs: nope\n")
    child = write(tmp_path, "child.yaml", "include: base.yaml\n")
    with pytest.raises(ParamsError, match=r"child\.yaml: epochs: expected an integer"):
        load_params(child, Outer)


def test_circular_include_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "include: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "include: a.yaml\n")
    with pytest.raises(ParamsError, match="circular"):
        load_params(tmp_path / "a.yaml", Outer)


def test_from_dict_rejects_unknown_top_level_key():
    with pytest.raises(ParamsError, match="<params>: bogus: unknown key"):
        from_dict(Outer, {"name": "x", "bogus": 1})


def test_every_params_file_in_the_repo_validates():
    files = sorted((REPO / "params").rglob("*.yaml"))
    assert files, "no params files found"
    for path in files:
        p = load_experiment(path)
        assert isinstance(p, ExperimentParams)


def test_every_params_file_starts_with_the_command_that_runs_it():
    for path in sorted((REPO / "params").rglob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# cotrepro "), f"{path}: first line should be the command that runs it"


def test_validate_cli_prints_one_line_without_traceback(tmp_path):
    bad = write(tmp_path, "bad.yaml", "experiment: x\nseed: -1\n")
    out = subprocess.run([sys.executable, "-m", "cotrepro.cli", "validate", str(bad)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    assert out.stderr.strip() == f"cotrepro validate: error: {bad}: seed: -1 is below the minimum 0"
    good = write(tmp_path, "good.yaml", "experiment: x\n")
    out = subprocess.run([sys.executable, "-m", "cotrepro.cli", "validate", str(good)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr


def test_explain_shows_each_sections_own_defaults():
    from cotrepro.params import describe

    lines = describe(ExperimentParams)
    teacher = ExperimentParams(experiment="x").micro.teacher
    assert f"micro.teacher.d_model = {teacher.d_model!r}" in "\n".join(lines)
    assert any(l.startswith("train.lr = ") and "#" in l for l in lines)
