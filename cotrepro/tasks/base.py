"""The one small interface every task implements.

A task is a module-level object with the same five verbs (load, prompt, extract, verify, steps)
plus `from_record`, which maps a task's native JSON fields to a `Problem` (the grade CLI and the
hub/local loaders both go through it, so the field mapping is tested once on the real copies).
Verifiers are pure functions of (problem, completion) and return "ungradable" rather than a silent
False when the gold itself cannot be parsed (as trl/rewards/accuracy_rewards.py does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Problem:
    """One problem of a task, in a task-independent shape."""

    id: str  # stable id, unique within a task and split (e.g. "test/1234" or MATH's unique_id)
    question: str  # what the prompt shows the model
    answer: str  # gold final answer as a string ("" where the task has none, e.g. MBPP)
    solution: str | None = None  # human-written reference trace (the "H" training data), if any
    meta: dict[str, Any] = field(default_factory=dict)  # task-native fields (nums, target, test_list, ...)

    def to_record(self) -> dict[str, Any]:
        """The problem as JSON (a job spec carries it; `Problem(**record)` reads it back)."""
        return {"id": self.id, "question": self.question, "answer": self.answer, "solution": self.solution,
                "meta": self.meta}


@dataclass(frozen=True)
class Verdict:
    """The result of grading one completion."""

    correct: bool
    extracted: str | None  # the answer string read from the completion; None = could not parse
    ungradable: bool = False  # the gold itself could not be parsed: exclude, do not count as wrong
    detail: dict[str, Any] = field(default_factory=dict)  # task-specific (e.g. gsm8k strict/flexible)


class Task(Protocol):
    name: str
    needs_code_execution: bool  # True only for tasks that run generated code (mbpp)

    def load(self, split: str, data_dir: str | Path | None = None, limit: int | None = None,
             seed: int = 0) -> list[Problem]: ...

    def from_record(self, record: dict[str, Any], index: int = 0) -> Problem: ...

    def prompt(self, problem: Problem, template: str = "default") -> str: ...

    def extract(self, completion: str) -> str | None: ...

    def verify(self, problem: Problem, completion: str) -> Verdict: ...

    def steps(self, trace: str) -> list[str]: ...


class DataNotFound(FileNotFoundError):
    """Raised when neither a local copy nor the hub can provide a dataset."""
