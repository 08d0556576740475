import itertools
import math
import re

import pytest
import torch
from _tiny import char_tokenizer, tiny_llama

from cotrepro.evaluate import (completion_nlls, evaluate, evaluate_job, maj_at_k, mean_nll, outcomes, pass_at_k, scores,
                               unparsed_rate)
from cotrepro.tasks.base import Problem, Verdict

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = char_tokenizer()
    return tiny_llama(tokenizer), tokenizer


class HashTask:
    """Stand-in task: answer after '####'. Named gsm8k so the real prompt templates give stops."""

    name = "gsm8k"
    needs_code_execution = False

    def prompt(self, problem, template="default"):
        return f"Q: {problem.question}\nA:"

    def extract(self, completion):
        found = re.findall(r"####\s*(\S+)", completion)
        return found[-1] if found else None

    def verify(self, problem, completion):
        got = self.extract(completion)
        if problem.answer == "":
            return Verdict(False, got, ungradable=True)
        return Verdict(got == problem.answer, got)

    def steps(self, trace):
        return trace.splitlines()


def brute_pass_at_k(n, c, k):
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_brute_force():
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    value = pass_at_k(10_000, 3, 100)
    assert value == pytest.approx(1 - math.comb(9997, 100) / math.comb(10_000, 100), rel=1e-9)
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 2, 6)


def test_maj_at_k_hand_cases():
    assert maj_at_k(["3", "4", "3"], [True, False, True])
    assert not maj_at_k(["4", "3", "4"], [False, True, False])
    # unparsed outputs do not vote, even when they are the most common
    assert maj_at_k([None, None, "7"], [False, False, True])
    assert not maj_at_k([None, None], [False, False])
    # a tie goes to the answer seen first
    assert not maj_at_k(["1", "2", "2", "1"], [False, True, True, False])
    assert maj_at_k(["2", "1", "1", "2"], [True, False, False, True])
    # only the first k answers vote; whitespace does not split votes
    assert maj_at_k([" 5", "5 ", "6", "6", "6"], [True, True, False, False, False], k=3)


def test_accuracy_denominators_on_a_hand_made_set():
    problems = [Problem(str(i), f"q{i}", a) for i, a in enumerate(["1", "2", "3", "4", ""])]
    completions = ["#### 1", "#### 2", "I don't know", "#### 5", "#### 9"]
    result = evaluate(None, None, HashTask(), problems,
                      generate_fn=lambda prompts, sampling: [[c] for c in completions])
    s = result.summary
    # the last problem has no gradable gold: out of every denominator
    assert s["n"] == 4 and s["n_ungradable"] == 1
    assert s["accuracy"] == pytest.approx(2 / 4)
    assert s["parse_failure_rate"] == pytest.approx(1 / 4)
    assert s["parsed_accuracy"] == pytest.approx(2 / 3)
    assert [r["correct"] for r in result.records] == [[True], [True], [False], [False], [False]]
    assert result.records[2]["extracted"] == [None]


def test_evaluate_passes_template_stops_and_k_to_the_generator():
    seen = {}

    def fake(prompts, sampling):
        seen["sampling"], seen["prompts"] = sampling, prompts
        return [["#### 1", "#### 2", "#### 1", "nothing"] for _ in prompts]

    problems = [Problem("a", "one?", "1"), Problem("b", "two?", "2")]
    result = evaluate(None, None, HashTask(), problems, k=4, temperature=0.7, seed=3,
                      max_new_tokens=50, generate_fn=fake)
    assert seen["sampling"].k == 4 and seen["sampling"].temperature == 0.7
    assert "Problem:" in seen["sampling"].stop  # the Shape of Thought template's stop string
    assert seen["prompts"] == ["Q: one?\nA:", "Q: two?\nA:"]
    s = result.summary
    assert s["accuracy"] == pytest.approx((2 + 1) / 8)
    assert s["pass@1"] == pytest.approx(3 / 8)
    assert s["pass@2"] == pytest.approx((pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2)) / 2)
    assert s["pass@4"] == 1.0
    assert s["maj@4"] == pytest.approx(0.5)  # "1" wins both votes: right for a, wrong for b


def test_evaluate_rejects_bad_generator_output_and_greedy_k():
    problems = [Problem("a", "one?", "1")]
    with pytest.raises(ValueError, match="completions"):
        evaluate(None, None, HashTask(), problems, generate_fn=lambda p, s: [])
    with pytest.raises(ValueError, match="greedy"):
        evaluate(None, None, HashTask(), problems, k=2, temperature=0.0, generate_fn=lambda p, s: [])


def test_evaluate_runs_the_real_sampler_on_a_tiny_model(tiny):
    model, tokenizer = tiny
    problems = [Problem("a", "1+1", "2"), Problem("b", "2+2", "4")]
    result = evaluate(model, tokenizer, HashTask(), problems, max_new_tokens=4)
    assert result.summary["n"] == 2
    assert all(len(r["completions"]) == 1 for r in result.records)
    assert result.summary["parse_failure_rate"] == 1.0  # a random model writes no "####"
    assert result.summary["accuracy"] == 0.0
    assert math.isnan(result.summary["parsed_accuracy"])  # nothing parsed: no parsed-only rate


def test_mean_nll_equals_hand_computation(tiny):
    model, tokenizer = tiny
    examples = [{"prompt": "Q: 5+12?\nA:", "completion": " 17"},
                {"prompt": "Hi", "completion": " there, friend"},
                {"prompt": "a longer prompt here", "completion": "x"}]
    total, count, per_example = 0.0, 0, []
    for ex in examples:
        ids = tokenizer(ex["prompt"] + ex["completion"], return_tensors="pt")["input_ids"]
        n_prompt = len(tokenizer(ex["prompt"])["input_ids"])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(ids).logits[0], dim=-1)
        nll = -sum(logprobs[t - 1, ids[0, t]].item() for t in range(n_prompt, ids.shape[1]))
        per_example.append((nll, ids.shape[1] - n_prompt))
        total, count = total + nll, count + ids.shape[1] - n_prompt
    got = completion_nlls(model, tokenizer, examples, batch_size=3)  # padded together
    for (nll, n), (ref_nll, ref_n) in zip(got, per_example):
        assert n == ref_n and nll == pytest.approx(ref_nll, rel=1e-4)
    assert [n for _, n in got] == [3, 14, 1]  # one token per character of each completion
    assert mean_nll(model, tokenizer, examples, batch_size=2) == pytest.approx(total / count, rel=1e-4)


def test_mean_nll_rejects_malformed_examples(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="prompt"):
        mean_nll(model, tokenizer, [{"text": "x"}])


def _hand_made():
    problems = [Problem(str(i), f"q{i}", a) for i, a in enumerate(["1", "2", "3", "4", ""])]
    completions = [["#### 1", "#### 3"], ["#### 2", "#### 2"], ["I don't know", "#### 3"], ["#### 5", "?"],
                   ["#### 9", "#### 9"]]
    return evaluate(None, None, HashTask(), problems, k=2, temperature=1.0,
                    generate_fn=lambda prompts, sampling: completions)


def test_outcomes_scores_and_unparsed_rate_of_a_stored_evaluation():
    import json

    record = json.loads(json.dumps(outcomes(_hand_made())))  # stored as JSON
    assert record["ids"] == ["0", "1", "2", "3", "4"] and record["k"] == 2
    assert record["correct"] == [[True, False], [True, True], [False, True], [False, False], [False, False]]
    assert record["extracted"][2] == [None, "3"] and record["ungradable"] == [False] * 4 + [True]
    assert record["completions"][3] == ["#### 5", "?"] and record["summary"]["n"] == 4
    # greedy scores: the first completion of each gradable problem
    assert scores(record).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert scores(record, k=1).tolist() == pytest.approx([0.5, 1.0, 0.5, 0.0])
    assert scores(record, k=2).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert scores(record, k=1).mean() == pytest.approx(record["summary"]["pass@1"])
    assert unparsed_rate(record) == pytest.approx(1 / 4)  # first completions; the ungradable one left out


class FlakyTask(HashTask):
    """A verifier that crashes on one completion: graded through cotrepro.grade, that item counts
    as wrong and the others are still graded."""

    bounded_verify = True

    def verify(self, problem, completion):
        if "boom" in completion:
            raise RuntimeError("grader bug")
        return super().verify(problem, completion)


def test_evaluate_grades_through_the_grader_and_survives_a_verifier_crash():
    problems = [Problem("a", "one?", "1"), Problem("b", "two?", "2")]
    result = evaluate(None, None, FlakyTask(), problems,
                      generate_fn=lambda prompts, sampling: [["#### 1"], ["#### 2 boom"]])
    assert [r["correct"] for r in result.records] == [[True], [False]]
    assert result.records[1]["extracted"] == [None]
    assert result.summary["accuracy"] == 0.5


def test_evaluate_job_writes_outcomes_and_resumes_from_its_generations(tmp_path, monkeypatch):
    import json

    from cotrepro import generate

    out = tmp_path / "cache" / "evaluate" / "key"  # a job folder: the run root is three levels up
    out.mkdir(parents=True)
    spec = {"model": {"spec": {"name": "tiny:llama"}}, "task": {"name": "arith", "template": "default"},
            "data": None, "split": "test", "n": 3, "problem_seed": 0, "max_new_tokens": 6, "batch_size": 4,
            "samples": 1, "temperature": 0.0, "seed": 0}
    evaluate_job(spec, out)
    record = json.loads((out / "outcomes.json").read_text())
    assert len(record["ids"]) == 3 and record["k"] == 1 and len(scores(record)) == 3
    assert (out / "generations.jsonl").is_file() and (tmp_path / "tiny_models").is_dir()
    monkeypatch.setattr(generate.DecodeBackend, "generate", lambda *a, **k: pytest.fail("generated again"))
    (out / "outcomes.json").unlink()
    evaluate_job(spec, out)
    assert json.loads((out / "outcomes.json").read_text()) == record
