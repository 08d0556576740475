"""From params sections to models and problems: the same calls at every scale.

A model spec (`sections.ModelSpec.name`) is a hub id or local folder (paper scale), `micro:ROLE`
(the shipped micro world, `world/ROLE`, checked against its hashes), or `tiny:ARCH` (a tiny random
qwen2, llama or gemma2 with an offline tokenizer, built once under the run root: it stands in for
a hub checkpoint when the paper params run in CI). Whatever the spec, the model is loaded by
`models.load_model`, so micro models go through exactly the code path of hub models.

A *model reference* names a model inside a job spec: `{"spec": ModelSpec}` for a base model, or
`{"finetune": KEY}` for the output of a fine-tune job. `identity(ref)` is what goes into a cache
key: for the micro world its manifest hash, so a changed world never reuses stale results.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cotrepro.params import to_dict
from cotrepro.paths import REPO_ROOT, cache_dir, run_root
from cotrepro.sections import DataSection, ModelSpec, TaskSection

TINY_VERSION = 1  # bump when tiny_random_model changes


def spec_ref(spec: ModelSpec) -> dict:
    """The model reference of a base model."""
    return {"spec": to_dict(spec)}


def finetune_ref(key: str) -> dict:
    return {"finetune": key}


def identity(ref: dict) -> dict:
    """What a reference contributes to a cache key (see the module docstring)."""
    if "finetune" in ref:
        return ref
    spec = ref["spec"]
    name = spec["name"]
    if name.startswith("micro:"):
        from cotrepro import world

        return {**spec, "world": world.model_identity(name.split(":", 1)[1])}
    if name.startswith("tiny:"):
        return {**spec, "tiny_version": TINY_VERSION}
    return spec


def model_path(ref: dict, root: str | Path | None = None) -> str:
    """The folder (or hub id) a model reference names."""
    if "finetune" in ref:
        path = cache_dir(root, "finetune") / ref["finetune"] / "model"
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"fine-tuned model {ref['finetune']} is not in {path.parent.parent}")
        return str(path)
    name = ref["spec"]["name"]
    if name.startswith("micro:"):
        from cotrepro import world

        return str(world.model_dir(name.split(":", 1)[1]))
    if name.startswith("tiny:"):
        return str(_tiny(name.split(":", 1)[1], root))
    local = Path(name).expanduser()
    local = local if local.is_absolute() else REPO_ROOT / local
    return str(local) if local.exists() else name


def _tiny(arch: str, root) -> Path:
    from cotrepro.tiny import tiny_random_model

    out = run_root(root) / "tiny_models" / f"{arch}-v{TINY_VERSION}"
    if not (out / "config.json").is_file():
        partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
        tiny_random_model(arch, partial)
        try:
            os.replace(partial, out)
        except OSError:  # another process built it first
            import shutil

            shutil.rmtree(partial, ignore_errors=True)
    return out


def load(ref: dict | ModelSpec, root: str | Path | None = None, training: bool = False):
    """(model, tokenizer) of a model reference or a base-model spec, with its spec's revision,
    dtype and 4-bit setting. `training`: float32 weights (unless 4-bit), whatever the checkpoint's
    dtype: bf16 weights cannot take a small update (in bf16, 0.02 - 1e-6 == 0.02), so training
    keeps float32 master weights and the Trainer runs the matmuls in bf16 autocast on a GPU."""
    from cotrepro.models import load_model

    ref = spec_ref(ref) if isinstance(ref, ModelSpec) else ref
    spec = ref.get("spec", {})
    four_bit = spec.get("load_in_4bit", False)
    dtype = "float32" if training and not four_bit else spec.get("dtype", "auto")
    return load_model(model_path(ref, root), revision=spec.get("revision"), dtype=dtype, load_in_4bit=four_bit)


def get_task(task: TaskSection | dict[str, Any]):
    """The task a section names, carrying its code-execution opt-in (which the grader honours)."""
    import copy

    from cotrepro.tasks import get_task as by_name

    section = task if isinstance(task, TaskSection) else TaskSection(**task)
    found = by_name(section.name)
    if section.allow_code_execution:
        found = copy.copy(found)
        found.allow_code_execution = True
    return found


def stop_strings(task: TaskSection) -> tuple[str, ...]:
    """The stop strings of the task's prompt template (where a completion ends)."""
    from cotrepro.tasks.prompts import get_template

    return tuple(get_template(get_task(task).name, task.template).stop)


def with_task_stops(sampling, task: TaskSection):
    """`sampling` with the task template's stop strings added (its own kept first, no repeats)."""
    from dataclasses import replace

    return replace(sampling, stop=tuple(dict.fromkeys(tuple(sampling.stop) + stop_strings(task))))


def problems(task: TaskSection, data: DataSection | None, split: str, n: int, seed: int = 0):
    """`n` problems of `split` (a seeded sample of a real benchmark; generated tasks are a stream)."""
    data_dir = None if data is None else Path(data.data_dir)
    if data_dir is not None and not data_dir.is_absolute():
        data_dir = (REPO_ROOT / data_dir).resolve()
    return get_task(task).load(split, data_dir=data_dir, limit=n, seed=seed)


def train_problems(task: TaskSection, data: DataSection | None = None, seed: int = 0):
    return problems(task, data, task.train_split, task.n_train, seed)


def test_problems(task: TaskSection, data: DataSection | None = None, seed: int = 0):
    return problems(task, data, task.test_split, task.n_test, seed)
