"""Star-graph path finding (Bachmann and Nagarajan 2024, "The pitfalls of next-token prediction").

A star graph has a center and `degree` arms; every path from the center to a leaf has
`path_length` nodes, center and leaf included (their convention: 1 + degree * (path_length - 1)
nodes in all). Node labels are distinct, drawn from range(n_nodes). The edges, directed away from
the center, are listed in random order; the query asks for the path from the center to one leaf.

Text format, exactly theirs (github.com/gregorbachmann/Next-Token-Failures, data/graphs.py):
edges "u,v" joined by "|", then "/start,goal=":

    question  "33,45|12,3|9,20|7,33|45,18|12,7|20,41|3,9/12,18="   (degree 2, path_length 5)
    answer    "12,7,33,45,18"   the node labels of the path, comma-separated

A model trained with teacher forcing can learn the "Clever Hans" shortcut: after the first arm
node, each next node is the one edge away, so only the first choice is hard.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import replace
from itertools import count, islice
from pathlib import Path
from typing import Any

from cotrepro.tasks.base import Problem, Verdict
from cotrepro.tasks.prompts import get_template, render

_PATH = re.compile(r"\d+(?:,\d+)*")
# Problems are generated, not loaded: a problem belongs to the test split when a hash of its
# question falls in the first TEST_SHARE of buckets, so train and test never share a graph.
TEST_SHARE = 0.1
SPLIT_SIZES = {"train": 200_000, "test": 1_000}  # Bachmann and Nagarajan train on 200,000 graphs


class StarGraphTask:
    """The star-graph task for one graph shape."""

    name = "stargraph"
    needs_code_execution = False
    bounded_verify = True  # a regex scan and integer checks: graded in process (cotrepro.grade)

    def __init__(self, degree: int = 2, path_length: int = 5, n_nodes: int = 50):
        self.degree, self.path_length, self.n_nodes = degree, path_length, n_nodes

    def load(self, split: str, data_dir: str | Path | None = None, limit: int | None = None,
             seed: int = 0) -> list[Problem]:
        """`limit` (default SPLIT_SIZES[split]) generated problems of `split`; `data_dir` is unused."""
        if split not in SPLIT_SIZES:
            raise ValueError(f"unknown stargraph split {split!r}; choose one of {', '.join(SPLIT_SIZES)}")
        wanted = SPLIT_SIZES[split] if limit is None else limit
        stream = _problem_stream(seed, self.degree, self.path_length, self.n_nodes)
        in_split = (p for p in stream if split_of(p.question) == split)
        return [replace(p, id=f"{split}/{i}") for i, p in zip(range(wanted), in_split)]

    def from_record(self, record: dict[str, Any], index: int = 0) -> Problem:
        """A problem from {"question": ..., "answer": ...} in the text format above."""
        try:
            question, answer = str(record["question"]), str(record["answer"])
        except KeyError as missing:
            raise ValueError(f"stargraph record needs question and answer; missing {missing}") from None
        edges, start, goal = parse_question(question)
        return Problem(id=str(record.get("id", index)), question=question, answer=answer,
                       solution=answer, meta={"edges": edges, "start": start, "goal": goal})

    def prompt(self, problem: Problem, template: str = "default") -> str:
        """The prompt: the question text as the template frames it."""
        return render(get_template(self.name, template), question=problem.question)

    def extract(self, completion: str) -> str | None:
        """The first comma-separated run of integers (after the last "=" if the prompt is echoed)."""
        match = _PATH.search(completion.rsplit("=", 1)[-1])
        return match.group(0) if match else None

    def verify(self, problem: Problem, completion: str) -> Verdict:
        """Correct iff the answer starts at start, ends at goal and follows directed edges."""
        path = self.extract(completion)
        if path is None:
            return Verdict(False, None, detail={"reason": "no path"})
        reason = check_path([int(n) for n in path.split(",")], problem.meta["edges"],
                            problem.meta["start"], problem.meta["goal"])
        return Verdict(reason is None, path, detail={"reason": reason or "ok"})

    def steps(self, trace: str) -> list[str]:
        """One step per node of the path: the labels, to be re-joined with ","."""
        path = self.extract(trace)
        return path.split(",") if path else []


def check_path(path: list[int], edges: list[list[int]], start: int, goal: int) -> str | None:
    """None if `path` leads from start to goal along the graph's edges, else the reason."""
    if path[0] != start:
        return f"starts at {path[0]}, not {start}"
    if path[-1] != goal:
        return f"ends at {path[-1]}, not {goal}"
    edge_set = {tuple(edge) for edge in edges}
    for u, v in zip(path, path[1:]):
        if (u, v) not in edge_set:
            return f"{u},{v} is not an edge"
    return None


def parse_question(question: str) -> tuple[list[list[int]], int, int]:
    """(edges, start, goal) of a question "u,v|...|u,v/start,goal=" (ValueError if malformed)."""
    match = re.fullmatch(r"(\d+,\d+(?:\|\d+,\d+)*)/(\d+),(\d+)=", question.strip())
    if match is None:
        raise ValueError(f"not a star-graph question: {question[:60]!r}")
    edges = [[int(x) for x in edge.split(",")] for edge in match.group(1).split("|")]
    return edges, int(match.group(2)), int(match.group(3))


def format_question(edges: list[list[int]], start: int, goal: int) -> str:
    """The question text of a graph and query."""
    return "|".join(f"{u},{v}" for u, v in edges) + f"/{start},{goal}="


def split_of(question: str) -> str:
    """"test" or "train", from a stable hash of the question text."""
    bucket = int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big") / 2**64
    return "test" if bucket < TEST_SHARE else "train"


def generate_problems(n: int, seed: int, degree: int = 2, path_length: int = 5,
                      n_nodes: int = 50) -> list[Problem]:
    """`n` star-graph problems, deterministic for `seed`; the solution is the gold path."""
    return list(islice(_problem_stream(seed, degree, path_length, n_nodes), n))


def _problem_stream(seed: int, degree: int, path_length: int, n_nodes: int) -> Iterator[Problem]:
    """An endless, seeded stream of problems (ids "gen{seed}/{i}")."""
    n_graph_nodes = 1 + degree * (path_length - 1)
    if degree < 1 or path_length < 2 or n_graph_nodes > n_nodes:
        raise ValueError(f"a star graph of degree {degree} and path length {path_length} needs "
                         f"{n_graph_nodes} distinct labels; n_nodes={n_nodes}")
    rng = random.Random(seed)
    for i in count():
        labels = rng.sample(range(n_nodes), n_graph_nodes)
        center = labels[0]
        arms = [labels[1 + a * (path_length - 1):1 + (a + 1) * (path_length - 1)] for a in range(degree)]
        edges = [[u, v] for arm in arms for u, v in zip([center] + arm, arm)]
        rng.shuffle(edges)
        gold = [center] + arms[rng.randrange(degree)]
        answer = ",".join(map(str, gold))
        yield Problem(id=f"gen{seed}/{i}", question=format_question(edges, center, gold[-1]),
                      answer=answer, solution=answer,
                      meta={"edges": edges, "start": center, "goal": gold[-1]})


TASK = StarGraphTask()
