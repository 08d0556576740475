"""GSM8K: grade-school word problems with an integer (or decimal) final answer.

Data: `data_dir/gsm8k/{train,test}.jsonl` (openai/grade-school-math, fields `question`, `answer`),
else the hub's `openai/gsm8k` "main" config, whose rows have the same two fields. The gold answer
is the text after `#### ` in `answer`; `answer` itself (calculator annotations `<<a*b=c>>` and the
final `#### N` line included) is the human trace, `Problem.solution`.

Two extraction rules, reported side by side as lm-evaluation-harness does for gsm8k:
- strict: the last `#### N`, `The answer is N` or `The final answer is $N$` (the Shape of Thought
  prompt's line) in the completion;
- flexible: the number in the last `\\boxed{}`, else the last number anywhere in the completion.
Before matching, `$`, thousands commas and markdown emphasis (`**`, `*`, `_`) are removed; a `*`
between two digits or two spaces is kept, as it is a multiplication. Answers are compared as
decimals ("72.0" == "72"). `Verdict.correct` is the flexible result.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cotrepro.tasks.base import Problem, Verdict
from cotrepro.tasks.hub import hub_rows, load_local_or_hub, subset
from cotrepro.tasks.math import last_boxed
from cotrepro.tasks.prompts import get_template, render

HUB_DATASET, HUB_CONFIG = "openai/gsm8k", "main"
SPLITS = ("train", "test")

_NUMBER = r"(?:(?<![\w.])-)?\d+(?:\.\d+)?"  # a minus sign only when it is not a hyphen ("3-4")
_STRICT = re.compile(r"(?:####|\bthe (?:final )?answer is)\s*:?\s*(" + _NUMBER + ")", re.IGNORECASE)
_ANY_NUMBER = re.compile(_NUMBER)
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_EMPHASIS = re.compile(r"[*_]+")
_GOLD = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)


def _strip_markup(text: str) -> str:
    """Drop `$`, thousands commas, `{,}` and emphasis markers, keeping `3*4` and `3 * 4`."""
    text = text.replace("\\$", "").replace("$", "").replace("{,}", ",")
    text = _THOUSANDS_COMMA.sub("", text)

    def drop_emphasis(m: re.Match) -> str:
        before = text[m.start() - 1] if m.start() > 0 else ""
        after = text[m.end()] if m.end() < len(text) else ""
        keep = (before.isdigit() and after.isdigit()) or (before.isspace() and after.isspace())
        return m.group(0) if keep else ""

    return _EMPHASIS.sub(drop_emphasis, text)


def gold_answer(answer_field: str) -> str | None:
    """The gold final answer of a GSM8K `answer` field (text after the last `#### `, no commas)."""
    matches = _GOLD.findall(answer_field)
    return matches[-1].replace(",", "") if matches else None


_BARE_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _gold_of(answer: Any) -> str:
    """The gold of an `answer` field: after its last `#### `, or the field itself if a number."""
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        shown = "null" if answer is None else type(answer).__name__
        raise ValueError(f"gsm8k field 'answer' must be a '#### N' solution or a number, got {shown}")
    if not isinstance(answer, str):
        return str(answer)
    gold = gold_answer(answer)
    if gold is not None:
        return gold
    bare = _strip_markup(answer).strip()  # "$1,500" -> "1500"
    return bare if _BARE_NUMBER.fullmatch(bare) else ""


def extract_strict(completion: str) -> str | None:
    """The number of the last `#### N` / `The answer is N` / `The final answer is $N$`, or None."""
    matches = _STRICT.findall(_strip_markup(completion))
    return matches[-1] if matches else None


def extract_flexible(completion: str) -> str | None:
    """The last number inside the last `\\boxed{}`, else the last number of the text, or None."""
    boxed = last_boxed(completion)
    if boxed is not None:
        numbers = _ANY_NUMBER.findall(_strip_markup(boxed))
        if numbers:
            return numbers[-1]
    numbers = _ANY_NUMBER.findall(_strip_markup(completion))
    return numbers[-1] if numbers else None


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True


def same_number(a: str | None, b: str | None) -> bool:
    """True when both strings are numbers of equal value ("72.0" == "72"); None is never equal."""
    if a is None or b is None:
        return False
    try:
        return Decimal(a.replace(",", "")) == Decimal(b.replace(",", ""))
    except InvalidOperation:
        return False


class GSM8KTask:
    """GSM8K with strict and flexible answer extraction."""

    name = "gsm8k"
    needs_code_execution = False

    def load(self, split: str, data_dir: str | Path | None = None, limit: int | None = None,
             seed: int | None = 0) -> list[Problem]:
        """Problems of `split` ("train" or "test"): the local copy if present, else the hub.

        Ids are `<split>/<row index in the file>`, whatever the shuffle. `limit` keeps the first
        `limit` problems after a shuffle seeded by `seed` (seed None: file order); without a limit
        the whole split comes back in file order (see `hub.subset`).
        """
        if split not in SPLITS:
            raise ValueError(f"unknown gsm8k split {split!r}; choose one of {', '.join(SPLITS)}")
        local = Path(data_dir) / "gsm8k" / f"{split}.jsonl" if data_dir is not None else None
        records = load_local_or_hub(local, lambda: hub_rows(HUB_DATASET, split, HUB_CONFIG))
        problems = [replace(self.from_record(r, i), id=f"{split}/{i}") for i, r in enumerate(records)]
        return subset(problems, limit, seed)

    def from_record(self, record: dict[str, Any], index: int = 0) -> Problem:
        """Map a GSM8K row (`question`, `answer`; local and hub rows are alike) to a Problem.

        `answer` is a solution ending in `#### N` (the dataset's form) or the bare gold number,
        as a string ("7", "1,234") or a JSON number (7). A string with neither gives the gold ""
        (ungradable).
        """
        missing = {"question", "answer"} - set(record)
        if missing:
            raise ValueError(f"gsm8k record lacks {', '.join(sorted(missing))}; got {sorted(record)}")
        answer = record["answer"]
        return Problem(id=str(record.get("id", index)), question=record["question"],
                       answer=_gold_of(answer),
                       solution=answer if isinstance(answer, str) else None)

    def prompt(self, problem: Problem, template: str = "default") -> str:
        """The prompt for `problem` from template file `template` (see `prompts.py`)."""
        return render(get_template(self.name, template), problem=problem.question)

    def extract(self, completion: str) -> str | None:
        """The flexible extraction (the one `verify` grades)."""
        return extract_flexible(completion)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Grade by the flexible rule; detail holds both rules' results.

        Ungradable when the gold answer is not a number.
        """
        strict, flexible = extract_strict(completion), extract_flexible(completion)
        detail = {"strict": same_number(strict, problem.answer),
                  "flexible": same_number(flexible, problem.answer),
                  "strict_extracted": strict}
        if not _is_number(problem.answer):
            return Verdict(False, flexible, ungradable=True, detail=detail)
        return Verdict(detail["flexible"], flexible, detail=detail)

    def steps(self, trace: str) -> list[str]:
        """One step per non-empty line; a final `#### N` line joins the step before it."""
        lines = [line.strip() for line in trace.splitlines() if line.strip()]
        if len(lines) > 1 and lines[-1].startswith("####"):
            lines[-2:] = [lines[-2] + "\n" + lines[-1]]
        return lines


TASK = GSM8KTask()
