"""Monte Carlo step values on traces with known per-step success rates, the cheap strategies,
per-step pairs, and KV-cache sharing in the real rollout sampler."""

from __future__ import annotations

import pytest
import torch

from cotrepro.pairs import per_step_pairs
from cotrepro.stepvalues import Rollout, sample_rollouts, step_prefixes, step_values
from cotrepro.tasks.base import Problem, Verdict
from _tiny import char_tokenizer, tiny_llama

torch.set_num_threads(1)

PROMPT = "Q: toy\n"
PROBLEM = Problem("p1", "toy", "1")


class LineTask:
    """Steps are non-empty lines; a completion is correct when its last line is 'ANSWER 1'."""

    def steps(self, trace: str) -> list[str]:
        return [line for line in trace.splitlines() if line.strip()]

    def verify(self, problem: Problem, completion: str) -> Verdict:
        last = (completion.strip().splitlines() or [""])[-1]
        return Verdict(correct=last == f"ANSWER {problem.answer}", extracted=last)


def scripted_rollouts(success: dict[int, float], n_tokens: int = 3):
    """A rollout function whose success rate from the prefix through step i is `success[i]`
    (key -1: the bare prompt). Records which prefixes were rolled out."""
    calls = []

    def rollout(context: str, n: int, seed: int) -> list[Rollout]:
        done = len(LineTask().steps(context[len(PROMPT):])) - 1
        calls.append(done)
        n_good = round(success[done] * n)
        return [Rollout("\nANSWER 1" if j < n_good else "\nANSWER 0", n_tokens) for j in range(n)]

    return rollout, calls


TRACE = "s1: ok\ns2: ok\ns3: slip\ns4: lucky\ns5: ANSWER 0\n"
Q_RAW = {-1: 1.0, 0: 0.75, 1: 0.5, 2: 0.0, 3: 0.25, 4: 0.0}


def values(strategy="exhaustive", table=Q_RAW, trace=TRACE, **kw):
    rollout, calls = scripted_rollouts(table)
    sv = step_values(None, None, LineTask(), PROBLEM, PROMPT, trace, rollouts=4, strategy=strategy,
                     rollout_fn=rollout, **kw)
    return sv, calls


def test_exhaustive_values_best_of_k_advantages_and_critical_step():
    sv, calls = values(best_of=2, value_of_prompt=True)
    assert sv.steps == ["s1: ok", "s2: ok", "s3: slip", "s4: lucky", "s5: ANSWER 0"]
    assert sv.q == [0.75, 0.5, 0.0, 0.25, 0.0]
    assert sv.Q == pytest.approx([0.9375, 0.75, 0.0, 0.4375, 0.0])  # 1 - (1 - q)^2
    assert sv.advantages == pytest.approx([0.9375 - 1.0, -0.1875, -0.75, 0.4375, -0.4375])
    assert sv.critical_step == 2  # first of the two steps at Q = 0
    assert sorted(calls) == [-1, 0, 1, 2, 3, 4] and sv.rolled_out == 6
    assert sv.tokens_generated == 6 * 4 * 3


def test_without_best_of_q_is_Q_and_the_first_advantage_needs_the_prompt_value():
    sv, calls = values()
    assert sv.Q == sv.q and sv.advantages[0] is None and -1 not in calls
    assert sv.advantages[1:] == pytest.approx([-0.25, -0.5, 0.25, -0.25])


def test_critical_step_is_the_first_lowest_even_above_zero():
    sv, _ = values(table={0: 0.5, 1: 0.25, 2: 0.5, 3: 0.25, 4: 0.75})
    assert sv.critical_step == 1
    sv_early, calls = values("early_stop", table={0: 0.5, 1: 0.25, 2: 0.5, 3: 0.25, 4: 0.75})
    assert sv_early.critical_step == 1 and calls == [0, 1, 2, 3, 4]  # never hit 0: no early stop


def test_early_stop_stops_at_the_first_zero_and_agrees_with_exhaustive():
    sv, calls = values("early_stop", best_of=5)
    assert calls == [0, 1, 2]
    assert sv.critical_step == values(best_of=5)[0].critical_step == 2
    assert sv.q == [0.75, 0.5, 0.0, None, None] and sv.advantages[3:] == [None, None]
    assert sv.tokens_generated == 3 * 4 * 3


def test_bisect_finds_the_first_step_at_the_floor_of_a_monotone_trace():
    trace = "".join(f"s{i}\n" for i in range(8))
    table = {0: 1.0, 1: 0.75, 2: 0.5, 3: 0.25, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.0}
    sv, calls = values("bisect", table=table, trace=trace)
    assert sv.critical_step == 4 == values(table=table, trace=trace)[0].critical_step
    assert calls[0] == 7 and len(calls) <= 4  # the last step, then a bisection over 7 candidates


def test_per_step_pair_cuts_the_negative_after_its_critical_step():
    sv, _ = values(best_of=5)
    late, _ = values(table={0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 0.0})
    correct = {"p1": ["s1: ok\ns2: fine\nANSWER 1"], "p2": []}
    pairs = per_step_pairs({"p1": PROMPT, "p2": "Q: none\n"}, correct, {"p1": [sv, late], "p2": [sv]})
    assert pairs[0] == {"prompt": PROMPT, "chosen": correct["p1"][0], "rejected": "s1: ok\ns2: ok\ns3: slip",
                        "rejected_is_prefix": True, "problem_id": "p1"}
    assert pairs[1]["rejected"] == TRACE.rstrip("\n") and pairs[1]["rejected_is_prefix"] is False
    assert len(pairs) == 2  # p2 has no correct solution to pair with


def test_bad_inputs_raise_one_clear_error():
    with pytest.raises(ValueError, match="does not occur in the trace"):
        step_prefixes("a\nb\n", ["a", "c"])
    with pytest.raises(ValueError, match="unknown strategy"):
        values("greedy")
    with pytest.raises(ValueError, match="rollouts must be at least 1"):
        step_values(None, None, LineTask(), PROBLEM, PROMPT, TRACE, rollouts=0)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2"])
def test_rollouts_from_a_shared_prefix_cache_match_independent_sampling(arch):
    from cotrepro.micro import tiny_random_model

    model, tok = tiny_random_model(arch)
    context = "Problem: 12 + 5 = 17\n3 * 4 ="
    shared = sample_rollouts(model, tok, context, 4, seed=7, max_new_tokens=10)
    ids = tok(context, return_tensors="pt")["input_ids"]
    torch.manual_seed(7)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                             num_return_sequences=4, max_new_tokens=10, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
    independent = [tok.decode(row[ids.shape[1]:], skip_special_tokens=True) for row in out]
    assert [r.text for r in shared] == independent
    assert len(set(independent)) > 1  # sampled, not greedy
    assert all(1 <= r.n_tokens <= 10 for r in shared)


def test_step_values_with_a_real_model_counts_generated_tokens():
    tok = char_tokenizer()
    model = tiny_llama(tok).eval()
    sv = step_values(model, tok, LineTask(), PROBLEM, PROMPT, "a\nb\nANSWER 0", rollouts=3,
                     max_new_tokens=5, seed=1)
    assert len(sv.q) == 3 and all(v is not None for v in sv.q)
    assert sv.rolled_out == 3 and 3 * 3 <= sv.tokens_generated <= 3 * 3 * 5
    again = step_values(model, tok, LineTask(), PROBLEM, PROMPT, "a\nb\nANSWER 0", rollouts=3,
                        max_new_tokens=5, seed=1)
    assert again == sv  # seeded
