import re
from pathlib import Path

import pytest

from cotrepro.corrupt import CODE_OPERATORS, TEXT_OPERATORS, corrupt, verify_corrupted
from cotrepro.tasks.base import Problem, Verdict

ARITH_TRACE = "5 + 12 = 17\n17 * 3 = 51\n#### 51"
ARITH_PROBLEM = Problem(id="p0", question="q", answer="51")
GSM8K_TRACE = ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
               "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18")
CODE_TRACE = ("def first_big(xs, limit):\n"
              "    total = 0\n"
              "    for x in xs:\n"
              "        if x > limit:\n"
              "            return True\n"
              "        total += x\n"
              "    return total == 10")


class LineTask:
    """Stand-in for the arith / gsm8k tasks: one step per non-empty line, answer after '####'."""

    name = "arith"
    needs_code_execution = False

    def extract(self, completion):
        found = re.findall(r"####\s*(-?\d+)", completion)
        return found[-1] if found else None

    def verify(self, problem, completion):
        got = self.extract(completion)
        return Verdict(got == problem.answer, got)

    def steps(self, trace):
        return [line for line in trace.splitlines() if line.strip()]


class CodeTask(LineTask):
    name = "mbpp"
    needs_code_execution = True


TASK, CODE = LineTask(), CodeTask()


def test_fraction_zero_returns_trace_unchanged():
    out = corrupt(ARITH_TRACE, TASK, 0.0, "mixed", seed=0)
    assert out.text == ARITH_TRACE and out.hits == [] and out.fraction_hit == 0.0


@pytest.mark.parametrize("operator", ["number", "operator", "delete", "duplicate", "swap"])
def test_each_text_operator_changes_exactly_the_recorded_step(operator):
    out = corrupt(ARITH_TRACE, TASK, 0.3, operator, seed=0)  # round(0.3 * 3) = 1 step
    assert len(out.hits) == 1 and out.fraction_hit == pytest.approx(1 / 3)
    hit = out.hits[0]
    assert hit["operator"] == operator and hit["before"] != hit["after"]
    assert out.text != ARITH_TRACE
    original = ARITH_TRACE.splitlines()
    lines = out.text.splitlines()
    if operator == "delete":
        assert len(lines) == 2 and original[hit["step"]] not in lines
    elif operator == "duplicate":
        assert len(lines) == 4 and lines.count(original[hit["step"]]) == 2
    elif operator == "swap":
        assert sorted(lines) == sorted(original)
    else:
        assert sum(a != b for a, b in zip(lines, original)) == 1
        assert lines[hit["step"]] == hit["after"]


def test_number_and_operator_edits_keep_the_shape_of_the_step():
    for seed in range(10):
        out = corrupt("5 + 12 = 17", TASK, 1.0, "number", seed)
        assert re.fullmatch(r"\d+ \+ \d+ = \d+", out.text) and out.text != "5 + 12 = 17"
        out = corrupt("5 + 12 = 17", TASK, 1.0, "operator", seed)
        assert re.fullmatch(r"5 [-*/] 12 = 17", out.text)


def test_answer_operator_changes_only_the_final_answer():
    out = corrupt(ARITH_TRACE, TASK, 1.0, "answer", seed=0)
    assert out.text.splitlines()[:2] == ARITH_TRACE.splitlines()[:2]
    assert TASK.extract(out.text) != "51"
    assert not verify_corrupted(TASK, ARITH_PROBLEM, out).correct
    # only the answer step is eligible: the others are recorded as skipped
    assert [h["step"] for h in out.hits] == [2]
    assert sorted(s["step"] for s in out.skipped) == [0, 1]


def test_fraction_one_hits_every_eligible_step():
    out = corrupt(ARITH_TRACE, TASK, 1.0, "number", seed=0)
    assert [h["step"] for h in out.hits] == [0, 1, 2] and out.fraction_hit == 1.0
    mixed = corrupt(ARITH_TRACE, TASK, 1.0, "mixed", seed=4)
    assert len(mixed.hits) + len(mixed.skipped) == 3


def test_ineligible_step_is_replaced_by_an_eligible_one():
    trace = "We add the numbers.\n5 + 12 = 17\n#### 17"
    counts = {s["step"] for seed in range(20)
              for s in corrupt(trace, TASK, 0.3, "operator", seed).hits}
    assert counts == {1}  # only "5 + 12 = 17" holds an operator, whichever step was drawn
    for seed in range(20):
        out = corrupt(trace, TASK, 0.3, "operator", seed)
        assert len(out.hits) == 1 and out.skipped == []


def test_fraction_accounting_over_many_steps():
    trace = "\n".join(f"{i} + 1 = {i + 1}" for i in range(20))
    for fraction, expected in ((0.01, 1), (0.05, 1), (0.25, 5), (0.5, 10), (0.525, 11), (0.9, 18)):
        out = corrupt(trace, TASK, fraction, "number", seed=1)
        assert len(out.hits) == expected and out.fraction_hit == expected / 20
        assert out.fraction_requested == fraction and out.n_steps == 20


def test_stochastic_rounding_keeps_the_share_of_steps_hit_over_a_set_of_short_traces():
    """Three-step traces: half up hits one step at both 0.125 and 0.25 (a share of 1/3); the
    stochastic count hits the level's share over the set, and tells the two levels apart."""
    traces = [f"{i} + 1 = {i + 1}\n{i + 1} * 2 = {2 * i + 2}\n{2 * i + 2} - 1 = {2 * i + 1}" for i in range(400)]

    def share(level, rounding):
        return sum(corrupt(t, TASK, level, "number", seed=0, rounding=rounding).fraction_hit for t in traces) / 400

    assert share(0.125, "half_up") == share(0.25, "half_up") == pytest.approx(1 / 3)
    assert share(0.125, "stochastic") == pytest.approx(0.125, abs=0.02)
    assert share(0.25, "stochastic") == pytest.approx(0.25, abs=0.025)
    assert share(1.0, "stochastic") == 1.0 and share(0.0, "stochastic") == 0.0
    again = corrupt(traces[0], TASK, 0.5, "number", seed=0, rounding="stochastic")
    assert again == corrupt(traces[0], TASK, 0.5, "number", seed=0, rounding="stochastic")
    with pytest.raises(ValueError, match="rounding"):
        corrupt(traces[0], TASK, 0.5, "number", rounding="nearest")


def test_seeded_and_deterministic():
    a = corrupt(ARITH_TRACE, TASK, 0.7, "mixed", seed=3)
    assert a == corrupt(ARITH_TRACE, TASK, 0.7, "mixed", seed=3)
    outputs = {corrupt(ARITH_TRACE, TASK, 0.7, "mixed", seed=s).text for s in range(10)}
    assert len(outputs) > 3


def test_swaps_never_undo_each_other():
    for seed in range(10):
        out = corrupt(ARITH_TRACE, TASK, 1.0, "swap", seed)
        assert out.text != ARITH_TRACE and out.hits


def test_gsm8k_style_trace_keeps_unhit_text_verbatim():
    task = LineTask()
    out = corrupt(GSM8K_TRACE, task, 0.3, "number", seed=0)  # 1 of 3 lines
    assert len(out.hits) == 1
    changed = [a for a, b in zip(out.text.splitlines(), GSM8K_TRACE.splitlines()) if a != b]
    assert len(changed) == 1 and changed[0] == out.hits[0]["after"]
    out = corrupt(GSM8K_TRACE, task, 1.0, "operator", seed=0)
    assert "<<9*2=18>>" not in out.text or "9 * 2" not in out.text  # an operator moved
    assert task.extract(out.text) == "18"  # operator swaps leave the answer line alone


@pytest.mark.parametrize("operator, pattern", [
    ("comparison", r"if x <= limit:"),
    ("off_by_one", r"total = 1|return total == (9|11)"),
    ("arith_swap", r"total -= x"),
    ("delete_statement", r"\n +pass(\n|$)"),
    ("return_value", r"return False|return None"),
])
def test_code_operators(operator, pattern):
    for seed in range(5):
        out = corrupt(CODE_TRACE, CODE, 1.0, operator, seed)
        assert out.hits and all(h["operator"] == operator for h in out.hits)
        assert re.search(pattern, out.text), out.text
        compile(out.text, "<corrupted>", "exec")  # every code operator keeps the code parseable


def test_code_comparison_ignores_strings_and_arrows():
    code = 'def f(s) -> bool:\n    return s == "a<b"'
    out = corrupt(code, CODE, 1.0, "comparison", seed=0)
    assert out.text == 'def f(s) -> bool:\n    return s != "a<b"'


def test_operator_must_suit_the_task():
    with pytest.raises(ValueError, match="does not apply"):
        corrupt(CODE_TRACE, CODE, 0.5, "number")
    with pytest.raises(ValueError, match="does not apply"):
        corrupt(ARITH_TRACE, TASK, 0.5, "comparison")
    with pytest.raises(ValueError, match="fraction"):
        corrupt(ARITH_TRACE, TASK, 1.5)
    assert set(TEXT_OPERATORS).isdisjoint(CODE_OPERATORS)


def test_on_real_arith_task_if_available():
    arith = pytest.importorskip("cotrepro.tasks.arith")
    problem = arith.generate_problems(1, seed=0)[0]
    trace = arith.render_stepwise(problem)
    assert arith.TASK.verify(problem, trace).correct
    # arith's steps() leaves out the "#### N" line (changed on purpose: it is the answer, not a
    # step), so the answer operator has no eligible step: every chosen step is skipped, the trace
    # is unchanged and still correct
    n_steps = len(problem.meta["steps"])
    out = corrupt(trace, arith.TASK, 1.0, "answer", seed=0)
    assert out.n_steps == n_steps and out.hits == [] and out.text == trace
    assert sorted(s["step"] for s in out.skipped) == list(range(n_steps))
    assert verify_corrupted(arith.TASK, problem, out).correct
    # corrupting every step changes the steps, never the final-answer line
    out = corrupt(trace, arith.TASK, 1.0, "number", seed=0)
    assert [h["step"] for h in out.hits] == list(range(n_steps)) and out.fraction_hit == 1.0
    assert out.text.splitlines()[-1] == f"#### {problem.answer}"
    assert all(a != b for a, b in zip(out.text.splitlines()[:-1], trace.splitlines()[:-1]))
    assert arith.check_steps(out.text) and not all(c.correct for c in arith.check_steps(out.text))
    assert verify_corrupted(arith.TASK, problem, out).correct  # the answer line was kept
    untouched = corrupt(trace, arith.TASK, 0.0, seed=0)
    assert verify_corrupted(arith.TASK, problem, untouched).correct


def test_on_real_gsm8k_solutions_if_available():
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (data / "gsm8k" / "test.jsonl").exists():
        pytest.skip("shared/data/gsm8k is absent")
    from cotrepro.tasks import get_task

    gsm8k = get_task("gsm8k")
    problems = gsm8k.load("test", data_dir=data, limit=20)
    for problem in problems:
        assert gsm8k.verify(problem, problem.solution).correct
        out = corrupt(problem.solution, gsm8k, 1.0, "answer", seed=0)
        assert len(out.hits) == 1 and not verify_corrupted(gsm8k, problem, out).correct
        out = corrupt(problem.solution, gsm8k, 0.5, "mixed", seed=1)
        assert out.hits and out.text != problem.solution


@pytest.mark.filterwarnings("ignore:invalid escape sequence")  # in some gold MBPP code
def test_code_operators_on_real_mbpp_solutions_if_available(monkeypatch):
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (data / "mbpp" / "mbpp.jsonl").exists():
        pytest.skip("shared/data/mbpp is absent")
    from cotrepro.tasks import get_task

    mbpp = get_task("mbpp")
    problems = mbpp.load("test", data_dir=data, limit=40)
    applied = {op: 0 for op in CODE_OPERATORS}
    for problem in problems:
        for op in CODE_OPERATORS:
            out = corrupt(problem.solution, mbpp, 1.0, op, seed=0)
            compile(out.text, problem.id, "exec")  # whole-def steps: edits inside keep it parseable
            applied[op] += bool(out.hits)
            for hit in out.hits:
                assert hit["after"] != hit["before"]
    assert all(count >= 10 for count in applied.values()), applied
    # with code execution allowed, a deleted statement or flipped return usually breaks the tests
    monkeypatch.setenv("COTREPRO_ALLOW_CODE_EXECUTION", "1")
    broken = 0
    for problem in problems[:6]:
        assert mbpp.verify(problem, problem.solution).correct
        out = corrupt(problem.solution, mbpp, 1.0, "mixed", seed=2)
        broken += not verify_corrupted(mbpp, problem, out).correct
    assert broken >= 3
