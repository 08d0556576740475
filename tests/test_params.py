"""The params loader: frozen dataclasses, `include:` overrides, and one-line errors naming file and key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from cotrepro import steps
from cotrepro.micro import WorldParams
from cotrepro.params import ParamsError, describe, from_dict, load_params, load_yaml, param
from cotrepro.sections import SamplingParams
from cotrepro.tiny import MicroModelParams

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
    with pytest.raises(ParamsError, match=r"child\.yaml: epochs: expected an integer") as err:
        load_params(child, Outer)
    # ... and the file and line where the bad value was written
    assert str(err.value).endswith(f"({tmp_path / 'base.yaml'} line 2)")


def test_circular_include_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "include: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "include: a.yaml\n")
    with pytest.raises(ParamsError, match="circular"):
        load_params(tmp_path / "a.yaml", Outer)


def test_from_dict_rejects_unknown_top_level_key():
    with pytest.raises(ParamsError, match="<params>: bogus: unknown key"):
        from_dict(Outer, {"name": "x", "bogus": 1})


def test_exponent_without_a_decimal_point_loads_as_a_float(tmp_path):
    p = load_params(write(tmp_path, "e.yaml", "name: x\ninner: {lr: 1e-4}\n"), Outer)
    assert p.inner.lr == 1e-4 and isinstance(p.inner.lr, float)
    assert load_yaml(write(tmp_path, "f.yaml", "a: 1e-4\nb: 2E3\nc: 1.5e-6\nd: -3e2\ne: 12\nf: 1e\n")) == \
        {"a": 1e-4, "b": 2e3, "c": 1.5e-6, "d": -300.0, "e": 12, "f": "1e"}
    assert isinstance(load_yaml(tmp_path / "f.yaml")["e"], int)


def test_a_key_written_twice_names_both_lines(tmp_path):
    path = write(tmp_path, "twice.yaml", "name: x\nepochs: 2\ninner:\n  lr: 0.1\n  lr: 0.2\nepochs: 3\n")
    with pytest.raises(ParamsError) as err:
        load_params(path, Outer)
    assert str(err.value) == f"{path}: inner.lr: written twice (lines 4 and 5); keep one"
    path = write(tmp_path, "twice2.yaml", "name: x\nepochs: 2\nepochs: 3\n")
    with pytest.raises(ParamsError, match=r"twice2\.yaml: epochs: written twice \(lines 2 and 3\)"):
        load_params(path, Outer)


@pytest.mark.parametrize("data", [b"name: x\nnote: caf\xe9\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
                                  bytes(range(256))])
def test_a_binary_or_non_utf8_file_gives_one_line(tmp_path, data):
    path = tmp_path / "binary.yaml"
    path.write_bytes(data)
    with pytest.raises(ParamsError) as err:
        load_params(path, Outer)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: line ")
    assert "not a UTF-8 text file" in message
    assert str(ParamsError(message)) == message


def test_include_as_a_list_merges_in_order(tmp_path):
    write(tmp_path, "one.yaml", "name: one\nepochs: 5\ninner: {lr: 0.1, kind: dpo}\n")
    write(tmp_path, "two.yaml", "name: two\ninner: {lr: 0.2}\nsizes: [7]\n")
    child = write(tmp_path, "child.yaml", "include: [one.yaml, two.yaml]\nsizes: [8, 9]\n")
    p = load_params(child, Outer)
    # later includes override earlier ones key by key, and the including file overrides them all
    assert (p.name, p.epochs, p.inner.lr, p.inner.kind, p.sizes) == ("two", 5, 0.2, "dpo", (8, 9))
    reverse = write(tmp_path, "reverse.yaml", "include: [two.yaml, one.yaml]\n")
    p = load_params(reverse, Outer)
    assert (p.name, p.inner.lr, p.inner.kind, p.sizes) == ("one", 0.1, "dpo", (7,))
    # an error in the second include names it and its line
    write(tmp_path, "three.yaml", "epochs: many\n")
    bad = write(tmp_path, "bad.yaml", "include: [one.yaml, three.yaml]\n")
    with pytest.raises(ParamsError) as err:
        load_params(bad, Outer)
    assert str(err.value) == (f"{bad}: epochs: expected an integer, got str 'many' "
                              f"({tmp_path / 'three.yaml'} line 1)")


@pytest.mark.parametrize("include", ["missing.yaml", "[one.yaml, missing.yaml]", "sub"])
def test_a_missing_include_names_the_including_file(tmp_path, include):
    write(tmp_path, "one.yaml", "name: one\n")
    (tmp_path / "sub").mkdir()
    child = write(tmp_path, "child.yaml", f"name: x\ninclude: {include}\n")
    with pytest.raises(ParamsError) as err:
        load_params(child, Outer)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{child}: include: ")
    assert message.endswith("(line 2)")
    assert ("is a folder" if include == "sub" else "missing.yaml: no such file") in message


@pytest.mark.parametrize("text, key, line", [
    ("name: x\nepochz: 3\n", "epochz", 2),
    ("name: x\ninner:\n  lrr: 1\n", "inner.lrr", 3),
    ("name: x\nepochs: three\n", "epochs", 2),
    ("name: x\n\n\nepochs: 0\n", "epochs", 4),
    ("name: x\ninner: {lr: 0}\n", "inner.lr", 2),
    ("name: x\ninner:\n  kind: ppo\n", "inner.kind", 3),
    ("name: x\nsizes: [1, b]\n", "sizes[1]", 2),
    ("name: x\ninner: 3\n", "inner", 2),
    ("epochs: 2\nname:\n", "name", 2),  # null for a required string
    ("name: x\ninclude: nowhere.yaml\n", "include", 2),
    ("name: x\ninclude: 3\n", "include", 2),
])
def test_every_error_is_one_line_naming_file_key_and_line(tmp_path, text, key, line):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ParamsError) as err:
        load_params(path, Outer)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: ")
    assert message.endswith(f"(line {line})"), message


@pytest.mark.parametrize("text, head, tail", [
    ("name: [x\n", "line 2: invalid YAML", ""),  # the parser's line
    ("name: x\nname: y\n", "name: written twice", "(lines 1 and 2); keep one"),
])
def test_errors_found_while_reading_the_yaml_mention_their_lines(tmp_path, text, head, tail):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ParamsError) as err:
        load_params(path, Outer)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: {head}") and message.endswith(tail)


def test_a_file_that_is_not_a_mapping_says_so_in_one_line(tmp_path):
    path = write(tmp_path, "list.yaml", "- a\n- b\n")
    with pytest.raises(ParamsError) as err:
        load_params(path, Outer)
    assert str(err.value) == f"{path}: (top level): expected a mapping of keys, got list"


def test_a_step_file_without_a_step_or_with_an_unknown_one_gives_one_line(tmp_path):
    missing = write(tmp_path, "01_x.yaml", "scale: micro\n")
    with pytest.raises(ParamsError) as err:
        steps.load(missing)
    assert str(err.value).startswith(f"{missing}: step: required key is missing")
    unknown = write(tmp_path, "02_x.yaml", "scale: micro\nstep: trian_on_traces\n")
    with pytest.raises(ParamsError) as err:
        steps.load(unknown)
    assert str(err.value).startswith(f"{unknown}: step: 'trian_on_traces' is not one of")
    assert str(err.value).endswith("(line 2)") and "\n" not in str(err.value)
    stray = write(tmp_path, "03_x.yaml", "step: micro_world\nscale: micro\nseed: 3\n")
    with pytest.raises(ParamsError) as err:
        steps.load(stray)
    assert str(err.value).startswith(f"{stray}: seed: unknown key") and str(err.value).endswith("(line 3)")


def _step_files(scale):
    return sorted((REPO / "params" / scale).glob("*.yaml"))


@pytest.mark.parametrize("path", _step_files("micro") + _step_files("smoke"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_micro_and_smoke_params_file_loads(path):
    if path.name.startswith("_"):  # a fragment: its keys are checked with each step that includes it
        assert isinstance(load_yaml(path), dict)
        return
    step, params = steps.load(path)
    assert step.name == load_yaml(path)["step"] and isinstance(params, step.schema())
    assert params.scale == path.parent.name
    steps.check_references(path, step, params)


@pytest.mark.parametrize("path", _step_files("paper"), ids=lambda p: f"paper/{p.name}")
def test_paper_params_files_load_where_they_load(path):
    """The paper params are being rewritten: a file that does not load yet is skipped, not failed."""
    if path.name.startswith("_"):
        assert isinstance(load_yaml(path), dict)
        return
    try:
        step, params = steps.load(path)
    except ParamsError as e:
        pytest.skip(f"paper params being rewritten: {e}")
    assert isinstance(params, step.schema()) and params.scale == "paper"


def test_every_params_file_starts_with_the_command_that_runs_it():
    for path in sorted((REPO / "params").rglob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# cotrepro "), f"{path}: first line should be the command that runs it"


def test_validate_cli_prints_one_line_without_traceback(tmp_path):
    bad = write(tmp_path, "00_verifier_sanity.yaml", "step: verifier_sanity\nscale: micro\nlimit: -1\n")
    out = subprocess.run([sys.executable, "-m", "cotrepro.cli", "validate", str(bad)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"cotrepro validate: error: {bad}: limit: -1 is below the minimum 1 (line 3)",
        "cotrepro validate: 1 of 1 files have errors"]
    assert "Traceback" not in out.stderr
    good = write(tmp_path, "01_good.yaml", "step: verifier_sanity\nscale: micro\n")
    out = subprocess.run([sys.executable, "-m", "cotrepro.cli", "validate", str(good)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ok  {good}  (verifier_sanity)"


def test_explain_shows_each_sections_own_defaults():
    from cotrepro.experiments.scale_synthetic_data import LadderSection

    lines = "\n".join(describe(steps.get_step("scale_synthetic_data").schema()))
    teacher = LadderSection().teacher  # the section's own default, not SamplingParams'
    assert teacher.k != SamplingParams().k
    assert f"ladder.teacher.k = {teacher.k!r}" in lines
    assert f"ladder.self_sampling.k = {LadderSection().self_sampling.k!r}" in lines
    assert any(l.startswith("finetune.train.lr = ") and "#" in l for l in lines.splitlines())
    world = "\n".join(describe(WorldParams))
    assert f"arith.student.d_model = {WorldParams().arith.student.d_model!r}" in world
    assert WorldParams().arith.student.d_model != MicroModelParams().d_model
