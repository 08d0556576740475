"""The shipped micro world: checkpoints under `world/`, their hashes, and `cotrepro world`.

The micro world plays the part hub checkpoints play at paper scale. It is trained once
(`cotrepro world build`, see `cotrepro.micro`), committed under `world/` and checked before use:

    world/student/  world/teacher/        save_pretrained folders (model and tokenizer)
    world/paraphraser/                    the teacher's recipe trained for rewriting (SoT-4)
    world/stargraph-s0/ ...-s1/ ...-s2/   the star-graph models, one per training seed
    world/test.jsonl       held-out arith problems, each with the prompt the experiments use
    world/world.json       the build report: params and their hash, CPU time, accuracies
    world/MANIFEST.json    sha256 of every file, the params hash and the command that built it

`check()` compares every file with its sha256 and fails in one line naming the file that differs,
so no experiment runs on a world that is not the one the findings describe.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from cotrepro.paths import WORLD_DIR, shown

MANIFEST = "MANIFEST.json"
BUILD_COMMAND = "cotrepro world build --out world"


class WorldError(RuntimeError):
    """The shipped world is missing or differs from its manifest (one line)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def own_files(world_dir: Path) -> list[str]:
    """The files of a built world that its manifest covers: all but the manifest and `spread/`,
    which holds builds with other seeds (their reports; their checkpoints are not shipped)."""
    return [str(p.relative_to(world_dir)) for p in sorted(Path(world_dir).rglob("*"))
            if p.is_file() and p.name != MANIFEST and p.relative_to(world_dir).parts[0] != "spread"]


def write_manifest(world_dir: Path, command: str, cpu_seconds: float) -> dict:
    """Hash every file of a built world and write MANIFEST.json beside them."""
    report = json.loads((world_dir / "world.json").read_text())
    files = {name: sha256(world_dir / name) for name in own_files(world_dir)}
    manifest = {"params_hash": report["params_hash"], "command": command, "cpu_seconds": round(cpu_seconds, 1),
                "files": files}
    (world_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def manifest(world_dir: Path = WORLD_DIR) -> dict:
    path = Path(world_dir) / MANIFEST
    if not path.is_file():
        raise WorldError(f"no micro world at {shown(Path(world_dir))} ({MANIFEST} missing): "
                         f"build one with `{BUILD_COMMAND}`")
    return json.loads(path.read_text())


@cache
def _checked(world_dir: str, manifest_text: str, stamps: tuple) -> str:
    expected = json.loads(manifest_text)["files"]
    for name, digest in expected.items():
        path = Path(world_dir) / name
        if not path.is_file():
            raise WorldError(f"{shown(path)}: missing from the micro world (listed in {MANIFEST})")
        if sha256(path) != digest:
            raise WorldError(f"{shown(path)}: sha256 differs from {MANIFEST}: the micro world was changed; "
                             f"restore it (git checkout world/) or rebuild it with `{BUILD_COMMAND}`")
    return hashlib.sha256(manifest_text.encode()).hexdigest()[:16]


def check(world_dir: Path = WORLD_DIR) -> str:
    """Verify every file against the manifest; returns the world's identity (a hash of its
    manifest), which goes into the cache key of every job that uses the world. The hashes are
    computed once per process and state of the files (their sizes and modification times), so a
    file changed while a notebook kernel runs is checked again."""
    world_dir = Path(world_dir)
    text = json.dumps(manifest(world_dir))
    stamps = tuple((name, *_stamp(world_dir / name)) for name in json.loads(text)["files"])
    return _checked(str(world_dir.resolve()), (world_dir / MANIFEST).read_text(), stamps)


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def model_identity(role: str, world_dir: Path = WORLD_DIR) -> str:
    """A hash of the sha256 of the files of one model folder (checked): what a job that uses that
    model keys on, so rebuilding another model of the world keeps its stored results."""
    check(world_dir)
    files = manifest(world_dir)["files"]
    mine = {name: digest for name, digest in files.items() if name.startswith(f"{role}/")}
    if not mine:
        model_dir(role, world_dir)  # the one-line error naming the models there
    return hashlib.sha256(json.dumps(mine, sort_keys=True).encode()).hexdigest()[:16]


def model_dir(role: str, world_dir: Path = WORLD_DIR) -> Path:
    check(world_dir)
    if not (Path(world_dir) / role / "config.json").is_file():
        have = sorted(p.parent.name for p in Path(world_dir).glob("*/config.json"))
        raise WorldError(f"model spec micro:{role}: the micro world has {', '.join(have)}")
    return Path(world_dir) / role


def report(world_dir: Path = WORLD_DIR) -> dict:
    return json.loads((Path(world_dir) / "world.json").read_text())


def describe(world_dir: Path = WORLD_DIR) -> dict:
    """What `cotrepro world --json` prints: the model folders, the test file and the task options."""
    check(world_dir)
    world_dir = Path(world_dir).resolve()
    params = report(world_dir)["params"]
    return {"student": str(world_dir / "student"), "teacher": str(world_dir / "teacher"),
            **({"paraphraser": str(world_dir / "paraphraser")} if (world_dir / "paraphraser").is_dir() else {}),
            "stargraph": [str(p.parent) for p in sorted(world_dir.glob("stargraph-s*/config.json"))],
            "test": str(world_dir / "test.jsonl"),
            "task": {"name": "arith", "template": params["arith"]["template"],
                     "max_value": params["arith"]["max_value"], "n_steps": [2, 4],
                     "answer_line": "#### N", "stop": ["\n\n", "Question:"]},
            "stargraph_task": {k: params["stargraph"][k] for k in ("degree", "path_length", "n_nodes")},
            "params_hash": manifest(world_dir)["params_hash"]}


def export_test(world_dir: Path, n: int, max_value: int, template: str) -> Path:
    """Write the held-out problems as the experiments prompt them (`world/test.jsonl`)."""
    from cotrepro.tasks.arith import ArithTask

    task = ArithTask(max_value=max_value)
    path = Path(world_dir) / "test.jsonl"
    with open(path, "w") as f:
        for p in task.load("test", limit=n):
            f.write(json.dumps({"id": p.id, "prompt": task.prompt(p, template), "answer": p.answer,
                                "question": p.question, "steps": len(p.meta["steps"])}) + "\n")
    return path


def smoke_world():
    """The tiny world of step 01 at smoke scale (`params/smoke/01_micro_world.yaml`, its `rebuild`
    section): the rebuild path in seconds, for `world build --smoke` too."""
    from cotrepro import paths, steps

    _, params = steps.load(paths.repository() / "params" / "smoke" / "01_micro_world.yaml")
    return params.rebuild


def rebuild(out_dir: str | Path, smoke: bool = False, command: str = "", seed: int = 0,
            parts=("arith", "paraphraser", "stargraph")) -> dict:
    """`cotrepro world build`: train the micro world (the shipped settings, or a tiny one with
    `smoke`) into `out_dir`, export its test problems and hash every file. A model already built
    there (its `curves.json` is written last) is kept, so a killed build resumes. Another `seed`
    (corpora, initialisation, data order) with `parts=("arith",)` is how the seed spread under
    `world/spread/` is measured."""
    from dataclasses import replace

    from cotrepro.micro import WorldParams, build_world
    from cotrepro.quiet import quiet_libraries

    quiet_libraries()  # the loss and accuracy curves are kept; per-save progress bars are noise
    params = smoke_world() if smoke else WorldParams()
    params = replace(params, seed=seed) if seed else params
    out_dir = Path(out_dir)
    report = build_world(params, out_dir, parts)
    export_test(out_dir, params.n_eval if smoke else 2000, params.arith.max_value, params.arith.template)
    cpu = sum(r["cpu_s"] for r in report.values() if isinstance(r, dict) and "cpu_s" in r)
    return write_manifest(out_dir, command, cpu)
