"""Step-level corruption of traces, for the tolerance-to-flawed-traces experiment (SoT-5).

`corrupt(trace, task, fraction, operator, seed, rounding)` picks fraction * n_steps of the
trace's steps (steps are `task.steps(trace)`, located verbatim in the trace so everything
between them is kept) and applies one operator to each. The count is rounded half up, at least
one when fraction > 0 (`rounding="half_up"`), or stochastically (`"stochastic"`: the floor, plus
one with probability the remainder, seeded like every choice), so that over a set of short
traces the share of steps hit is the fraction asked for: with 2-4 steps a trace, half up gives
0.125 and 0.25 the same single step.

Text operators (math, countdown, arith, star graph):
    number     change one number of the step by a small non-zero amount
    operator   swap one arithmetic operator (+ - * / × ÷) for another
    delete     remove the step
    duplicate  repeat the step
    swap       swap the step with the next one (else the previous one), never with a step an
               earlier operator touched (a second swap could undo the first)
    answer     change a number inside the final answer; eligible only for the step holding the
               last occurrence of `task.extract(trace)` (a task whose steps leave out the answer
               line has no eligible step)
Code operators (tasks with `needs_code_execution`, i.e. MBPP, whose steps are top-level
statements: a whole `def` is one step; each operator edits one random site inside the step,
found with Python's tokenizer, so strings, comments and `->` are never touched):
    comparison        flip one comparison (< to >=, == to !=, ...)
    off_by_one        add or subtract 1 to one integer literal
    arith_swap        swap one + for - or - for + (augmented assignments included)
    delete_statement  replace one simple statement with `pass` at its indentation (the code
                      still parses; block headers, docstrings and `pass` are not eligible)
    return_value      replace one return value (True<->False, 0<->1, anything else -> None)

"mixed" picks, for each chosen step, one operator at random among those that apply to it.

When an operator cannot apply to a chosen step (no number in it, no comparison, ...), the step is
replaced by a random unchosen step where it applies; if none is left the step is recorded in
`skipped`. So fraction=1 hits every eligible step, and `fraction_hit` (hits / n_steps) can fall
below `fraction_requested`. Operators act one after another on the current text, in step order;
a hit's `step` is the step's position in the trace.

Choices are seeded by (seed, trace): the same call always returns the same corruption, and two
traces corrupted with one seed get independent choices.
"""

from __future__ import annotations

import io
import math
import random
import re
import tokenize
from dataclasses import asdict, dataclass, field
from typing import Any

from cotrepro.tasks.base import Problem, Task, Verdict

ROUNDINGS = ("half_up", "stochastic")
TEXT_OPERATORS = ("number", "operator", "delete", "duplicate", "swap", "answer")
CODE_OPERATORS = ("comparison", "off_by_one", "arith_swap", "delete_statement", "return_value")

_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")
# an arithmetic operator between two operands; "-" before a number with no left operand is a sign
_ARITH = re.compile(r"(?<=[\d)\]])(\s*)([+\-*/×÷])(?=\s*[\w(\[$\\])")
_ARITH_SWAPS = {"+": "-*", "-": "+/", "*": "+/", "/": "*-", "×": "+÷", "÷": "×-"}
_FLIP_COMPARISON = {"<": ">=", ">": "<=", "<=": ">", ">=": "<", "==": "!=", "!=": "=="}
_FLIP_RETURN = {"True": "False", "False": "True", "0": "1", "1": "0"}


@dataclass(frozen=True)
class Corrupted:
    """A corrupted trace and the record of what was done to it."""

    text: str
    hits: list[dict[str, Any]]  # one per corrupted step: step, operator, before, after
    fraction_requested: float
    fraction_hit: float  # len(hits) / n_steps
    n_steps: int
    skipped: list[dict[str, Any]] = field(default_factory=list)  # step, operator, reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def corrupt(trace: str, task: Task, fraction: float, operator: str = "mixed", seed: int = 0,
            rounding: str = "half_up") -> Corrupted:
    """Corrupt `fraction` of the steps of `trace` with `operator` (or "mixed"); see the module doc."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    allowed = CODE_OPERATORS if task.needs_code_execution else TEXT_OPERATORS
    if operator != "mixed" and operator not in allowed:
        raise ValueError(f"operator {operator!r} does not apply to task {task.name}; "
                         f"choose 'mixed' or one of {', '.join(allowed)}")
    units = _split(trace, task.steps(trace))
    n_steps = len(units.texts)
    rng = random.Random(f"{seed}\0{trace}")
    exact = fraction * n_steps
    if fraction == 0 or n_steps == 0:
        n_target = 0
    elif rounding == "stochastic":
        # its own generator: the choices below stay those of the half-up count
        n_target = math.floor(exact) + (random.Random(f"{seed}\0{fraction}\0{trace}").random() < exact % 1)
    else:
        # rounded half up: round() rounds half to even, so 0.5 of 5 steps would give 2
        n_target = max(1, math.floor(exact + 0.5))
    if n_target == 0:
        return Corrupted(trace, [], fraction, 0.0, n_steps)

    if "answer" in allowed:
        units.answer = task.extract(trace)
        units.answer_step = _answer_step(trace, units)
    ops = allowed if operator == "mixed" else (operator,)
    order = rng.sample(range(n_steps), n_steps)
    chosen, spare = sorted(order[:n_target]), order[n_target:]

    hits, skipped = [], []
    for step in chosen:
        target, applicable = step, _applicable(units, step, ops)
        if not applicable:
            target = next((s for s in spare if _applicable(units, s, ops)), None)
            if target is None:
                skipped.append({"step": step, "operator": operator,
                                "reason": "operator does not apply to this or any unchosen step"})
                continue
            spare.remove(target)
            applicable = _applicable(units, target, ops)
        name = rng.choice(applicable)
        hits.append({"step": target, "operator": name, **_apply(units, target, name, rng)})
    hits.sort(key=lambda h: h["step"])
    return Corrupted(units.join(), hits, fraction, len(hits) / n_steps, n_steps, skipped)


def verify_corrupted(task: Task, problem: Problem, corrupted: Corrupted) -> Verdict:
    """Grade the corrupted trace with the task's verifier (`.correct`: does it still end correct?)."""
    return task.verify(problem, corrupted.text)


@dataclass
class _Units:
    """A trace as prefix + (step text, separator after it)*; deleted steps hold None."""

    prefix: str
    texts: list[str | None]
    seps: list[str]
    answer: str | None = None  # the extracted final answer (text tasks)
    answer_step: int | None = None  # the step holding its last occurrence
    touched: set[int] = field(default_factory=set)  # positions already hit or swapped into

    def join(self) -> str:
        return self.prefix + "".join(t + s for t, s in zip(self.texts, self.seps) if t is not None)

    def live(self) -> list[int]:
        return [i for i, t in enumerate(self.texts) if t is not None]


def _split(trace: str, steps: list[str]) -> _Units:
    """Locate each step in order in `trace`; the text between steps becomes separators."""
    positions, cursor = [], 0
    for i, step in enumerate(steps):
        at = trace.find(step, cursor)
        if at < 0 or not step:
            raise ValueError(f"step {i} ({step[:40]!r}) is not found verbatim in the trace")
        positions.append(at)
        cursor = at + len(step)
    if not steps:
        return _Units(trace, [], [])
    ends = [p + len(s) for p, s in zip(positions, steps)]
    seps = [trace[e:n] for e, n in zip(ends, positions[1:])] + [trace[ends[-1]:]]
    return _Units(trace[:positions[0]], list(steps), seps)


def _answer_step(trace: str, units: _Units) -> int | None:
    """The step holding the last occurrence of the extracted final answer (if it has a number)."""
    answer = units.answer
    if not answer or not _NUMBER.search(answer):
        return None
    at = trace.rfind(answer)
    offset = len(units.prefix)
    for i, (text, sep) in enumerate(zip(units.texts, units.seps)):
        if offset <= at and at + len(answer) <= offset + len(text):
            return i
        offset += len(text) + len(sep)
    return None


def _applicable(units: _Units, step: int, ops: tuple[str, ...]) -> list[str]:
    text = units.texts[step]
    if text is None:
        return []
    return [op for op in ops if _APPLIES[op](units, step, text)]


def _apply(units: _Units, step: int, op: str, rng: random.Random) -> dict[str, str]:
    """Apply `op` to `step` in place; return before/after text for the record."""
    before = units.texts[step]
    units.touched.add(step)
    if op == "delete":
        live = units.live()
        if live[-1] == step and len(live) > 1:  # the last step: drop the separator before it
            units.seps[live[-2]] = units.seps[step]
        elif live == [step]:  # the only step left: what follows it (the answer line) stays
            units.prefix += units.seps[step].lstrip()
        units.texts[step] = None
        return {"before": before, "after": ""}
    if op == "duplicate":
        # the whitespace that ends the step (its separator may also hold the answer line after it)
        sep = re.match(r"\s*", units.seps[step]).group(0) or next(
            (units.seps[i] for i in reversed(units.live()) if units.seps[i].isspace()), "\n")
        units.texts[step] = before + sep + before
    elif op == "swap":
        partner = _swap_partner(units, step)
        units.touched.add(partner)
        first, second = sorted((step, partner))
        pair = f"{units.texts[first]}\n{units.texts[second]}"
        units.texts[first], units.texts[second] = units.texts[second], units.texts[first]
        return {"before": pair, "after": f"{units.texts[first]}\n{units.texts[second]}"}
    elif op == "answer":  # change the last occurrence of the answer inside its step
        at = before.rfind(units.answer)
        units.texts[step] = before[:at] + _change_number(units.answer, rng) + before[at + len(units.answer):]
    else:
        units.texts[step] = _EDITS[op](before, rng)
    return {"before": before, "after": units.texts[step]}


def _swap_partner(units: _Units, step: int) -> int | None:
    """The next live step, else the previous one, that no earlier operator touched (a second swap
    could otherwise undo the first) and whose text differs (a swap must change the trace)."""
    live = units.live()
    pos = live.index(step)
    for partner in live[pos + 1:pos + 2] + live[max(pos - 1, 0):pos]:
        if partner not in units.touched and units.texts[partner] != units.texts[step]:
            return partner
    return None


def _change_number(text: str, rng: random.Random) -> str:
    match = rng.choice(list(_NUMBER.finditer(text)))
    old = match.group()
    delta = rng.choice([d for d in range(-9, 10) if d != 0])
    if "." in old:
        decimals = len(old.split(".")[1])
        new = f"{max(float(old) + delta / 10 ** decimals, 0.0):.{decimals}f}"
        new = new if new != old else f"{float(old) + 1:.{decimals}f}"
    else:
        value = int(old) + delta
        new = str(value if value >= 0 and value != int(old) else int(old) + abs(delta))
    return text[:match.start()] + new + text[match.end():]


def _swap_operator(text: str, rng: random.Random) -> str:
    match = rng.choice(list(_ARITH.finditer(text)))
    new = rng.choice(_ARITH_SWAPS[match.group(2)])
    return text[:match.start(2)] + new + text[match.end(2):]


def _code_tokens(text: str) -> list[tokenize.TokenInfo]:
    """Python tokens of one code step (empty when the step does not tokenize on its own)."""
    try:
        return list(tokenize.generate_tokens(io.StringIO(text.strip("\n")).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def _replace_token(text: str, token: tokenize.TokenInfo, new: str) -> str:
    lines = text.strip("\n").split("\n")
    row, col = token.start[0] - 1, token.start[1]
    lines[row] = lines[row][:col] + new + lines[row][token.end[1]:]
    leading = text[:len(text) - len(text.lstrip("\n"))]
    return leading + "\n".join(lines) + text[len(text.rstrip("\n")):]


def _tokens_of(text: str, wanted: set[str] | None = None,
               kind: int = tokenize.OP) -> list[tokenize.TokenInfo]:
    return [t for t in _code_tokens(text) if t.type == kind and (wanted is None or t.string in wanted)]


def _int_literals(text: str) -> list[tokenize.TokenInfo]:
    return [t for t in _tokens_of(text, kind=tokenize.NUMBER) if t.string.isdigit()]


def _flip_comparison(text: str, rng: random.Random) -> str:
    token = rng.choice(_tokens_of(text, set(_FLIP_COMPARISON)))
    return _replace_token(text, token, _FLIP_COMPARISON[token.string])


def _off_by_one(text: str, rng: random.Random) -> str:
    token = rng.choice(_int_literals(text))
    value = int(token.string)
    new = value + rng.choice([-1, 1]) if value > 0 else value + 1
    return _replace_token(text, token, str(new))


def _swap_plus_minus(text: str, rng: random.Random) -> str:
    token = rng.choice(_tokens_of(text, {"+", "-", "+=", "-="}))
    return _replace_token(text, token, token.string.translate(str.maketrans("+-", "-+")))


@dataclass(frozen=True)
class _LogicalLine:
    """One Python statement line of a code step (rows 0-based, inclusive, within the stripped step)."""

    first_row: int
    last_row: int
    tokens: tuple[tokenize.TokenInfo, ...]  # its significant tokens


_COMPOUND = {"def", "class", "if", "elif", "else", "for", "while", "with", "try", "except",
             "finally", "async", "match", "case", "@"}
_SKIP = {tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def _logical_lines(text: str) -> list[_LogicalLine]:
    """The logical lines of a code step (a statement spanning several rows is one line)."""
    lines, current = [], []
    for token in _code_tokens(text):
        if token.type == tokenize.NEWLINE:
            if current:
                lines.append(_LogicalLine(current[0].start[0] - 1, current[-1].end[0] - 1, tuple(current)))
            current = []
        elif token.type not in _SKIP:
            current.append(token)
    return lines


def _simple_statements(text: str) -> list[_LogicalLine]:
    """Statements a deletion can remove: not a block header, `pass`, or a docstring."""
    return [line for line in _logical_lines(text)
            if line.tokens[0].string not in _COMPOUND and line.tokens[0].type != tokenize.STRING
            and line.tokens[-1].string != ":" and [t.string for t in line.tokens] != ["pass"]]


def _returns_with_value(text: str) -> list[_LogicalLine]:
    return [line for line in _logical_lines(text)
            if line.tokens[0].string == "return" and len(line.tokens) > 1
            and [t.string for t in line.tokens[1:]] != ["None"]]


def _replace_rows(text: str, line: _LogicalLine, new: str) -> str:
    """Replace the rows of `line` with `new` at the line's indentation."""
    body = text.strip("\n")
    rows = body.split("\n")
    indent = rows[line.first_row][:len(rows[line.first_row]) - len(rows[line.first_row].lstrip(" \t"))]
    rows[line.first_row:line.last_row + 1] = [indent + new]
    leading = text[:len(text) - len(text.lstrip("\n"))]
    return leading + "\n".join(rows) + text[len(text.rstrip("\n")):]


def _delete_statement(text: str, rng: random.Random) -> str:
    return _replace_rows(text, rng.choice(_simple_statements(text)), "pass")


def _replace_return(text: str, rng: random.Random) -> str:
    line = rng.choice(_returns_with_value(text))
    value = " ".join(t.string for t in line.tokens[1:])
    return _replace_rows(text, line, "return " + _FLIP_RETURN.get(value, "None"))


_EDITS = {
    "number": _change_number, "operator": _swap_operator,
    "comparison": _flip_comparison, "off_by_one": _off_by_one, "arith_swap": _swap_plus_minus,
    "delete_statement": _delete_statement, "return_value": _replace_return,
}

# operator -> whether it applies to (units, step index, current step text)
_APPLIES = {
    "number": lambda u, i, t: bool(_NUMBER.search(t)),
    "operator": lambda u, i, t: bool(_ARITH.search(t)),
    "delete": lambda u, i, t: True,
    "duplicate": lambda u, i, t: True,
    "swap": lambda u, i, t: _swap_partner(u, i) is not None,
    # not after a swap moved another step's text into the answer's position
    "answer": lambda u, i, t: i == u.answer_step and i not in u.touched,
    "comparison": lambda u, i, t: bool(_tokens_of(t, set(_FLIP_COMPARISON))),
    "off_by_one": lambda u, i, t: bool(_int_literals(t)),
    "arith_swap": lambda u, i, t: bool(_tokens_of(t, {"+", "-", "+=", "-="})),
    "delete_statement": lambda u, i, t: bool(_simple_statements(t)),
    "return_value": lambda u, i, t: bool(_returns_with_value(t)),
}
