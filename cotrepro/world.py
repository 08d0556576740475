"""Turn an experiment's params into models and problems: the same calls at every scale.

A model spec is a hub id or local directory (paper scale), `micro:student` / `micro:teacher`
(the micro world, pretrained once and cached by its params hash), or `tiny:ARCH` (a tiny randomly
initialised qwen2/llama/gemma2 with an offline tokenizer, which stands in for a hub checkpoint when
the paper params run in CI). Whatever the spec, the result is loaded by `models.load_model`, so
micro models go through exactly the code path of hub models.
"""

from __future__ import annotations

from pathlib import Path

from cotrepro.config import REPO_ROOT, ExperimentParams
from cotrepro.tasks import get_task
from cotrepro.tasks.base import Problem

GENERATED_TASKS = ("arith", "stargraph")


def micro_root(run_root: str | Path) -> Path:
    """Where the micro world's models are cached (shared by every step of a run root)."""
    return Path(run_root) / "micro_world"


def resolve_model(spec: str, params: ExperimentParams, run_root: str | Path) -> str:
    """The local directory or hub id that `spec` names (pretraining the micro world if needed)."""
    if spec.startswith("micro:"):
        from cotrepro.micro import pretrain_micro

        role = spec.split(":", 1)[1]
        if role not in ("student", "teacher"):
            raise ValueError(f"model spec {spec!r}: expected micro:student or micro:teacher")
        return pretrain_micro(params.micro, out_root=micro_root(run_root))[role]
    if spec.startswith("tiny:"):
        from cotrepro.micro import tiny_random_model

        arch = spec.split(":", 1)[1]
        out_dir = Path(run_root) / "tiny_models" / arch
        if not (out_dir / "config.json").exists():
            tiny_random_model(arch, out_dir)
        return str(out_dir)
    local = Path(spec) if Path(spec).is_absolute() else REPO_ROOT / spec
    return str(local) if local.exists() else spec


def load(spec: str, params: ExperimentParams, run_root: str | Path, revision: str | None = None,
         four_bit: bool = False):
    """(model, tokenizer) for a model spec."""
    from cotrepro.models import load_model

    return load_model(resolve_model(spec, params, run_root), revision=revision, dtype=params.models.dtype,
                      load_in_4bit=four_bit)


def load_student(params: ExperimentParams, run_root: str | Path):
    m = params.models
    return load(m.student, params, run_root, m.student_revision, four_bit=m.load_in_4bit)


def load_teacher(params: ExperimentParams, run_root: str | Path):
    m = params.models
    return load(m.teacher, params, run_root, m.teacher_revision)


def problems(params: ExperimentParams, split: str, n: int | None = None) -> list[Problem]:
    """`n` problems of the experiment's task and `split` (a seeded sample of a real benchmark)."""
    t = params.task
    task = get_task(t.name)
    if t.name == "arith":  # the micro world's problems: numbers as large as its models were trained on
        from cotrepro.tasks.arith import ArithTask

        task = ArithTask(max_value=params.micro.max_value)
    return task.load(split, data_dir=params.data_dir(), limit=n, seed=params.seed)


def train_problems(params: ExperimentParams) -> list[Problem]:
    return problems(params, params.task.train_split, params.task.n_train)


def test_problems(params: ExperimentParams) -> list[Problem]:
    return problems(params, params.task.test_split, params.task.n_test)
