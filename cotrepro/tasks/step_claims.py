"""Step checking: every arithmetic claim "expr = c" of a trace, whether it is true, and whether
its operands are ones the trace was entitled to use.

Generic on purpose: the same checker reads arith, GSM8K and MATH traces (either written style,
calculator annotations, model outputs), and never parses a task's story.

Two verdicts per claim (`StepCheck`):

- `correct`: the arithmetic holds, exactly ("10/3 = 3.33" is false).
- `operands_valid` (only when the question is given): every number literal on the claim's
  left-hand side is *available*, i.e. numerically equal to
  1. a number written in the question: a literal ("$1,500", "2.5") or a cardinal number word
     ("three", "twenty-five", "a dozen"); or
  2. the result (right-hand side) of an EARLIER claim of the same trace, true or not (for a
     calculator claim whose written result and annotation differ, both); or
  3. a member of `ALWAYS_AVAILABLE` (empty by default).
  Nothing else counts: a number the trace writes outside a claim ("She has 12 apples." when the
  question never says 12) is not available, nor is a claim's own result, nor the result of a
  later claim. An earlier wrong result used consistently is available, so a step that builds
  on a wrong step is itself valid: errors do not propagate to later verdicts.

`valid` = `correct` and `operands_valid` is not False.

The operand rule, in detail:

- Only literals count. A merged human expression "10*3+15=<<10*3+15=45>>45" needs 10, 3 and 15
  available; its inner result 30 is never written, so it is neither needed nor made available.
  Only the final result (45) becomes available. A calculator claim checks the literals of both
  the written expression and its annotation.
- Numbers compare by value after dropping `$` and thousands commas ("$1,500" == "1500",
  "2.50" == "2.5", "5." == "5"). A comma is a thousands separator only before exactly three
  digits ("1,500,000"; "3,4" is two numbers). Signs are ignored: a literal under a unary minus
  is its absolute value, and an earlier result -3 makes 3 available.
- Claims are ordered as they are read: line by line, left to right within a line, so in a chain
  "5+12=17-2=15" the second claim may use 17.
- Number words are read as written: "two hundred" gives 2 and 100 (not 200), and ratio words
  ("twice", "half", "double", "a third", "percent") give nothing.
- The rule is strict. Constants the question does not write ("2" for "twice" or "half", "60"
  for minutes per hour, "7" for days per week, "100" or ".01" for a percentage, "1" in
  "1 - 0.2") make a claim invalid. On GSM8K, unit conversions are therefore counted as invalid
  steps: of the 4,370 claims of the GSM8K test set's own (human) solutions, 98.9% are
  arithmetically true but only 80.0% are valid, and 52% of its solutions are valid throughout.
  That is why SoT-6/7 report both the arithmetic-only share (`correct`) and the operand-aware
  share (`valid`). A caller who wants a lenient variant passes `always_available=` (or
  extends `ALWAYS_AVAILABLE`).

Linear in the trace's length (no regex backtracking, no quadratic string rebuilding): a 1 MB
pathological completion is checked in well under two seconds.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

ALWAYS_AVAILABLE: frozenset[str] = frozenset()  # numbers any step may use without a source


@dataclass(frozen=True)
class StepCheck:
    """One arithmetic claim found in a trace."""

    text: str  # the claim as read, e.g. "5 + 12 = 17" or "5+12=<<5+12=17>>17"
    expression: str  # left-hand side, normalised ("x" and "×" read as "*", "÷" as "/")
    claimed: Fraction  # right-hand side
    value: Fraction | None  # the true value of the expression; None: not computable (x/0)
    correct: bool
    line: int  # 0-based line of the trace holding the claim
    operands_valid: bool | None = None  # every literal available (module doc); None: no question
    bad_operands: tuple[str, ...] = ()  # the unavailable literals as read ("1500"), each once
    valid: bool = field(init=False)  # correct and operands_valid is not False

    def __post_init__(self) -> None:
        object.__setattr__(self, "valid", self.correct and self.operands_valid is not False)


_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>=]*)>>")
_RESULT = re.compile(r"\s*(-?\d+(?:\.\d+)?)(?!\d)")  # the number right after "=" or ">>"
_RUN = re.compile(r"[0-9.+\-*/() \t]*")  # expression characters (matched on a reversed line)
_MAX_CLAIM_CHARS = 200  # a longer left-hand side is not a step (and would nest too deep)
_MAX_CACHED_LINE = 2000  # longer lines are read afresh (and kept out of the cache)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TIMES = re.compile(r"(?<=\d)\s*[xX]\s*(?=\d)")
_RUN_CUT = re.compile(r"\.(?!\d)|(?<=[\d)])\s+(?=[\d(])")
_LITERAL = re.compile(r"\d+(?:\.\d*)?|\.\d+")  # a number literal of an expression or question


def check_steps(trace: str, question: str | None = None, *,
                always_available: Collection[str] | None = None) -> list[StepCheck]:
    """Every arithmetic claim "expr = c" of `trace`, in order, each with its truth and, when
    `question` is given, whether its operands are available (module doc).

    A GSM8K calculator claim "5+12=<<5+12=17>>17" counts once, and is true only if the written
    claim and its annotation both hold and agree; a bare annotation "<<5+12=17>>" counts once;
    any other "expr = c" counts once per "=" (a chain "a+b=c-d=e" gives two claims). The
    left-hand side must hold an operation ("x = 5" and "5 = 5" are not claims). Exact arithmetic:
    a rounded result ("10/3=3.33") is false. `always_available` replaces `ALWAYS_AVAILABLE`.
    """
    return _Checker(question, always_available).read(trace)


def first_invalid_step(trace: str, question: str | None, steps: Sequence[str], *,
                       always_available: Collection[str] | None = None) -> int | None:
    """Index of the first of `steps` (the trace split as the task's `steps()` splits it) that
    holds an invalid claim (arithmetic false, or an unavailable operand), or None if none does.

    Claims are read from the step strings in order, with what earlier steps produced available
    to later ones; for steps made of whole lines of `trace` this gives exactly the verdicts of
    `check_steps(trace, question)`. With `question` None only the arithmetic is checked.
    `trace` itself is not re-read (the steps hold its text); call sites name it for clarity.
    """
    checker = _Checker(question, always_available)
    for index, step in enumerate(steps):
        if not all(check.valid for check in checker.read(step)):
            return index
    return None


def fraction_true_steps(trace: str) -> float | None:
    """Share of the trace's arithmetic claims that are true; None when it makes none."""
    checks = check_steps(trace)
    return sum(c.correct for c in checks) / len(checks) if checks else None


_Key = int | tuple[int, int]  # a number's absolute value: an int, or (numerator, denominator)
# one claim read from a line: (its column, its text, (its parts, its operands as (literal, key)))
_Found = tuple[int, str, tuple[tuple, tuple[tuple[str, _Key], ...]]]

_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
          "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORDS = {word: n for n, word in enumerate(_UNITS)} | {word: 20 + 10 * n for n, word in enumerate(_TENS)}
_WORDS |= {"hundred": 100, "thousand": 1000, "million": 1_000_000, "dozen": 12}
_WORD_NUMBER = re.compile(r"\b(%s)(?:[- ](%s))?\b" % ("|".join(_WORDS), "|".join(_UNITS[1:10])),
                          re.IGNORECASE)


def _question_numbers(question: str) -> set[_Key]:
    """The numbers `question` gives, as `_key`s: every literal ("$1,500" is 1500) and every
    cardinal number word ("three", "twenty-five", "a dozen"). Compounds are not multiplied out
    ("two hundred" gives 2 and 100), and ratio words ("twice", "half", "a third") give nothing."""
    numbers = {_literal_key(n) for n in _LITERAL.findall(_normalise(question))}
    for match in _WORD_NUMBER.finditer(question):
        tens, unit = match.group(1).lower(), match.group(2)
        if unit and tens in _TENS:  # "twenty-five"
            numbers.add(_WORDS[tens] + _WORDS[unit.lower()])
        else:  # "three", "hundred"; "seven five" is two numbers
            numbers.update(_WORDS[word.lower()] for word in match.groups() if word)
    return numbers


class _Checker:
    """Reads text in order, remembering the numbers available to the claims still to come."""

    def __init__(self, question: str | None, always_available: Collection[str] | None):
        self.available: set[_Key] | None = None
        if question is not None:
            extra = ALWAYS_AVAILABLE if always_available is None else always_available
            self.available = _question_numbers(question)
            self.available |= {_literal_key(_normalise(str(n)).strip().lstrip("+-")) for n in extra}

    def read(self, text: str) -> list[StepCheck]:
        checks, available = [], self.available
        for number, raw in enumerate(text.splitlines()):
            if "=" not in raw:  # every claim has one
                continue
            line = _normalise(raw)
            found = _line_claims(line) if len(line) <= _MAX_CACHED_LINE else _line_claims.__wrapped__(line)
            for _, text_, (parts, operands) in found:
                expression, claimed, value, correct, results = parts
                if available is None:
                    checks.append(StepCheck(text_, expression, claimed, value, correct, number))
                    continue
                missing = [lit for lit, key in operands if key not in available]
                bad = tuple(dict.fromkeys(missing)) if missing else ()
                checks.append(StepCheck(text_, expression, claimed, value, correct, number,
                                        operands_valid=not bad, bad_operands=bad))
                available.update(results)
        return checks


@lru_cache(maxsize=1 << 10)  # degenerate completions repeat one line thousands of times
def _line_claims(line: str) -> tuple[_Found, ...]:
    """The claims of one normalised line, left to right; a calculator claim's operands are the
    literals of both the written expression and its annotation."""
    found: list[_Found] = []
    covered = []  # spans already read as claims, blanked before the plain "=" scan
    reverse = ""  # the line reversed, made when first needed
    for match in _ANNOTATION.finditer(line):
        annotated = _claim(match.group(1), match.group(2))
        before = match.start()  # end of the text before the annotation, trailing space dropped
        while before > 0 and line[before - 1].isspace():
            before -= 1
        result = _RESULT.match(line, match.end())
        if before > 0 and line[before - 1] == "=" and result:  # written "expr=" before, result after
            reverse = reverse or line[::-1]
            start, expression = _expression_before(line, before - 1, reverse)
            written = _claim(expression, result.group(1))
            if written is not None and annotated is not None:
                (w_parts, w_operands), (a_parts, a_operands) = written, annotated
                agree = w_parts[3] and a_parts[3] and w_parts[1] == a_parts[1]
                parts = w_parts[:3] + (agree, w_parts[4] + a_parts[4])
                found.append((start, line[start:result.end()].strip(), (parts, w_operands + a_operands)))
                covered.append((start, result.end()))
                continue
        if annotated is not None:
            found.append((match.start(), match.group(0).strip(), annotated))
        covered.append(match.span())
    pieces, at = [], 0
    for start, stop in covered:  # ";" is no expression character: runs stop there
        pieces += [line[at:start], ";" * (stop - start)]
        at = stop
    plain = "".join(pieces) + line[at:]
    equals = plain.find("=")
    reverse = plain[::-1] if equals >= 0 else ""
    while equals >= 0:
        result = _RESULT.match(plain, equals + 1)
        if result is not None:
            start, expression = _expression_before(plain, equals, reverse)
            claim = _claim(expression, result.group(1))
            if claim is not None:
                found.append((start, plain[start:result.end()].strip(), claim))
        equals = plain.find("=", equals + 1)
    found.sort(key=operator.itemgetter(0))
    return tuple(found)


def _expression_before(line: str, end: int, reverse: str) -> tuple[int, str]:
    """(start, text) of the arithmetic run that ends just before `line[end]` (often "");
    `reverse` is `line[::-1]`, so that the run is found by one forward match."""
    start = len(line) - _RUN.match(reverse, len(line) - end).end()
    run = line[start:end]
    # read after the last full stop (not a decimal point) and after the last pair of operands
    # with no operator between them ("... = 2 1+1"): neither can be inside one expression
    last = _RUN_CUT.split(run)[-1]
    start += len(run) - len(last)
    trimmed = last.lstrip(" \t+*/)")  # characters that cannot begin an expression
    start += len(last) - len(trimmed)
    if trimmed.startswith("-") and start > 0 and line[start - 1].isalnum():
        trimmed, start = trimmed[1:], start + 1  # "day-3": a hyphen, not a minus sign
    return start, trimmed


def _normalise(line: str) -> str:
    """`$` and thousands commas dropped, "x" and "×" read as "*", "÷" as "/"."""
    line = _THOUSANDS.sub("", line.replace("$", "").replace("×", "*").replace("÷", "/"))
    return _TIMES.sub("*", line)


def _claim(expression: str, claimed: str) -> tuple[tuple, tuple[tuple[str, _Key], ...]] | None:
    """"expression = claimed" as ((expression, claimed, value, correct, (key of claimed,)), its
    operands as (literal, key)), or None unless the left side is an operation on number
    literals and the right side a number."""
    expression = _balanced(expression.strip())
    if len(expression) > _MAX_CLAIM_CHARS:
        return None
    if len(claimed) > _MAX_CLAIM_CHARS:  # a huge number: read it, but keep it out of the cache
        return _parts.__wrapped__(expression, claimed)
    return _parts(expression, claimed)


@lru_cache(maxsize=1 << 12)  # degenerate completions repeat one claim thousands of times
def _parts(expression: str, claimed: str) -> tuple[tuple, tuple[tuple[str, _Key], ...]] | None:
    """`_claim` of a balanced expression of at most _MAX_CLAIM_CHARS characters."""
    try:
        right = _value(claimed.strip())
    except (ValueError, ZeroDivisionError):  # ZeroDivisionError: "<<2*3=1/0>>"
        return None
    simple = _SIMPLE.fullmatch(expression)  # "a op b": most claims; no need to compile
    try:
        if simple and "." not in expression:  # integers: exact without Fraction arithmetic
            left, op, right_operand = simple.groups()
            a, b = int(left), int(right_operand)
            value = Fraction(a, b) if op == "/" else Fraction(_OPERATIONS[op](a, b))
        elif simple:
            left, op, right_operand = simple.groups()
            value = _OPERATIONS[op](_constant(left), _constant(right_operand))
        else:
            tree = ast.parse(expression, mode="eval")
            if not isinstance(tree.body, ast.BinOp):
                return None
            value = _exact(tree.body)
    except ZeroDivisionError:
        value = None  # a claim about x/0 is false
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # not plain arithmetic
        return None
    operands = tuple((literal, _literal_key(literal)) for literal in _LITERAL.findall(expression))
    return (expression, right, value, value == right, (_key(right),)), operands


def _key(value: Fraction) -> _Key:
    """A hashable, fast-hashing form of |value|, equal for equal numbers."""
    numerator, denominator = abs(value.numerator), value.denominator
    return numerator if denominator == 1 else (numerator, denominator)


@lru_cache(maxsize=1 << 12)
def _literal_key(text: str) -> _Key:
    """The `_key` of a number literal ("2.50" and "2.5" share one)."""
    return _key(_value(text))


@lru_cache(maxsize=1 << 12)
def _value(text: str) -> Fraction:
    """The exact value of a number literal (cached: a trace reuses few numbers)."""
    return Fraction(text)


def _balanced(expression: str) -> str:
    """Drop unmatched outer parentheses the scan may have caught ("(5+3" -> "5+3"); linear."""
    opens, closes = expression.count("("), expression.count(")")
    start, stop = 0, len(expression)
    while start < stop and expression[start] == "(" and opens > closes:
        start, opens = start + 1, opens - 1
        while start < stop and expression[start].isspace():
            start += 1
    while stop > start and expression[stop - 1] == ")" and closes > opens:
        stop, closes = stop - 1, closes - 1
        while stop > start and expression[stop - 1].isspace():
            stop -= 1
    return expression[start:stop]


_NUMBER = r"(\d+\.\d*|\.\d+|[1-9]\d*|0+)"  # a literal Python reads (not "05")
_SIMPLE = re.compile(_NUMBER + r"[ \t]*([-+*/])[ \t]*" + _NUMBER)
_OPERATIONS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _constant(literal: str) -> Fraction:
    """A literal's value as Python reads it (a decimal through its float, as `_exact` does)."""
    return _value(repr(float(literal))) if "." in literal else _value(literal)


def _exact(node: ast.AST) -> Fraction:
    """Exact value of + - * / arithmetic over number literals (ValueError for anything else)."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _value(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_exact(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        left, right = _exact(node.left), _exact(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right
    raise ValueError(f"{type(node).__name__} is not arithmetic")
