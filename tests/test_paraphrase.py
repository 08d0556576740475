import re
from fractions import Fraction

import pytest
from _tiny import char_tokenizer, tiny_llama

from cotrepro import grade
from cotrepro.generate import SamplingParams
from cotrepro.paraphrase import check_paraphrase, paraphrase, rejection_rate
from cotrepro.sandbox import ALLOW_ENV, CodeExecutionNotAllowed
from cotrepro.tasks.base import Problem, Verdict


class HashTask:
    """Stand-in task: answer after '####', graded as an exact fraction ("0.5" == "1/2"). Like the
    real arith task its verifier is bounded (a regex and a Fraction), so `cotrepro.grade` grades
    it in process instead of starting a worker pool that imports this module."""

    name = "arith"
    needs_code_execution = False
    bounded_verify = True

    def extract(self, completion):
        found = re.findall(r"####\s*(\S+)", completion)
        return found[-1] if found else None

    def verify(self, problem, completion):
        got = self.extract(completion)
        try:
            return Verdict(got is not None and Fraction(got) == Fraction(problem.answer), got)
        except ValueError:
            return Verdict(False, got)

    def steps(self, trace):
        return trace.splitlines()


class CodeTask(HashTask):
    name = "mbpp"
    needs_code_execution = True


TASK = HashTask()
PROBLEMS = [Problem(str(i), f"question {i}", a, solution=f"human work\n#### {a}")
            for i, a in enumerate(["3", "1/2", "7", "10"])]


def fake_generator(outputs, seen=None):
    def generate(prompts, sampling):
        if seen is not None:
            seen.update(prompts=prompts, sampling=sampling)
        return [[o] for o in outputs]
    return generate


def test_answer_changing_paraphrases_are_rejected_and_counted():
    outputs = ["first 1 then 2\n#### 3",     # same answer: kept
               "a half\n#### 0.5",            # different text, both verified correct: kept
               "oops\n#### 8",                 # changed answer: rejected
               "   "]                          # empty: rejected
    result = paraphrase(PROBLEMS, TASK, generate_fn=fake_generator(outputs))
    assert [p.kept for p in result] == [True, True, False, False]
    assert result[2].reason == "final answer changed: '7' -> '8'"
    assert result[3].reason == "empty paraphrase"
    assert result[1].answer == "0.5" and result[1].answer_original == "1/2"
    assert rejection_rate(result) == 0.5
    assert [p.original for p in result] == [p.solution for p in PROBLEMS]


def test_paraphrase_without_final_answer_is_rejected():
    got = check_paraphrase(TASK, PROBLEMS[0], PROBLEMS[0].solution, "the answer is three")
    assert not got.kept and got.reason == "no final answer found in the paraphrase"


def test_a_wrong_original_must_keep_its_wrong_answer():
    problem = Problem("w", "q", "5")
    assert check_paraphrase(TASK, problem, "bad\n#### 4", "rewritten\n#### 4").kept
    assert not check_paraphrase(TASK, problem, "bad\n#### 4", "fixed\n#### 5").kept


def test_check_paraphrase_takes_the_grader_verdicts_when_given(monkeypatch):
    problem = PROBLEMS[1]  # gold 1/2
    # given verdicts are used as they are: no grading
    monkeypatch.setattr(grade, "grade_problems", lambda *a, **k: pytest.fail("graded again"))
    kept = check_paraphrase(TASK, problem, "x\n#### 1/2", "y\n#### 0.5", original_correct=True, text_correct=True)
    assert kept.kept and kept.reason == "different answer text, both verified correct"
    refused = check_paraphrase(TASK, problem, "x\n#### 1/2", "y\n#### 0.5", original_correct=True,
                               text_correct=False)
    assert not refused.kept and refused.reason == "final answer changed: '1/2' -> '0.5'"
    same = check_paraphrase(TASK, problem, "x\n#### 4", "y\n#### 4", original_correct=False, text_correct=False)
    assert same.kept and same.reason == "same final answer"
    monkeypatch.undo()
    # without them, check_paraphrase grades both texts itself, with the same outcome
    assert check_paraphrase(TASK, problem, "x\n#### 1/2", "y\n#### 0.5") == kept


def test_paraphrase_grades_originals_and_rewrites_in_one_batch(monkeypatch):
    calls = []
    real = grade.grade_problems

    def spy(task, problems, completions, **kwargs):
        calls.append(list(completions))
        return real(task, problems, completions, **kwargs)

    monkeypatch.setattr(grade, "grade_problems", spy)
    outputs = ["a\n#### 3", "b\n#### 0.5", "c\n#### 8", "d\n#### 10"]
    result = paraphrase(PROBLEMS, TASK, generate_fn=fake_generator(outputs))
    assert calls == [[p.solution for p in PROBLEMS] + outputs]
    assert [p.kept for p in result] == [True, True, False, True]


def test_prompt_comes_from_the_template_with_its_stop_strings():
    seen = {}
    paraphrase(PROBLEMS[:1], TASK, generate_fn=fake_generator(["#### 3"], seen),
               sampling=SamplingParams(stop=("END",), max_new_tokens=64))
    prompt = seen["prompts"][0]
    assert "question 0" in prompt and "human work\n#### 3" in prompt
    assert prompt.rstrip().endswith("Rewritten solution:")
    assert seen["sampling"].stop[0] == "END" and "Original solution:" in seen["sampling"].stop
    assert seen["sampling"].max_new_tokens == 64


def test_style_selects_the_template_entry(monkeypatch):
    seen = {}
    paraphrase(PROBLEMS[:1], TASK, generate_fn=fake_generator(["#### 3"], seen), style="micro")
    assert seen["prompts"][0] == "Question: question 0\nHint: human work\n#### 3\nAnswer:\n"
    # paraphrases are graded through cotrepro.grade now, so a task that runs code needs the opt-in
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(CodeExecutionNotAllowed):
        paraphrase(PROBLEMS[:1], CodeTask(), generate_fn=fake_generator(["#### 3"], seen))
    monkeypatch.setenv(ALLOW_ENV, "1")
    paraphrase(PROBLEMS[:1], CodeTask(), generate_fn=fake_generator(["#### 3"], seen))
    assert "Python" in seen["prompts"][0]


def test_explicit_traces_and_input_errors():
    result = paraphrase(PROBLEMS[:2], TASK, traces=["x\n#### 3", "y\n#### 2"],
                        generate_fn=fake_generator(["#### 3", "#### 2"]))
    assert [p.kept for p in result] == [True, True]
    with pytest.raises(ValueError, match="traces"):
        paraphrase(PROBLEMS[:2], TASK, traces=["x"], generate_fn=fake_generator(["#### 3"]))
    with pytest.raises(ValueError, match="solution"):
        paraphrase([Problem("n", "q", "1")], TASK, generate_fn=fake_generator(["#### 1"]))
    with pytest.raises(ValueError, match="generate_fn"):
        paraphrase(PROBLEMS[:1], TASK)
    with pytest.raises(ValueError):
        rejection_rate([])


def test_paraphrase_through_the_real_sampler_on_a_tiny_model():
    tokenizer = char_tokenizer()
    result = paraphrase(PROBLEMS[:2], TASK, model=tiny_llama(tokenizer), tokenizer=tokenizer,
                        sampling=SamplingParams(max_new_tokens=4), style="micro")
    assert len(result) == 2 and all(not p.kept for p in result)  # 4 random tokens hold no "####"
    assert rejection_rate(result) == 1.0
