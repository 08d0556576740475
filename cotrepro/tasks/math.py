"""MATH (Hendrycks et al. 2021) and MATH500 (its PRM800K test subset), graded with math-verify.

Data: `data_dir/math/{train,test}.jsonl` (fields `problem`, `solution`, `level`, `type`,
`unique_id`), else the hub's `EleutherAI/hendrycks_math`, one config per subject, concatenated in
the local file's subject order (its rows have no `unique_id`, so ids become `<split>/<row>`).
MATH500: `data_dir/math500/test.jsonl` (adds `answer` and `subject`), else
`HuggingFaceH4/MATH-500`, whose rows have the same fields. `TASK.variant("math500")` is the task
bound to MATH500.

Gold: the `answer` field when present (MATH500), else the last `\\boxed{}` of `solution`.
Prediction: the last `\\boxed{}` (or `\\fbox{}`) or the Minerva line `Final Answer: The final
answer is $X$. I hope it is correct.`, whichever ends later in the completion. A period or comma
closing the answer is dropped, and MATH's digit-group separators (`29,\\!322`, `29{,}322`) are
removed. Both are wrapped in `\\boxed{}` and compared with math-verify (default extraction
configs, as Shape of Thought graded), gold first: `verify(parse(gold), parse(pred))`. The gold is
ungradable when math-verify finds no expression in it (4 of the 7,500 MATH train items, none of
the test or MATH500 items; see tests/test_task_math.py).

Time limits: math-verify's own timeouts use `signal.alarm`, which fails off the main thread, so
they are switched off here (`parsing_timeout=None`, `timeout_seconds=None`). The hard per-item
limit is the caller's: the parallel grader kills a worker that overruns.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from cotrepro.tasks.base import Problem, Verdict
from cotrepro.tasks.hub import hub_rows, load_local_or_hub, subset
from cotrepro.tasks.prompts import get_template, render

# math-verify warns on every call that its own (signal-based) timeout is off; we turn it off on
# purpose (the grader enforces a hard per-item limit), so the warning is noise.
logging.getLogger("math_verify").setLevel(logging.ERROR)

MATH_HUB = "EleutherAI/hendrycks_math"
MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")
MATH500_HUB = "HuggingFaceH4/MATH-500"
# variant name -> its splits
VARIANT_SPLITS = {"math": ("train", "test"), "math500": ("test",)}

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BARE_BOX_ARGUMENT = re.compile(r"\s+([^\s$]+)")  # `\boxed 5`: one whitespace-free token
# The Minerva line. Prose such as "the final answer is positive, because ..." is not an answer, so
# the line must end in "I hope it is correct" or its answer must sit in math delimiters.
_FINAL_ANSWER = re.compile(r"final answer is\s*(.+?)\s*(?:\.\s*)?(I hope it is correct|$)",
                           re.IGNORECASE | re.MULTILINE)
# a sentence's period or comma inside the box (MATH has `\boxed{30^\circ.}`) is not the answer
_TRAILING_PUNCTUATION = re.compile(r"[\s.,]*$")
# MATH writes digit groups as `29,\!322` or `29{,}322`; math-verify reads neither as one number
_DIGIT_GROUP_SEPARATOR = re.compile(r"(?<=\d)(?:,\\!|\{,\})(?=\d{3}(?!\d))")
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _brace_group_end(text: str, start: int) -> int | None:
    """Index just past the `}` closing the `{` at `start`; None if it never closes.

    A backslash escapes the next character, so `\\{` and `\\}` do not count.
    """
    depth, i = 0, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _last_boxed_span(text: str) -> tuple[str, int] | None:
    """(content, end index) of the last complete `\\boxed{...}`, `\\fbox{...}` or `\\boxed X`."""
    for match in reversed(list(_BOX.finditer(text))):
        after = match.end()
        stripped = text[after:].lstrip()
        if stripped.startswith("{"):
            brace = len(text) - len(stripped)
            end = _brace_group_end(text, brace)
            if end is not None:
                return _TRAILING_PUNCTUATION.sub("", text[brace + 1:end - 1].strip()), end
        else:
            bare = _BARE_BOX_ARGUMENT.match(text, after)
            if bare:
                return _TRAILING_PUNCTUATION.sub("", bare.group(1)), bare.end()
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{}` / `\\fbox{}` / `\\boxed X` of `text`, or None.

    Nested braces are matched (`\\boxed{\\frac{1}{2}}` gives `\\frac{1}{2}`); an unclosed box (a
    truncated completion) is skipped in favour of the one before it.
    """
    span = _last_boxed_span(text)
    return span[0] if span else None


def _strip_math_delimiters(answer: str) -> str:
    for left, right in _MATH_DELIMITERS:
        if answer.startswith(left) and answer.endswith(right) and len(answer) >= len(left) + len(right):
            return answer[len(left):len(answer) - len(right)].strip()
    return answer


def final_answer_line(text: str) -> tuple[str, int] | None:
    """(answer, end index) of the last Minerva line `... final answer is $X$. I hope it is correct.`"""
    for match in reversed(list(_FINAL_ANSWER.finditer(text))):
        raw = match.group(1).strip()
        answer = _strip_math_delimiters(raw)
        if match.group(2) or answer != raw:
            inner = last_boxed(answer)
            return (inner if inner is not None else _TRAILING_PUNCTUATION.sub("", answer)), match.end()
    return None


def _parse(latex: str) -> list:
    """math-verify's parse of `\\boxed{latex}` (digit-group separators removed), no signal timeout."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    latex = _DIGIT_GROUP_SEPARATOR.sub("", latex)
    return parse("\\boxed{" + latex + "}", [LatexExtractionConfig(), ExprExtractionConfig()],
                 parsing_timeout=None)


def _parse_gold(gold: str) -> list | None:
    """math-verify's parse of a gold answer; None when it holds no expression (ungradable)."""
    parsed = _parse(gold)
    has_expression = any(not isinstance(x, str) for x in parsed)  # str = the raw-text fallback
    return parsed if has_expression else None


class MathTask:
    """MATH (`name="math"`) or MATH500 (`name="math500"`)."""

    needs_code_execution = False

    def __init__(self, name: str = "math"):
        if name not in VARIANT_SPLITS:
            raise ValueError(f"unknown MATH variant {name!r}; choose one of {', '.join(VARIANT_SPLITS)}")
        self.name = name

    def variant(self, name: str) -> "MathTask":
        """The task bound to the files of `name` ("math" or "math500")."""
        return MathTask(name)

    def load(self, split: str, data_dir: str | Path | None = None, limit: int | None = None,
             seed: int | None = 0) -> list[Problem]:
        """Problems of `split`: the local copy if present, else the hub.

        Ids are the records' `unique_id` (e.g. "test/algebra/1.json") where they have one, else
        `<split>/<row index>`. `limit` keeps the first `limit` problems after a shuffle seeded by
        `seed` (seed None: file order); without a limit the split comes back in file order.
        """
        splits = VARIANT_SPLITS[self.name]
        if split not in splits:
            raise ValueError(f"unknown {self.name} split {split!r}; choose one of {', '.join(splits)}")
        local = Path(data_dir) / self.name / f"{split}.jsonl" if data_dir is not None else None
        records = load_local_or_hub(local, lambda: self._hub_rows(split))
        problems = [self.from_record(r, i) for i, r in enumerate(records)]
        problems = [p if "unique_id" in r or "id" in r else replace(p, id=f"{split}/{i}")
                    for i, (p, r) in enumerate(zip(problems, records))]
        return subset(problems, limit, seed)

    def _hub_rows(self, split: str) -> list[dict[str, Any]]:
        if self.name == "math500":
            return hub_rows(MATH500_HUB, split)
        return [row for subject in MATH_SUBJECTS for row in hub_rows(MATH_HUB, split, subject)]

    def from_record(self, record: dict[str, Any], index: int = 0) -> Problem:
        """Map a MATH / MATH500 row (local or hub) to a Problem; gold as in the module docstring.

        Needs `problem` and at least one of `answer` (the gold, e.g. a MATH500 row) and
        `solution` (gold = its last `\\boxed{}`); an empty or null `answer` falls back to the
        solution. A JSON number as `answer` is read as its text.
        """
        if "problem" not in record:
            raise ValueError(f"{self.name} record lacks problem; got {sorted(record)}")
        answer, solution = record.get("answer"), record.get("solution")
        for key, value, kinds in (("answer", answer, (str, int, float)), ("solution", solution, str)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                raise ValueError(f"{self.name} field {key!r} must be a string, "
                                 f"got {type(value).__name__}")
        if answer is not None and str(answer).strip():
            gold = str(answer)
        elif solution is not None:
            gold = last_boxed(solution) or ""
        else:
            raise ValueError(f"{self.name} record lacks a non-empty answer (or a solution, whose last "
                             f"\\boxed{{}} is the gold); got {sorted(record)}")
        meta = {key: record[key] for key in ("level", "type", "subject") if key in record}
        row_id = record.get("unique_id", record.get("id", index))
        return Problem(id=str(row_id), question=record["problem"], answer=gold,
                       solution=solution, meta=meta)

    def prompt(self, problem: Problem, template: str = "default") -> str:
        """The prompt for `problem` from template file `template` (MATH500 uses the math prompts)."""
        return render(get_template("math", template), problem=problem.question)

    def extract(self, completion: str) -> str | None:
        """The later of the last `\\boxed{}` and the last Minerva final-answer line, or None."""
        found = self._extract_with_source(completion)
        return found[0] if found else None

    def _extract_with_source(self, completion: str) -> tuple[str, str] | None:
        candidates = []
        boxed = _last_boxed_span(completion)
        if boxed:
            candidates.append((boxed[1], boxed[0], "boxed"))
        line = final_answer_line(completion)
        if line:
            candidates.append((line[1], line[0], "final_answer_line"))
        candidates = [c for c in candidates if c[1]]
        if not candidates:
            return None
        _, answer, source = max(candidates)
        return answer, source

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Grade with math-verify; ungradable when the gold has no parseable expression.

        detail["source"] says where the answer was read ("boxed" or "final_answer_line").
        """
        from math_verify import verify

        found = self._extract_with_source(completion)
        extracted, detail = (found[0], {"source": found[1]}) if found else (None, {})
        gold = _parse_gold(problem.answer)
        if gold is None:
            return Verdict(False, extracted, ungradable=True, detail=detail)
        if extracted is None:
            return Verdict(False, None, detail=detail)
        return Verdict(verify(gold, _parse(extracted), timeout_seconds=None), extracted, detail=detail)

    def steps(self, trace: str) -> list[str]:
        """Split a solution into steps.

        A step ends at a blank line, or at a line break after a line that ends a sentence (its
        last character, ignoring closing `$`, `)` and `*`, is `.`, `!` or `?`). Line breaks inside
        a display (`\\begin{..}`..`\\end{..}`, `$$..$$`, `\\[..\\]`) or an `[asy]` figure never
        split, so an equation block stays in the step that introduces it. A paragraph written on
        one line is one step, however many sentences it holds.
        """
        steps, current = [], []
        depth, in_dollar_display = 0, False
        for line in trace.splitlines():
            inside = depth > 0 or in_dollar_display
            if not line.strip():
                if current and not inside:
                    steps.append("\n".join(current))
                    current = []
                elif current:
                    current.append(line)
                continue
            current.append(line)
            depth = max(0, depth + len(_OPENERS.findall(line)) - len(_CLOSERS.findall(line)))
            if line.count("$$") % 2:
                in_dollar_display = not in_dollar_display
            if depth == 0 and not in_dollar_display and _ENDS_SENTENCE.search(line):
                steps.append("\n".join(current))
                current = []
        if current:
            steps.append("\n".join(current))
        return [step.strip() for step in steps if step.strip()]


_ENDS_SENTENCE = re.compile(r"[.!?][\s$)*]*$")
_OPENERS = re.compile(r"\\begin\{|\\\[|\[asy\]")
_CLOSERS = re.compile(r"\\end\{|\\\]|\[/asy\]")


TASK = MathTask()
