"""Tasks, chosen by name from params through a plain dict."""

from __future__ import annotations

import importlib

from cotrepro.tasks.base import DataNotFound, Problem, Task, Verdict

# name -> module holding a module-level `TASK` object. Imported lazily so that loading one task
# never imports the heavy dependencies of another (math-verify, the code runner).
_MODULES = {
    "gsm8k": "cotrepro.tasks.gsm8k",
    "math": "cotrepro.tasks.math",
    "math500": "cotrepro.tasks.math",
    "countdown": "cotrepro.tasks.countdown",
    "mbpp": "cotrepro.tasks.mbpp",
    "stargraph": "cotrepro.tasks.stargraph",
    "arith": "cotrepro.tasks.arith",
}

TASK_NAMES = tuple(_MODULES)


def get_task(name: str) -> Task:
    """Return the task object registered under `name` (raises ValueError naming the choices)."""
    try:
        module = _MODULES[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}") from None
    task = importlib.import_module(module).TASK
    return task.variant(name) if hasattr(task, "variant") else task


__all__ = ["DataNotFound", "Problem", "Task", "Verdict", "get_task", "TASK_NAMES"]
