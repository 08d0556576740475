"""Monte Carlo step values on traces with known per-step success rates, the cheap strategies,
per-step pairs, and the real rollout sampler (`generate.sample_range`: contexts run once for all
their rollouts, ranges drawn in pieces)."""

from __future__ import annotations

import pytest
import torch

from cotrepro.pairs import per_step_pairs
from cotrepro.generate import SamplingParams, sample_range
from cotrepro.generate_baseline import GenerateBackend
from cotrepro.sections import StepValueParams
from cotrepro.stepvalues import STRATEGIES, Rollout, step_prefixes, step_values, value_traces
from cotrepro.tasks.base import Problem, Verdict
from cotrepro.tiny import tiny_random_model
from _tiny import char_tokenizer, tiny_llama

torch.set_num_threads(1)

PROMPT = "Q: toy\n"
PROBLEM = Problem("p1", "toy", "1")


class LineTask:
    """Steps are non-empty lines; a completion is correct when its last line is 'ANSWER 1'."""

    name = "line"
    needs_code_execution = False
    bounded_verify = True  # graded in process by cotrepro.grade (no worker pool for a test task)

    def steps(self, trace: str) -> list[str]:
        return [line for line in trace.splitlines() if line.strip()]

    def verify(self, problem: Problem, completion: str) -> Verdict:
        last = (completion.strip().splitlines() or [""])[-1]
        return Verdict(correct=last == f"ANSWER {problem.answer}", extracted=last)


def scripted_rollouts(success: dict[int, float], n_tokens: int = 3, rollouts: int = 4):
    """A rollout function whose success rate from the prefix through step i is `success[i]`
    (key -1: the bare prompt): of the `rollouts` rollouts of a prefix, the first
    round(success * rollouts) succeed. Records which prefixes were rolled out (once per call)."""
    calls = []

    def rollout(context: str, first: int, count: int) -> list[Rollout]:
        done = len(LineTask().steps(context[len(PROMPT):])) - 1
        calls.append(done)
        n_good = round(success[done] * rollouts)
        return [Rollout("\nANSWER 1" if j < n_good else "\nANSWER 0", n_tokens) for j in range(first, first + count)]

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
    # rolled_out counts rollouts drawn (it counted prefixes rolled out: re-pinned to the new field)
    assert sorted(calls) == [-1, 0, 1, 2, 3, 4] and sv.rolled_out == 6 * 4
    assert sv.tokens_generated == 6 * 4 * 3
    assert sv.exact == [True] * 5


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
    assert sv.tokens_generated == 3 * 4 * 3 and sv.rolled_out == 3 * 4
    assert sv.exact == [True, True, True, False, False]


def test_bisect_finds_the_first_step_at_the_floor_of_a_monotone_trace():
    trace = "".join(f"s{i}\n" for i in range(8))
    table = {0: 1.0, 1: 0.75, 2: 0.5, 3: 0.25, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.0}
    sv, calls = values("bisect", table=table, trace=trace)
    assert sv.critical_step == 4 == values(table=table, trace=trace)[0].critical_step
    assert calls[0] == 7 and len(calls) <= 4  # the last step, then a bisection over 7 candidates


def test_bisect_searches_for_the_last_steps_value_and_misses_a_repaired_slip():
    """bisect (re-pinned: the first step at the LAST step's Q, assuming Q never rises again) is
    exact on a monotone trace whose floor is above 0, and wrong when a later step repairs an
    earlier slip: it returns the first step at the final value, not the slip."""
    trace = "".join(f"s{i}\n" for i in range(8))
    floor = {0: 1.0, 1: 1.0, 2: 0.75, 3: 0.75, 4: 0.5, 5: 0.25, 6: 0.25, 7: 0.25}
    sv, calls = values("bisect", table=floor, trace=trace)
    assert sv.critical_step == 5 == values(table=floor, trace=trace)[0].critical_step
    assert calls[0] == 7 and len(calls) <= 4
    repaired = {0: 1.0, 1: 0.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 0.25, 6: 0.25, 7: 0.25}
    assert values(table=repaired, trace=trace)[0].critical_step == 1  # the slip
    assert values("early_stop", table=repaired, trace=trace)[0].critical_step == 1
    sv, _ = values("bisect", table=repaired, trace=trace)
    assert sv.critical_step == 5  # not exact here: kept for the benchmark
    assert sv.q[1] is None  # the slip was never rolled out


def test_first_success_stops_each_prefix_at_its_first_success_and_is_exact():
    table = {0: 0.75, 1: 0.5, 2: 0.25, 3: 0.0, 4: 0.0}  # success rollouts come first
    rollout, calls = scripted_rollouts(table)
    sv = step_values(None, None, LineTask(), PROBLEM, PROMPT, TRACE, rollouts=4, strategy="first_success",
                     rollout_fn=rollout, chunk=1)
    exhaustive = values(table=table)[0]
    assert sv.critical_step == exhaustive.critical_step == 3
    assert calls == [0, 1, 2, 3, 3, 3, 3]  # one rollout each until a zero prefix, drawn in chunks of 1
    assert sv.q[:3] == [1.0, 1.0, 1.0] and sv.exact == [False, False, False, True, False]  # lower bounds
    assert sv.q[3] == 0.0 and sv.q[4] is None and sv.rolled_out == 3 + 4
    # no prefix at zero: every rollout is drawn and the answer is the exhaustive one
    never = {0: 0.5, 1: 0.25, 2: 0.5, 3: 0.25, 4: 0.75}
    rollout, calls = scripted_rollouts(never)
    sv = step_values(None, None, LineTask(), PROBLEM, PROMPT, TRACE, rollouts=4, strategy="first_success",
                     rollout_fn=rollout, chunk=2)
    assert sv.q == values(table=never)[0].q and sv.critical_step == 1 and sv.exact == [True] * 5
    assert sv.rolled_out == 5 * 4


def test_shared_rollouts_count_for_the_later_prefixes_they_pass_through():
    calls = []

    def rollout(context, first, count):  # from step 0, even rollouts repeat steps 2-3 and fail
        done = len(LineTask().steps(context[len(PROMPT):])) - 1
        calls.append((done, first, count))
        repeat = "\ns2: ok\ns3: slip\nANSWER 0"
        return [Rollout((repeat if j % 2 == 0 else "\nANSWER 1") if done == 0 else "\nANSWER 0", 1)
                for j in range(first, first + count)]

    shared = step_values(None, None, LineTask(), PROBLEM, PROMPT, TRACE, rollouts=4, strategy="first_success",
                         rollout_fn=rollout, share=True)
    assert calls == [(0, 0, 4), (1, 0, 2)]  # step 1 already holds 2 failures: 2 own rollouts decide it
    assert shared.critical_step == 1 and shared.q[:3] == [0.5, 0.0, 0.0] and shared.rolled_out == 4 + 4 + 2
    calls.clear()
    alone = step_values(None, None, LineTask(), PROBLEM, PROMPT, TRACE, rollouts=4, strategy="first_success",
                        rollout_fn=rollout)
    assert calls == [(0, 0, 4), (1, 0, 4)] and alone.critical_step == 1
    # a prefix is passed through only where a token can end: "s2: ok" is not in "s2: okay"
    from cotrepro.stepvalues import _shared
    assert _shared(["a", "a\nb = 38"], 0, "a\nb = 380\n") == [] and _shared(["a", "a\nb = 38"], 0, "a\nb = 38\nc") == [1]


def test_every_strategy_asks_for_disjoint_ranges_of_rollouts():
    seen = {}

    def rollout(context, first, count):
        done = len(LineTask().steps(context[len(PROMPT):])) - 1
        drawn = set(range(first, first + count))
        assert not drawn & seen.setdefault(done, set())  # never the same rollout twice
        seen[done] |= drawn
        return [Rollout("\nANSWER 1" if j % 3 == 0 else "\nANSWER 0", 1) for j in drawn]

    for strategy in STRATEGIES:
        seen.clear()
        step_values(None, None, LineTask(), PROBLEM, PROMPT, TRACE, rollouts=5, strategy=strategy,
                    rollout_fn=rollout, value_of_prompt=True)
        assert all(indices == set(range(len(indices))) for indices in seen.values())  # 0..n-1, in order


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
        step_values(None, None, LineTask(), PROBLEM, PROMPT, TRACE, rollouts=0, rollout_fn=lambda c, f, n: [])


def test_zero_rollouts_with_the_model_sampler_raise_one_clear_error():
    with pytest.raises(ValueError, match="rollouts must be at least 1"):
        step_values(None, None, LineTask(), PROBLEM, PROMPT, TRACE, rollouts=0)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2"])
def test_rollouts_from_a_shared_prefix_cache_match_independent_sampling(arch):
    """`sample_range` runs a context once and repeats its cache for all its rollouts; the
    rollouts equal those of sampling every copy of the context independently (transformers
    `generate`, one row per copy, the same per-row seeds), and those of each context alone."""
    model, tok = tiny_random_model(arch)
    context = "Problem: 12 + 5 = 17\n3 * 4 ="
    kw = dict(temperature=1.0, max_new_tokens=10, seed=7)
    shapes = []
    forward = model.forward

    def counting_forward(*args, **kwargs):
        shapes.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    model.forward = counting_forward
    shared = sample_range(model, tok, [(context, 0, 4)], **kw)[0]
    del model.forward
    n_context = len(tok(context)["input_ids"])
    assert shapes[0] == (1, n_context)  # the context is run through the model once for its four rollouts
    assert all(rows <= 4 and length == 1 for rows, length in shapes[1:])  # then one token per live rollout
    independent = GenerateBackend(model, tok).generate(
        [context], SamplingParams(k=4, temperature=1.0, max_new_tokens=10, seed=7))[0]
    assert [r.text for r in shared] == independent
    assert len(set(independent)) > 1  # sampled, not greedy
    assert all(1 <= r.n_tokens <= 10 for r in shared)
    # several contexts (two of them extending one prefix) and ranges in one batched call
    others = ["Problem: 12 + 5 = 17\n3 * 4 = 12\n", "x"]
    requests = [(context, 0, 2), (others[0], 0, 3), (context, 2, 2), (others[1], 1, 2)]
    together = sample_range(model, tok, requests, **kw)
    alone = [sample_range(model, tok, [r], **kw)[0] for r in requests]
    assert together == alone
    assert together[0] + together[2] == shared  # rollouts 0-1 and 2-3 drawn in two ranges: the four at once


def test_step_values_with_a_real_model_counts_generated_tokens():
    tok = char_tokenizer()
    model = tiny_llama(tok).eval()
    sv = step_values(model, tok, LineTask(), PROBLEM, PROMPT, "a\nb\nANSWER 0", rollouts=3,
                     max_new_tokens=5, seed=1)
    assert len(sv.q) == 3 and all(v is not None for v in sv.q)
    assert sv.rolled_out == 3 * 3 and 3 * 3 <= sv.tokens_generated <= 3 * 3 * 5
    again = step_values(model, tok, LineTask(), PROBLEM, PROMPT, "a\nb\nANSWER 0", rollouts=3,
                        max_new_tokens=5, seed=1)
    assert again == sv  # seeded


def test_value_traces_batches_traces_and_agrees_with_one_trace_at_a_time(tmp_path, monkeypatch):
    tok = char_tokenizer()
    model = tiny_llama(tok).eval()
    traces = ["a\nb\nANSWER 0", "a\nc\nANSWER 1", "d\nANSWER 1"]
    items = [(PROBLEM, PROMPT, t) for t in traces]
    params = StepValueParams(rollouts=3, best_of=None, strategy="exhaustive", temperature=1.0, max_new_tokens=5,
                             batch_size=8)
    store = tmp_path / "rollouts.jsonl"
    batched = value_traces(model, tok, LineTask(), items, params, seed=1, store=store)
    single = [step_values(model, tok, LineTask(), PROBLEM, PROMPT, t, rollouts=3, max_new_tokens=5, seed=1)
              for t in traces]
    assert batched == single
    assert batched[0] == step_values(model, tok, LineTask(), PROBLEM, PROMPT, traces[0], rollouts=3,
                                     max_new_tokens=5, seed=1)  # test_step_values_with_a_real_model's values
    # the rollouts were stored as they were sampled: a rerun samples nothing
    from cotrepro import generate

    monkeypatch.setattr(generate.DecodeBackend, "decode", lambda *a, **k: pytest.fail("sampled again"))
    assert value_traces(model, tok, LineTask(), items, params, seed=1, store=store) == batched
