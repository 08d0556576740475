"""`cotrepro.world`: the manifest of a world folder and its check, on a small fake world; and the
shipped micro world (when it is there): it checks, and `cotrepro world --json` names folders
that load and a test file the experiments can read."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cotrepro import world

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "world"


def fake_world(folder: Path) -> Path:
    (folder / "student").mkdir(parents=True)
    (folder / "student" / "config.json").write_text('{"model_type": "llama"}\n')
    (folder / "student" / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    (folder / "test.jsonl").write_text('{"id": "test/0", "prompt": "Q", "answer": "1"}\n')
    (folder / "world.json").write_text(json.dumps({"params_hash": "0123abcd", "params": {"arith": {}}}))
    return folder


def one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text, f"not one line: {text!r}"
    return text


def test_a_fresh_manifest_checks(tmp_path):
    folder = fake_world(tmp_path / "w")
    manifest = world.write_manifest(folder, "cotrepro world build --out w", 12.34)
    assert (folder / world.MANIFEST).is_file()
    assert json.loads((folder / world.MANIFEST).read_text()) == manifest
    assert manifest["params_hash"] == "0123abcd"
    assert manifest["command"] == "cotrepro world build --out w" and manifest["cpu_seconds"] == 12.3
    assert set(manifest["files"]) == {"student/config.json", "student/model.safetensors", "test.jsonl", "world.json"}
    assert manifest["files"]["test.jsonl"] == world.sha256(folder / "test.jsonl")
    identity = world.check(folder)
    assert isinstance(identity, str) and len(identity) == 16
    assert world.check(folder) == identity
    assert world.manifest(folder) == manifest


def test_other_seeds_builds_under_spread_are_not_part_of_the_world(tmp_path):
    folder = fake_world(tmp_path / "w")
    (folder / "spread" / "seed1" / "student").mkdir(parents=True)
    (folder / "spread" / "seed1" / "student" / "report.json").write_text("{}")
    assert "spread/seed1/student/report.json" not in world.write_manifest(folder, "", 1.0)["files"]
    world.check(folder)


def test_a_seed_spread_build_from_the_command_line(tmp_path):
    """`world build --seed N --arith-only`, smoke-sized: the student and teacher of seed N, no
    star-graph models, and step 01's spread table reads their reports."""
    from cotrepro.experiments.micro_world import spread_rows

    out = tmp_path / "spread" / "seed3"
    done = subprocess.run([str(Path(sys.executable).parent / "cotrepro"), "world", "build", "--smoke", "--seed", "3",
                           "--arith-only", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    built = json.loads((out / "world.json").read_text())
    assert built["params"]["seed"] == 3
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["student", "teacher"]
    assert "--seed 3 --arith-only" in world.manifest(out)["command"]
    rows = spread_rows(tmp_path)
    assert {(r["seed"], r["model"]) for r in rows} == {("3", "student"), ("3", "teacher")}
    assert all(0 <= r["low"] <= r["accuracy"] <= r["high"] <= 1 for r in rows)


def test_the_spread_table_puts_the_shipped_world_beside_the_other_seeds(tmp_path):
    from cotrepro.experiments.micro_world import spread_rows

    def report(folder, accuracy):
        folder.mkdir(parents=True)
        measured = {"accuracy": accuracy, "low": accuracy - 0.01, "high": accuracy + 0.01, "n": 1000}
        (folder / "report.json").write_text(json.dumps({"multi_step": measured, "cpu_s": 1.0}))

    report(tmp_path / "teacher", 0.72)
    report(tmp_path / "student", 0.26)
    report(tmp_path / "spread" / "seed2" / "teacher", 0.91)
    rows = spread_rows(tmp_path)
    assert [(r["seed"], r["model"], r["accuracy"]) for r in rows] == [
        ("0 (shipped)", "student", 0.26), ("0 (shipped)", "teacher", 0.72), ("2", "teacher", 0.91)]


def test_the_identity_follows_the_manifest(tmp_path):
    a = fake_world(tmp_path / "a")
    b = fake_world(tmp_path / "b")
    (b / "test.jsonl").write_text('{"id": "test/0", "prompt": "Q", "answer": "2"}\n')
    world.write_manifest(a, "x", 0)
    world.write_manifest(b, "x", 0)
    assert world.check(a) != world.check(b)


@pytest.mark.parametrize("name", ["student/model.safetensors", "test.jsonl", "world.json"])
def test_one_changed_byte_fails_naming_the_file(tmp_path, name):
    folder = fake_world(tmp_path / "w")
    world.write_manifest(folder, "cotrepro world build --out w", 1.0)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(world.WorldError) as raised:
        world.check(folder)
    text = one_line(raised.value)
    assert name in text and "sha256" in text
    others = {"student/model.safetensors", "test.jsonl", "world.json"} - {name}
    assert not any(o in text for o in others)


def test_a_missing_file_fails_naming_it(tmp_path):
    folder = fake_world(tmp_path / "w")
    world.write_manifest(folder, "x", 1.0)
    (folder / "student" / "config.json").unlink()
    with pytest.raises(world.WorldError) as raised:
        world.check(folder)
    text = one_line(raised.value)
    assert "student/config.json" in text and "missing" in text


def test_a_missing_manifest_fails_telling_the_build_command(tmp_path):
    folder = fake_world(tmp_path / "w")
    with pytest.raises(world.WorldError) as raised:
        world.check(folder)
    text = one_line(raised.value)
    assert world.MANIFEST in text
    assert "`cotrepro world build --out world`" in text
    with pytest.raises(world.WorldError):
        world.model_dir("student", folder)


def test_a_change_after_a_passing_check_is_caught_in_the_same_process(tmp_path):
    folder = fake_world(tmp_path / "w")
    world.write_manifest(folder, "x", 1.0)
    world.check(folder)
    (folder / "test.jsonl").write_text("changed\n")
    with pytest.raises(world.WorldError):
        world.check(folder)


# ---------------------------------------------------------------------------------------------
# The shipped world

shipped = pytest.mark.skipif(not (SHIPPED / world.MANIFEST).is_file(), reason="no shipped world/MANIFEST.json")


@shipped
def test_the_shipped_world_checks():
    assert len(world.check()) == 16
    listed = world.manifest()["files"]
    on_disk = set(world.own_files(SHIPPED))  # spread/ (other seeds' reports) is not part of it
    assert set(listed) == on_disk, f"files not in the manifest: {sorted(on_disk - set(listed))}; " \
                                   f"listed but absent: {sorted(set(listed) - on_disk)}"


@shipped
def test_the_shipped_world_is_what_world_build_builds():
    """Its report's params are the defaults `cotrepro world build` trains with, and it holds
    every model they make (the paraphraser only where its params ask for one)."""
    from cotrepro.micro import WorldParams
    from cotrepro.params import to_dict
    from cotrepro.store import stable_hash

    built = world.report()
    assert built["params"] == to_dict(WorldParams())
    assert built["params_hash"] == stable_hash(WorldParams()) == world.manifest()["params_hash"]
    roles = {"student", "teacher"} | ({"paraphraser"} if WorldParams().arith.paraphraser_rewrites else set())
    assert roles <= set(built) and all((SHIPPED / role / "config.json").is_file() for role in roles)


@shipped
def test_a_copy_of_the_shipped_world_with_one_changed_byte_fails(tmp_path):
    copy = tmp_path / "world"
    shutil.copytree(SHIPPED, copy)
    assert world.check(copy) == world.check(SHIPPED)
    target = tmp_path / "world2"
    shutil.copytree(SHIPPED, target)
    weights = target / "student" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(world.WorldError, match="student/model.safetensors"):
        world.check(target)


@pytest.fixture(scope="module")
def described():
    cli = Path(sys.executable).parent / "cotrepro"
    done = subprocess.run([str(cli), "world", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"expected one line of JSON, got {len(lines)}"
    out = json.loads(lines[0])
    assert isinstance(out, dict)
    return out


@shipped
def test_world_json_names_the_folders_test_file_and_task(described):
    assert {"student", "teacher", "paraphraser", "test", "task"} <= set(described)
    for role in ("student", "teacher", "paraphraser"):
        assert Path(described[role]).is_absolute() and Path(described[role]).is_dir()
    task = described["task"]
    assert task["name"] == "arith" and isinstance(task["template"], str) and task["stop"]


@shipped
@pytest.mark.parametrize("role", ["student", "teacher"])
def test_world_json_folders_load_with_auto_classes(described, role):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(described[role])
    tokenizer = AutoTokenizer.from_pretrained(described[role])
    assert sum(p.numel() for p in model.parameters()) > 0
    ids = tokenizer("Question: 1 + 2?\nAnswer:\n")["input_ids"]
    assert len(ids) > 0 and max(ids) < model.config.vocab_size


@shipped
def test_world_json_test_file_holds_prompts_and_answers(described):
    lines = Path(described["test"]).read_text().splitlines()
    assert len(lines) >= 1000
    rows = [json.loads(line) for line in lines]
    bad = [i for i, r in enumerate(rows) if not (isinstance(r.get("prompt"), str) and r["prompt"]
                                                 and str(r.get("answer", "")).strip())]
    assert not bad, f"lines without a prompt and an answer: {bad[:10]}"
    assert len({r["id"] for r in rows}) == len(rows)
