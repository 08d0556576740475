"""Prompt templates: versioned data in `cotrepro/tasks/prompts/<template name>.yaml`.

Stable API (the task modules call it; keep it stable):

    get_template(task_name, template_name) -> PromptTemplate(name, version, text, stop, fields)
    render(template, **fields) -> str
    template_names() -> tuple of the template names on disk

Task names are "math" (also used for MATH500), "gsm8k", "countdown", "mbpp" (the micro-world
tasks "arith" and "stargraph" keep one template file each). Fields: math and gsm8k take
`{problem}`; countdown takes `{nums}` and `{target}`; mbpp takes `{text}` and `{first_test}`
(the release strips both). `stop` holds the stop strings generation must use with the template.

File format: a top-level `version:` integer (bump it whenever any text or stop string of the
file changes, so stored results say which prompt made them), then `tasks:` mapping a task name to
either `{text, stop, fields}` or `{same_as: <other template name>}`. `same_as` is how `default`
points at a template instead of copying it; `get_template` then returns the template pointed at,
with its own name and version, so a result records the prompt that actually ran.

Placeholders are replaced by `render` only for the declared `fields`, never with `str.format`:
LaTeX braces in few-shot exemplars (`\\frac{a}{b}`) stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROMPT_DIR = Path(__file__).with_name("prompts")


@dataclass(frozen=True)
class PromptTemplate:
    """One task's prompt from one template file."""

    name: str  # the template file's stem, e.g. "sot_zero_shot"
    version: int  # the file's version
    text: str  # the prompt, with `{field}` placeholders
    stop: tuple[str, ...]  # stop strings for generation
    fields: tuple[str, ...] = ()  # the placeholders `render` fills


def template_names() -> tuple[str, ...]:
    """Names of the template files on disk, sorted."""
    return tuple(sorted(path.stem for path in PROMPT_DIR.glob("*.yaml")))


@lru_cache(maxsize=None)
def _read(template_name: str) -> dict[str, Any]:
    names = template_names()
    if template_name not in names:
        raise ValueError(f"unknown prompt template {template_name!r}; choose one of {', '.join(names)}")
    path = PROMPT_DIR / f"{template_name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("version"), int):
        raise ValueError(f"{path}: needs an integer `version:`")
    if not isinstance(data.get("tasks"), dict):
        raise ValueError(f"{path}: needs a `tasks:` mapping")
    return data


# tasks prompted with another task's entry: MATH500 is a subset of MATH and shares its prompts
PROMPT_TASK = {"math500": "math"}


def get_template(task_name: str, template_name: str) -> PromptTemplate:
    """The `task_name` prompt of template file `template_name` (following `same_as` links).

    Raises ValueError naming the choices when the template or the task within it is unknown.
    """
    task_name = PROMPT_TASK.get(task_name, task_name)
    seen = []
    while True:
        data = _read(template_name)
        tasks = data["tasks"]
        if task_name not in tasks:
            raise ValueError(f"prompt template {template_name!r} has no {task_name!r} prompt; "
                             f"it has {', '.join(tasks)}")
        entry = tasks[task_name]
        if "same_as" not in entry:
            break
        seen.append(template_name)
        template_name = entry["same_as"]
        if template_name in seen:
            raise ValueError(f"prompt templates point at each other: {' -> '.join(seen + [template_name])}")
    missing = {"text", "stop", "fields"} - set(entry)
    if missing:
        raise ValueError(f"{template_name}.yaml, task {task_name!r}: missing {', '.join(sorted(missing))}")
    fields = tuple(entry["fields"])
    absent = [f for f in fields if "{" + f + "}" not in entry["text"]]
    if absent:
        raise ValueError(f"{template_name}.yaml, task {task_name!r}: text lacks {{{'}, {'.join(absent)}}}")
    return PromptTemplate(name=template_name, version=data["version"], text=entry["text"],
                          stop=tuple(entry["stop"]), fields=fields)


def render(template: PromptTemplate, **fields: Any) -> str:
    """The template's text with each `{field}` replaced by `str(value)`.

    Every declared field must be given, and no other (ValueError otherwise). Replacement is one
    pass, so a value that itself contains `{problem}` is inserted literally.
    """
    given, declared = set(fields), set(template.fields)
    if given != declared:
        raise ValueError(f"template {template.name!r} takes fields {sorted(declared)}; "
                         f"got {sorted(given)}")
    if not declared:
        return template.text
    placeholder = re.compile(r"\{(" + "|".join(map(re.escape, template.fields)) + r")\}")
    return placeholder.sub(lambda m: str(fields[m.group(1)]), template.text)
