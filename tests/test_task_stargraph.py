"""Star graph: the generator's graphs, the text format, the path verifier, the splits."""

from __future__ import annotations

from collections import Counter

import pytest

from cotrepro.tasks import get_task
from cotrepro.tasks.stargraph import (StarGraphTask, format_question, generate_problems,
                                      parse_question, split_of)

TASK = StarGraphTask()
# center 12; arms 12-7-33-45-18 and 12-3-9-20-41
EDGES = [[33, 45], [12, 3], [9, 20], [7, 33], [45, 18], [12, 7], [20, 41], [3, 9]]
PROBLEM = TASK.from_record({"question": format_question(EDGES, 12, 18), "answer": "12,7,33,45,18"})


def test_registry_and_text_format():
    assert isinstance(get_task("stargraph"), StarGraphTask)
    assert PROBLEM.question == "33,45|12,3|9,20|7,33|45,18|12,7|20,41|3,9/12,18="
    assert parse_question(PROBLEM.question) == (EDGES, 12, 18)
    assert TASK.prompt(PROBLEM) == PROBLEM.question
    with pytest.raises(ValueError, match="not a star-graph question"):
        parse_question("12,7|7,33")


def test_a_line_of_the_authors_data_file_parses_and_verifies():
    # first line of Next-Token-Failures data/datasets/graphs/deg_2_path_5_nodes_50_test_20000.txt
    line = "32,3|16,12|3,19|32,34|34,6|6,16|19,47|47,28/32,12=32,34,6,16,12"
    question, path = line.split("=")
    problem = TASK.from_record({"question": question + "=", "answer": path})
    assert (problem.meta["start"], problem.meta["goal"], len(problem.meta["edges"])) == (32, 12, 8)
    assert TASK.verify(problem, path).correct
    assert format_question(problem.meta["edges"], 32, 12) == question + "="


@pytest.mark.parametrize("completion", ["12,7,33,45,18", "12,7,33,45,18\n", "12,7,33,45,18\n3,9",
                                        "3,9/12,18=12,7,33,45,18"])
def test_the_gold_path_verifies(completion):
    verdict = TASK.verify(PROBLEM, completion)
    assert verdict.correct and verdict.extracted == "12,7,33,45,18"


@pytest.mark.parametrize("completion, reason", [
    ("12,3,9,20,41", "ends at 41"),  # the other arm
    ("12,7,33,18", "33,18 is not an edge"),  # a skipped node
    ("12,7,9,45,18", "7,9 is not an edge"),  # a non-edge
    ("12,7,33,45,18,7", "ends at 7"),  # runs past the goal
    ("7,33,45,18", "starts at 7"),
    ("12,7,33,45", "ends at 45"),
    ("18,45,33,7,12", "starts at 18"),  # reversed
    ("12,18", "12,18 is not an edge"),
    ("12,3,12,7,33,45,18", "3,12 is not an edge"),  # edges are directed away from the center
    ("no idea", "no path"),
    ("", "no path"),
])
def test_wrong_paths_fail(completion, reason):
    verdict = TASK.verify(PROBLEM, completion)
    assert not verdict.correct and reason in verdict.detail["reason"]


def test_generated_graphs_are_star_graphs_whose_gold_path_verifies():
    for degree, path_length, n_nodes in [(2, 5, 50), (3, 4, 20), (5, 8, 100)]:
        for p in generate_problems(50, seed=1, degree=degree, path_length=path_length, n_nodes=n_nodes):
            edges, start, goal = parse_question(p.question)
            assert len(edges) == degree * (path_length - 1)
            nodes = {n for edge in edges for n in edge}
            assert len(nodes) == 1 + degree * (path_length - 1) and max(nodes) < n_nodes
            out_degree = Counter(u for u, _ in edges)
            assert out_degree[start] == degree and all(out_degree[n] <= 1 for n in nodes - {start})
            path = p.answer.split(",")
            assert len(path) == path_length and path[0] == str(start) and path[-1] == str(goal)
            assert TASK.verify(p, p.solution).correct
            assert TASK.steps(p.solution) == path


def test_goal_arm_and_edge_order_are_random():
    problems = generate_problems(200, seed=0)
    arm_position = Counter(parse_question(p.question)[0].index([int(x) for x in p.answer.split(",")[:2]])
                           for p in problems)
    assert len(arm_position) > 4  # the first edge of the gold arm is not always listed first


def test_generator_is_deterministic_for_a_seed():
    assert generate_problems(30, seed=5) == generate_problems(30, seed=5)
    assert generate_problems(30, seed=5) != generate_problems(30, seed=6)


def test_too_few_labels_are_refused():
    with pytest.raises(ValueError, match="distinct labels"):
        generate_problems(1, seed=0, degree=3, path_length=10, n_nodes=20)


def test_splits_are_disjoint_and_reproducible():
    train, test = TASK.load("train", limit=900), TASK.load("test", limit=100)
    assert len(train) == 900 and len(test) == 100
    assert not {p.question for p in train} & {p.question for p in test}
    assert all(split_of(p.question) == "test" for p in test)
    assert TASK.load("test", limit=100) == test
    assert TASK.load("test", limit=100, seed=1) != test
    with pytest.raises(ValueError, match="choose one of"):
        TASK.load("dev")
