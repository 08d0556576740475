"""MBPP: short Python functions, graded by running their asserts.

Data: `data_dir/mbpp/mbpp.jsonl` (google-research, 974 rows: `task_id`, `text`, `code`,
`test_list`, `test_setup_code`, `challenge_test_list`), split by task id as upstream does:
1-10 "prompt" (few-shot), 11-510 "test", 511-600 "validation", 601-974 "train". Without a local
copy, the hub's `google-research-datasets/mbpp` "full" config, whose rows have the same fields.
`Problem.solution` is the gold code (line endings normalised to "\n").

Grading runs generated code, so it needs the explicit opt-in (see `cotrepro.sandbox`). The
program is the extracted code, then `test_setup_code` (it builds objects from classes the code
defines, e.g. tree nodes for tasks 367 and 927, so it must come after the code), then every assert
of `test_list`; it passes only when all asserts ran and held within the limit (5 s, as in the
Shape of Thought release). All 974 gold programs pass; task 123's (amicable numbers below 9999,
in the test split) needs 2 to 6 s of CPU, so on a slow or loaded machine it can time out at 5 s.
Programs run without site-packages (`python -I -S`): the prompt asks for the standard library only.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotrepro.sandbox import run_program
from cotrepro.tasks.base import Problem, Verdict
from cotrepro.tasks.hub import hub_rows, load_local_or_hub, subset
from cotrepro.tasks.prompts import get_template, render

HUB_DATASET, HUB_CONFIG = "google-research-datasets/mbpp", "full"
SPLIT_TASK_IDS = {"prompt": range(1, 11), "test": range(11, 511),
                  "validation": range(511, 601), "train": range(601, 975)}
REQUIRED_FIELDS = ("task_id", "text", "test_list")
# A fence line with an optional language tag; the release removes "```python" and "```" anywhere.
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?", re.IGNORECASE)


def extract_code(completion: str) -> str | None:
    """The code of a completion: markdown fences and a leading "python" word removed, stripped.

    Mirrors the Shape of Thought release's `sanitize_code` (text outside the fences is kept, so
    prose around a fenced block makes the program fail, as it did there). None when nothing is left.
    """
    code = _FENCE.sub("", completion).strip()
    if code.lower().startswith("python"):
        code = code[len("python"):].strip()
    return code or None


def build_program(code: str, problem: Problem) -> str:
    """The program that grades `code`: the code, then the test setup, then every assert."""
    setup = problem.meta.get("test_setup_code") or ""
    return "\n\n".join(part for part in (code, setup, *problem.meta["test_list"]) if part.strip())


def _strings(value: Any, field: str) -> list[str]:
    """`value` if it is a list of strings (e.g. asserts), else ValueError naming `field`."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"mbpp field {field!r} must be a list of strings (one assert each), "
                         f"got {value!r}"[:200])
    return value


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass
class MBPPTask:
    """MBPP graded by execution (`timeout_s` per program, the release's 5 s by default)."""

    timeout_s: float = 5.0
    name: str = "mbpp"
    needs_code_execution: bool = True

    def load(self, split: str, data_dir: str | Path | None = None, limit: int | None = None,
             seed: int | None = 0) -> list[Problem]:
        """Problems of `split` ("prompt", "test", "validation" or "train"), in task-id order.

        `limit` keeps the first `limit` after a shuffle seeded by `seed` (see `hub.subset`).
        """
        if split not in SPLIT_TASK_IDS:
            raise ValueError(f"unknown mbpp split {split!r}; choose one of {', '.join(SPLIT_TASK_IDS)}")
        local = Path(data_dir) / "mbpp" / "mbpp.jsonl" if data_dir is not None else None
        records = load_local_or_hub(local, lambda: hub_rows(HUB_DATASET, split, HUB_CONFIG))
        ids = SPLIT_TASK_IDS[split]
        problems = [self.from_record(r, i) for i, r in enumerate(records) if r.get("task_id") in ids]
        problems.sort(key=lambda p: p.meta["task_id"])
        return subset(problems, limit, seed)

    def from_record(self, record: dict[str, Any], index: int = 0) -> Problem:
        """Map an MBPP row (local and hub rows are alike) to a Problem with id = task id."""
        missing = [f for f in REQUIRED_FIELDS if f not in record]
        if missing:
            raise ValueError(f"mbpp record lacks {', '.join(missing)}; got {sorted(record)}")
        if not record["test_list"]:
            raise ValueError(f"mbpp record {record['task_id']} has an empty test_list")
        test_list = _strings(record["test_list"], "test_list")
        if not isinstance(record.get("test_setup_code") or "", str):
            raise ValueError(f"mbpp field 'test_setup_code' must be a string, "
                             f"got {type(record['test_setup_code']).__name__}")
        if not isinstance(record.get("text"), str):
            raise ValueError(f"mbpp field 'text' must be a string, got {type(record['text']).__name__}")
        code = record.get("code")
        if code is not None and not isinstance(code, str):
            raise ValueError(f"mbpp field 'code' must be a string, got {type(code).__name__}")
        meta = {"task_id": record["task_id"],
                "test_list": [_normalise(t) for t in test_list],
                "test_setup_code": _normalise(record.get("test_setup_code") or ""),
                "challenge_test_list": [_normalise(t) for t in _strings(
                    record.get("challenge_test_list") or [], "challenge_test_list")]}
        return Problem(id=str(record["task_id"]), question=record["text"], answer="",
                       solution=_normalise(code) if code is not None else None, meta=meta)

    def prompt(self, problem: Problem, template: str = "default") -> str:
        """The prompt: the task text and its first assert, from template file `template`."""
        return render(get_template(self.name, template), text=problem.question.strip(),
                      first_test=problem.meta["test_list"][0].strip())

    def extract(self, completion: str) -> str | None:
        """The code of the completion (see `extract_code`)."""
        return extract_code(completion)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Run the code against the problem's asserts (needs the code-execution opt-in).

        detail: `exec_status` ("passed", "failed", "timeout", "error", "killed", or "no_code")
        and `exec_error`, the last line of stderr when it did not pass.
        """
        code = extract_code(completion)
        if code is None:
            return Verdict(False, None, detail={"exec_status": "no_code", "exec_error": ""})
        result = run_program(build_program(code, problem), timeout_s=self.timeout_s)
        lines = result.stderr_tail.strip().splitlines()
        error = "" if result.passed else (lines[-1] if lines else "")
        return Verdict(result.passed, code, detail={"exec_status": result.status,
                                                        "exec_error": error})

    def steps(self, trace: str) -> list[str]:
        """One step per top-level statement (a whole `def` or `class` is one step).

        Comments and blank lines after a statement go with it; a leading header comment joins the
        first statement. Code that does not parse falls back to one step per non-empty line.
        """
        code = _normalise(trace)
        try:
            body = ast.parse(code).body
        except SyntaxError:
            return [line.strip() for line in code.split("\n") if line.strip()]
        lines = code.split("\n")
        starts = [min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
                  for node in body]
        ends = [*starts[1:], len(lines)]
        steps = ["\n".join(lines[s:e]).strip() for s, e in zip(starts, ends)]
        if steps and starts[0] > 0:  # a header comment joins the first statement
            steps[0] = ("\n".join(lines[:starts[0]]).strip() + "\n" + steps[0]).strip()
        return [s for s in steps if s]


TASK = MBPPTask()
