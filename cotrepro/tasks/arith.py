"""Multi-step arithmetic word problems: the central task of the CPU-scale (micro) reproduction.

A problem is a short templated story over a small vocabulary ("Ann has 5 apples. She buys 3 bags
of 4 apples each. She gives 2 apples to a friend. How many apples does Ann have now?"); every
intermediate result is an integer in [2, max_value], and division is exact. Its gold steps (each
`{"a", "op", "b", "result"}`) are written in two styles, the H/G analogue of the micro world:

- `render_human`: terse, as a human annotator writes (GSM8K style): several operations per line,
  some intermediate results skipped by writing one merged expression ("5+3*4"), calculator
  annotations `<<a*b=c>>`.
- `render_stepwise`: one operation per line, every intermediate result written ("3 * 4 = 12").

Both end with the same final-answer line, "#### <integer>", so one extractor reads both.
`check_steps` finds every arithmetic claim "expr = c" in any trace (either style, calculator
annotations, model outputs) and says which are true: the step-level validity measure.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from fractions import Fraction
from itertools import count, islice
from pathlib import Path
from typing import Any

from cotrepro.tasks.base import Problem, Verdict
from cotrepro.tasks.prompts import get_template, render

NAMES = (("Ann", "she"), ("Ben", "he"), ("Cal", "he"), ("Dee", "she"), ("Eve", "she"), ("Gus", "he"))
ITEMS = ("apples", "pens", "cards", "eggs", "coins", "books")
# event kind -> how many gold steps it makes
EVENT_STEPS = {"gain": 1, "lose": 1, "times": 1, "share": 1, "gain_groups": 2, "lose_groups": 2}
MERGE_PROB = 0.5  # human style: chance that a step is folded into the next one's expression
JOIN_PROB = 0.5  # human style: chance that a line is continued by the next claim
TEST_SHARE = 0.1  # a problem is in "test" when a hash of its question falls in this share
SPLIT_SIZES = {"train": 20_000, "test": 2_000}
MAX_VALUE = 120  # the micro world's number range: 119 possible answers, so guessing scores under 1%
_FINAL = re.compile(r"####\s*(-?\d[\d,]*(?:\.\d+)?)")
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


class ArithTask:
    """The arithmetic word-problem task for one generator setting."""

    name = "arith"
    needs_code_execution = False
    bounded_verify = True  # a regex scan and integer checks: graded in process (cotrepro.grade)

    def __init__(self, n_steps: tuple[int, int] = (2, 4), max_value: int = MAX_VALUE):
        self.n_steps, self.max_value = tuple(n_steps), max_value

    def load(self, split: str, data_dir: str | Path | None = None, limit: int | None = None,
             seed: int = 0) -> list[Problem]:
        """`limit` (default SPLIT_SIZES[split]) generated problems of `split`; `data_dir` is unused.

        Train and test never share a question: membership is decided by a hash of the question.
        """
        if split not in SPLIT_SIZES:
            raise ValueError(f"unknown arith split {split!r}; choose one of {', '.join(SPLIT_SIZES)}")
        wanted = SPLIT_SIZES[split] if limit is None else limit
        in_split = (p for p in _problem_stream(seed, self.n_steps, self.max_value)
                    if split_of(p.question) == split)
        return [replace(p, id=f"{split}/{i}") for i, p in zip(range(wanted), in_split)]

    def from_record(self, record: dict[str, Any], index: int = 0) -> Problem:
        """A problem from a stored row {"question", "answer", optional "id", "solution", "meta"}."""
        try:
            question, answer = str(record["question"]), str(record["answer"])
        except KeyError as missing:
            raise ValueError(f"arith record needs question and answer; missing {missing}") from None
        return Problem(id=str(record.get("id", index)), question=question, answer=answer,
                       solution=record.get("solution"), meta=dict(record.get("meta") or {}))

    def prompt(self, problem: Problem, template: str = "default") -> str:
        """The prompt for `problem`."""
        return render(get_template(self.name, template), question=problem.question)

    def extract(self, completion: str) -> str | None:
        """The number of the last "#### N" (commas dropped), or None."""
        matches = _FINAL.findall(completion)
        return matches[-1].replace(",", "") if matches else None

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Correct iff the extracted number equals the gold integer ("17.0" counts, "17.5" not)."""
        extracted = self.extract(completion)
        try:
            gold = int(problem.answer)
        except ValueError:
            return Verdict(False, extracted, ungradable=True)
        return Verdict(extracted is not None and Fraction(extracted) == gold, extracted)

    def steps(self, trace: str) -> list[str]:
        """One step per non-empty line, except the final-answer line "#### N": that line is the
        answer, not a step of the process (corrupting it would change the answer, and the value
        of the prefix ending at the last step asks whether the model writes the right answer)."""
        return [line for line in trace.splitlines() if line.strip() and not line.lstrip().startswith("####")]


def render_question(problem: Problem) -> str:
    """The question text of a generated problem, from its meta (equals `problem.question`)."""
    return _question(problem.meta)


def render_human(problem: Problem) -> str:
    """The terse human-annotation trace of a generated problem (its `solution`)."""
    return _human(problem.meta)


def render_stepwise(problem: Problem) -> str:
    """The one-operation-per-line trace of a generated problem (also in meta["stepwise"])."""
    return _stepwise(problem.meta)


def split_of(question: str) -> str:
    """"test" or "train", from a stable hash of the question text."""
    bucket = int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big") / 2**64
    return "test" if bucket < TEST_SHARE else "train"


# ---------------------------------------------------------------- generation

def generate_problems(n: int, seed: int, n_steps: tuple[int, int] = (2, 4),
                      max_value: int = MAX_VALUE) -> list[Problem]:
    """`n` word problems with n_steps[0]..n_steps[1] gold steps, deterministic for `seed`.

    Every operand and intermediate result is an integer in [2, max_value] (no "1 apples"), and
    division is exact. Final answers are spread nearly evenly over [2, max_value]
    (`_acceptance`), so no constant answer scores more than about twice uniform guessing.
    `solution` is the
    human-style trace; meta holds name, pronoun, item, start, events, steps (the gold list),
    render_seed (the human style's choices) and stepwise (the stepwise trace).
    """
    return list(islice(_problem_stream(seed, n_steps, max_value), n))


def _problem_stream(seed: int, n_steps: tuple[int, int], max_value: int) -> Iterator[Problem]:
    if not 1 <= n_steps[0] <= n_steps[1]:
        raise ValueError(f"n_steps must be (low, high) with 1 <= low <= high; got {n_steps}")
    if max_value < 20:
        raise ValueError(f"max_value must be at least 20; got {max_value}")
    rng = random.Random(seed)
    accept = _acceptance(tuple(n_steps), max_value)
    for i in count():
        meta = _sample_story(rng, rng.randint(*n_steps), max_value)
        if rng.random() >= accept.get(meta["steps"][-1]["result"], 1.0):
            continue
        meta["stepwise"] = _stepwise(meta)
        yield Problem(id=f"gen{seed}/{i}", question=_question(meta), answer=str(meta["steps"][-1]["result"]),
                      solution=_human(meta), meta=meta)


@cache
def _acceptance(n_steps: tuple[int, int], max_value: int) -> dict[int, float]:
    """Per final answer, the probability that a sampled story is kept, so that answers come out
    nearly uniform: left alone, small answers dominate (a share event ends at x/k, a loss at 2 or
    more), and always answering "2" would score 6%. The answer frequencies are estimated once from
    a fixed sample; each answer is kept at a rate that brings it down to the 25th percentile of
    the frequencies (rarer answers are kept whole)."""
    rng = random.Random(20_261_201)
    counts = Counter(_sample_story(rng, rng.randint(*n_steps), max_value)["steps"][-1]["result"]
                     for _ in range(_DENSITY_SAMPLE))
    floor = sorted(counts.values())[len(counts) // 4]
    return {answer: min(1.0, floor / seen) for answer, seen in counts.items()}


_DENSITY_SAMPLE = 50_000


def _sample_story(rng: random.Random, n_steps: int, max_value: int) -> dict[str, Any]:
    """Name, item, start value and events making exactly `n_steps` gold steps."""
    name, pronoun = rng.choice(NAMES)
    value = rng.randint(2, max(20, max_value // 2))
    meta: dict[str, Any] = {"name": name, "pronoun": pronoun, "item": rng.choice(ITEMS),
                            "start": value, "events": [], "steps": [],
                            "render_seed": rng.randrange(2**31)}
    while len(meta["steps"]) < n_steps:
        room = n_steps - len(meta["steps"])
        kind = rng.choice([k for k, size in EVENT_STEPS.items() if size <= room])
        event = _sample_event(kind, value, rng, max_value)
        if event is None:  # infeasible from this value (lose needs value >= 4, gain <= max_value - 2)
            continue
        numbers, steps = event
        meta["events"].append({"kind": kind, "numbers": numbers})
        meta["steps"] += steps
        value = steps[-1]["result"]
    return meta


def _sample_event(kind: str, x: int, rng: random.Random,
                  max_value: int) -> tuple[list[int], list[dict[str, Any]]] | None:
    """(the event's numbers, its gold steps) from current value x, or None if none fit."""
    def pick(low: int, high: int) -> int | None:
        return rng.randint(low, high) if low <= high else None

    if kind in ("gain", "lose"):
        b = pick(2, min(20, max_value - x)) if kind == "gain" else pick(2, min(20, x - 2))
        return None if b is None else ([b], [_step(x, "+" if kind == "gain" else "-", b)])
    if kind == "times":
        k = pick(2, min(4, max_value // x))
        return None if k is None else ([k], [_step(x, "*", k)])
    if kind == "share":
        divisors = [k for k in range(2, 6) if x % k == 0 and x // k >= 2]
        if not divisors:
            return None
        k = rng.choice(divisors)
        return [k], [_step(x, "/", k)]
    room = max_value - x if kind == "gain_groups" else x - 2
    groups = pick(2, min(5, room // 2))
    size = None if groups is None else pick(2, min(9, room // groups))
    if size is None:
        return None
    product = _step(groups, "*", size)
    return [groups, size], [product, _step(x, "+" if kind == "gain_groups" else "-", product["result"])]


def _step(a: int, op: str, b: int) -> dict[str, Any]:
    result = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    return {"a": a, "op": op, "b": b, "result": result}


# ---------------------------------------------------------------- rendering

_EVENT_TEXT = {
    "gain": "{P} buys {0} more {item}.",
    "lose": "{P} gives {0} {item} to a friend.",
    "times": "{P} then has {0} times as many {item}.",
    "share": "{P} splits them equally into {0} piles and keeps one pile.",
    "gain_groups": "{P} buys {0} bags of {1} {item} each.",
    "lose_groups": "{P} sells {0} boxes of {1} {item} each.",
}
_CONTAINER = {"gain_groups": "bags", "lose_groups": "boxes"}


def _question(meta: dict[str, Any]) -> str:
    sentences = [f"{meta['name']} has {meta['start']} {meta['item']}."]
    sentences += [_EVENT_TEXT[e["kind"]].format(*e["numbers"], P=meta["pronoun"].capitalize(),
                                                item=meta["item"]) for e in meta["events"]]
    sentences.append(f"How many {meta['item']} does {meta['name']} have now?")
    return " ".join(sentences)


def _stepwise(meta: dict[str, Any]) -> str:
    lines = [f"{s['a']} {s['op']} {s['b']} = {s['result']}" for s in meta["steps"]]
    return "\n".join(lines + [f"#### {meta['steps'][-1]['result']}"])


def _human(meta: dict[str, Any]) -> str:
    """Claims built by folding steps into the next step's expression, then packed into lines."""
    rng = random.Random(meta["render_seed"])
    # each step's sentence: products fill a container; every other step is the new count
    roles = [container for e in meta["events"]
             for container in ([_CONTAINER[e["kind"]], None] if e["kind"] in _CONTAINER else [None])]
    claims = []  # (expression, result, container or None)
    folded: tuple[str, str] | None = None  # (previous step's expression, operand it stands for)
    for i, step in enumerate(meta["steps"]):
        operands = {"a": str(step["a"]), "b": str(step["b"])}
        if folded is not None:
            previous, side = folded
            operands[side] = _wrap(previous, step["op"], right=side == "b")
        expression = f"{operands['a']}{step['op']}{operands['b']}"
        side = _consumer_side(roles, i)
        if folded is None and side is not None and rng.random() < MERGE_PROB:
            folded = (expression, side)  # skip writing this step: the next claim holds it
            continue
        folded = None
        claims.append((expression, step["result"], roles[i]))
    lines: list[str] = []
    for n, (expression, result, container) in enumerate(claims):
        annotated = f"{expression}=<<{expression}={result}>>{result}"
        if container is not None:
            sentence = f"{annotated} {meta['item']} in the {container}."
        elif rng.random() < 0.5:
            sentence = f"{meta['pronoun'].capitalize()} has {annotated} {meta['item']}."
        else:
            sentence = f"Now {meta['pronoun']} has {annotated}."
        if n > 0 and rng.random() < JOIN_PROB:
            lines[-1] += " " + sentence
        else:
            lines.append(sentence)
    return "\n".join(lines + [f"#### {meta['steps'][-1]['result']}"])


def _consumer_side(roles: list[str | None], i: int) -> str | None:
    """Which operand of step i+1 is step i's result: "b" after a product, "a" after a count
    followed by a count step, None when step i+1 does not use it (a new product) or is absent."""
    if i + 1 >= len(roles) or roles[i + 1] is not None:
        return None
    return "b" if roles[i] is not None else "a"


def _wrap(expression: str, parent_op: str, right: bool) -> str:
    """`expression` as an operand of `parent_op`, in parentheses only where precedence needs them."""
    inner = [c for c in expression if c in _PRECEDENCE]
    lowest = min(_PRECEDENCE[c] for c in inner)
    needs = lowest < _PRECEDENCE[parent_op] or (right and lowest == _PRECEDENCE[parent_op]
                                                and parent_op in "-/")
    return f"({expression})" if needs else expression


# ---------------------------------------------------------------- step checking

# moved to cotrepro.tasks.step_claims; re-exported so `from cotrepro.tasks.arith import check_steps` works
from cotrepro.tasks.step_claims import StepCheck, check_steps, fraction_true_steps  # noqa: E402, F401


TASK = ArithTask()
