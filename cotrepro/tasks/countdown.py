"""Countdown: reach a target with + - * / using each given number exactly once.

Data: the TinyZero split of `Jiayi-Pan/Countdown-Tasks-3to4` and d1's 3-number test set (see
shared/data/countdown/SOURCE.md). The answer is the last `<answer>...</answer>` of a completion.

Two graders:
- strict (default): the expression is parsed with `ast` against an explicit whitelist (integer
  literals and the binary operators + - * /; no unary minus, since "-3" is a number the puzzle
  did not give), every given number is used exactly once (multiset), and the value is computed
  exactly with `Fraction`; division by zero is wrong.
- TinyZero (`CountdownTask(tinyzero=True)`), the rule Shape of Thought graded with (their
  `eval_countdown.py`, TinyZero's `verl/utils/reward_score/countdown.py` with the cut at
  "Assistant:" commented out): the completion is stripped and only its last line is read; the
  numbers are the `\\d+` runs of the answer (multiset equal to the given ones); the answer may
  contain only digits, + - * / ( ) . and spaces; its value as Python computes it must be within
  1e-5 of the target. They use `eval`; here a whitelisted AST walk computes the same value,
  refusing only powers whose result would exceed 10,000 bits (eval would hang on them).
"""

from __future__ import annotations

import ast
import math
import operator
import random
import re
from collections import Counter
from dataclasses import replace
from fractions import Fraction
from itertools import combinations
from pathlib import Path
from typing import Any

from cotrepro.tasks.base import DataNotFound, Problem, Verdict
from cotrepro.tasks.hub import hub_rows, load_local_or_hub, subset
from cotrepro.tasks.prompts import get_template, render

HUB_DATASET = "Jiayi-Pan/Countdown-Tasks-3to4"
# split -> (local file under data_dir/countdown, rows of the hub's only split or None: no hub copy).
# TinyZero's default split: rows 0..327,679 train, 327,680..328,703 test. The local train file
# holds only the first 11,264 rows of that train range.
SPLITS = {
    "test": ("tinyzero_test.jsonl", (327_680, 328_704)),
    "cd3_test": ("countdown_cd3_test.jsonl", None),
    "train": ("countdown_tasks_3to4_rows0-11263.jsonl", (0, 327_680)),
}
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_MAX_ANSWER_CHARS = 500  # longer answers are refused before parsing (no puzzle needs them)
_MAX_POWER_BITS = 10_000
_MAX_ATTEMPTS = 10_000  # draws per generated puzzle before the ranges are declared impossible
_EXACT_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv}
_PYTHON_OPS = {**_EXACT_OPS, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}
_TINYZERO_CHARS = re.compile(r"^[\d+\-*/().\s]+$")


class CountdownTask:
    """The Countdown task; `tinyzero=True` grades with TinyZero's rule instead of the strict one."""

    name = "countdown"
    needs_code_execution = False

    def __init__(self, tinyzero: bool = False):
        self.tinyzero = tinyzero

    def load(self, split: str, data_dir: str | Path | None = None, limit: int | None = None,
             seed: int = 0) -> list[Problem]:
        """Problems of `split` ("test", "cd3_test", "train"), local copy first, else the hub.

        With `limit`, a sample chosen by `seed` (`hub.subset`); without, the whole split in order.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown countdown split {split!r}; choose one of {', '.join(SPLITS)}")
        filename, rows = SPLITS[split]
        local = Path(data_dir) / "countdown" / filename if data_dir is not None else None

        def from_hub() -> list[dict[str, Any]]:
            if rows is None:
                raise DataNotFound(f"countdown split {split!r} has no hub copy; place {filename}")
            start, stop = rows
            return [{**row, "hf_row": start + i}
                    for i, row in enumerate(hub_rows(HUB_DATASET, "train")[start:stop])]

        # index before sampling, so that a problem's id is its row, whatever the sample
        indexed = subset(list(enumerate(load_local_or_hub(local, from_hub))), limit, seed)
        problems = (self.from_record(record, index) for index, record in indexed)
        return [replace(p, id=f"{split}/{p.id}") for p in problems]

    def from_record(self, record: dict[str, Any], index: int = 0) -> Problem:
        """Map a TinyZero row (target, nums) or a d1 row (input "30,100,93", output "23").

        Numbers may be JSON integers or strings of digits; anything else (null, 3.5, "abc")
        raises ValueError naming the field.
        """
        if "nums" in record and "target" in record:
            if not isinstance(record["nums"], list) or not record["nums"]:
                raise ValueError(f"countdown field 'nums' must be a list of integers, "
                                 f"got {record['nums']!r}"[:200])
            nums = [_as_int(x, "nums") for x in record["nums"]]
            target = _as_int(record["target"], "target")
        elif "input" in record and "output" in record:
            nums = [_as_int(x, "input") for x in str(record["input"]).split(",")]
            target = _as_int(record["output"], "output")
        else:
            raise ValueError("countdown record needs (nums, target) or (input, output); "
                             f"got {sorted(record)}")
        row_id = f"hf{record['hf_row']}" if "hf_row" in record else str(index)
        return Problem(id=row_id, question=question_text(nums, target), answer=str(target),
                       meta={"nums": nums, "target": target})

    def prompt(self, problem: Problem, template: str = "default") -> str:
        """The prompt for `problem`; nums are shown as a Python list, as TinyZero does."""
        return render(get_template(self.name, template), nums=str(problem.meta["nums"]),
                      target=problem.meta["target"])

    def extract(self, completion: str) -> str | None:
        """The stripped content of the last <answer> tags (of the last line in TinyZero mode)."""
        text = completion.strip().split("\n")[-1] if self.tinyzero else completion
        matches = _ANSWER.findall(text)
        return matches[-1].strip() if matches else None

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Grade `completion`; detail["reason"] says why a wrong answer is wrong."""
        nums, target = problem.meta["nums"], problem.meta["target"]
        expression = self.extract(completion)
        if expression is None:
            return Verdict(False, None, detail={"reason": "no <answer> tags"})
        check = check_tinyzero if self.tinyzero else check_expression
        reason = check(expression, nums, target)
        return Verdict(reason is None, expression, detail={"reason": reason or "ok"})

    def steps(self, trace: str) -> list[str]:
        """One step per non-empty line."""
        return [line for line in trace.splitlines() if line.strip()]


def _as_int(value: Any, field: str) -> int:
    """`value` as an int: a JSON integer (or integral float) or a string of digits."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"countdown field {field!r} must hold integers, got {value!r}"[:200])


def question_text(nums: list[int], target: int) -> str:
    """The puzzle in one sentence (the prompt templates phrase it themselves)."""
    return f"Using the numbers {nums}, create an equation that equals {target}."


def check_expression(expression: str, nums: list[int], target: int) -> str | None:
    """Strict check; None if `expression` is a correct solution, else the reason it is not."""
    if len(expression) > _MAX_ANSWER_CHARS:
        return "answer too long"
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError):  # ValueError: a null byte
        return "not an expression"
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            if type(node.value) is not int:  # bool is an int subclass: refuse it too
                return f"literal {node.value!r} is not an integer"
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _EXACT_OPS:
                return f"operator {type(node.op).__name__} not allowed"
        elif not isinstance(node, (ast.Expression, ast.operator)):
            return f"{type(node).__name__} not allowed"
    used = Counter(node.value for node in ast.walk(tree) if isinstance(node, ast.Constant))
    if used != Counter(nums):
        return f"numbers used {sorted(used.elements())} != given {sorted(nums)}"
    try:
        value = _evaluate(tree.body, exact=True)
    except ZeroDivisionError:
        return "division by zero"
    return None if value == target else f"value {value} != target {target}"


def check_tinyzero(expression: str, nums: list[int], target: int) -> str | None:
    """TinyZero's check (see the module docstring); None if correct, else the reason."""
    if sorted(int(n) for n in re.findall(r"\d+", expression)) != sorted(nums):
        return "numbers used differ from the given ones"
    if not _TINYZERO_CHARS.match(expression) or len(expression) > _MAX_ANSWER_CHARS:
        return "characters outside + - * / ( ) . digits spaces"
    try:
        value = _evaluate(ast.parse(expression, mode="eval").body, exact=False)
        return None if abs(value - target) < 1e-5 else f"value {value} != target {target}"
    except (SyntaxError, ArithmeticError, ValueError, TypeError) as error:
        return f"cannot evaluate: {type(error).__name__}"


def _evaluate(node: ast.AST, exact: bool) -> Any:
    """Value of an arithmetic AST: exact (Fractions, strict whitelist) or as Python's eval has it."""
    ops = _EXACT_OPS if exact else _PYTHON_OPS
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(node.value) if exact else node.value
    if isinstance(node, ast.BinOp) and type(node.op) in ops:
        left, right = _evaluate(node.left, exact), _evaluate(node.right, exact)
        if isinstance(node.op, ast.Pow):
            _check_power_size(left, right)
        return ops[type(node.op)](left, right)
    if not exact and isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, exact)
        return -value if isinstance(node.op, ast.USub) else +value
    raise ValueError(f"{type(node).__name__} not allowed")


def _check_power_size(base: Any, exponent: Any) -> None:
    """Refuse powers whose result would be too large to compute quickly."""
    if abs(base) > 1 and exponent > 0 and exponent * math.log2(abs(base)) > _MAX_POWER_BITS:
        raise OverflowError("power too large")


def solve(nums: list[int], target: int) -> str | None:
    """A solution of the puzzle as an expression string, or None (exhaustive search, exact)."""
    goal = Fraction(target)

    def search(pool: list[tuple[Fraction, str]]) -> str | None:
        if len(pool) == 1:
            return pool[0][1] if pool[0][0] == goal else None
        for i, j in combinations(range(len(pool)), 2):
            rest = [item for k, item in enumerate(pool) if k not in (i, j)]
            (a, ea), (b, eb) = pool[i], pool[j]
            candidates = [(a + b, f"({ea} + {eb})"), (a * b, f"({ea} * {eb})"),
                          (a - b, f"({ea} - {eb})"), (b - a, f"({eb} - {ea})")]
            if b:
                candidates.append((a / b, f"({ea} / {eb})"))
            if a:
                candidates.append((b / a, f"({eb} / {ea})"))
            for candidate in candidates:
                found = search(rest + [candidate])
                if found is not None:
                    return found
        return None

    found = search([(Fraction(n), str(n)) for n in nums])
    return found[1:-1] if found is not None and len(nums) > 1 else found


def generate_problems(n: int, seed: int, n_numbers: tuple[int, int] = (3, 4), max_number: int = 99,
                      min_target: int = 10, max_target: int = 100,
                      max_intermediate: int = 1000) -> list[Problem]:
    """`n` puzzles solvable by construction, deterministic for `seed`.

    Each is built by combining the sampled numbers (1..max_number, count in n_numbers) pairwise
    with random operators until one value remains; every intermediate value must be a positive
    integer <= max_intermediate (exact division only), as in the classic game, and the final value
    a target in [min_target, max_target] (TinyZero's range is 10..100); otherwise it is redrawn.
    `solution` is the step-by-step trace ending in `<answer>expr</answer>`; meta["expression"]
    holds the expression.
    """
    rng = random.Random(seed)
    problems: list[Problem] = []
    while len(problems) < n:
        count = rng.randint(*n_numbers)  # drawn once per problem, so rejections do not skew it
        for _ in range(_MAX_ATTEMPTS):
            nums = [rng.randint(1, max_number) for _ in range(count)]
            built = _random_solution(nums, rng, max_intermediate)
            if built is not None and min_target <= built[1] <= max_target:
                break
        else:
            raise ValueError(f"no {count}-number puzzle with a target in [{min_target}, {max_target}] "
                             f"found in {_MAX_ATTEMPTS} attempts; widen the ranges")
        expression, target, lines = built
        problems.append(Problem(
            id=f"gen{seed}/{len(problems)}", question=question_text(nums, target),
            answer=str(target), solution="\n".join(lines + [f"<answer>{expression}</answer>"]),
            meta={"nums": nums, "target": target, "expression": expression}))
    return problems


def _random_solution(nums: list[int], rng: random.Random,
                     max_intermediate: int) -> tuple[str, int, list[str]] | None:
    """(expression, value, step lines) of a random combination of all `nums`, or None."""
    pool = [(n, str(n)) for n in nums]
    lines = []
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        (a, ea), (b, eb) = pool[i], pool[j]
        op = rng.choice("+-*/")
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if a % b == 0 else 0}[op]
        if not 0 < value <= max_intermediate:
            return None
        lines.append(f"{a} {op} {b} = {value}")
        pool = [item for k, item in enumerate(pool) if k not in (i, j)]
        pool.append((value, f"{_parenthesised(ea)} {op} {_parenthesised(eb)}"))
    return pool[0][1], pool[0][0], lines


def _parenthesised(expression: str) -> str:
    """A number as is, a compound expression in parentheses."""
    return expression if expression.isdigit() else f"({expression})"


TASK = CountdownTask()
