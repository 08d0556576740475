"""The micro world: tokenizer, model builder, corpora and (very small) cached pretraining."""

from __future__ import annotations

import json
import random
import time

import pytest
import torch
from transformers import AutoTokenizer

from cotrepro.micro import (MicroModelParams, PretrainParams, build_corpora, build_micro_model, build_tokenizer,
                            pretrain_micro, _wrong_step_trace)
from cotrepro.models import load_model
from cotrepro.tasks import arith

torch.set_num_threads(1)


def test_tokenizer_splits_digits_round_trips_and_reloads(tmp_path):
    texts = ["Question: Ann has 12 apples.\nAnswer:\n12 + 345 = 357\n#### 357"] * 20
    tokenizer = build_tokenizer(texts, vocab_size=320, out_dir=tmp_path)
    ids = tokenizer("12345")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert [tokenizer.decode([i]) for i in ids[1:]] == list("12345")
    odd = "  tabs\tand ünïcode ✓\n\nline"
    assert tokenizer.decode(tokenizer(odd)["input_ids"], skip_special_tokens=True) == odd
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(texts[0])["input_ids"] == tokenizer(texts[0])["input_ids"]
    assert {reloaded.bos_token, reloaded.eos_token, reloaded.pad_token} == {"<|bos|>", "<|eos|>", "<|pad|>"}


def test_micro_model_shape_and_bad_heads():
    tokenizer = build_tokenizer(["1 + 2 = 3"] * 5, vocab_size=300)
    params = MicroModelParams(arch="qwen2", n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64)
    model = build_micro_model(params, tokenizer, seed=1)
    assert model.config.model_type == "qwen2" and model.config.vocab_size == len(tokenizer)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
    same = build_micro_model(params, tokenizer, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    with pytest.raises(ValueError, match="must divide"):
        build_micro_model(MicroModelParams(d_model=30, n_heads=4), tokenizer)


def test_wrong_step_traces_have_one_false_step_and_a_wrong_answer():
    rng = random.Random(0)
    problems = arith.generate_problems(60, seed=3)
    traces = [(p, _wrong_step_trace(p, rng)) for p in problems]
    traces = [(p, t) for p, t in traces if t is not None]
    assert len(traces) > 40
    for problem, trace in traces:
        checks = arith.check_steps(trace)
        assert len(checks) == len(problem.meta["steps"])
        assert sum(not c.correct for c in checks) == 1  # later steps are right, from the wrong value
        assert not arith.TASK.verify(problem, trace).correct


def test_corpora_keep_multi_step_solutions_from_the_student():
    params = PretrainParams(n_step_lines=20, n_one_step=30, n_statements=30, n_other_tasks=10, n_multi_step=40)
    corpora = build_corpora(params)

    def solved_steps(doc):  # step lines of a solved arith problem (0 if the document is not one)
        return doc.count(" = ") if "####" in doc and doc.startswith("Question:") else 0

    assert max(solved_steps(d) for d in corpora["student"]) == 1
    assert sum(solved_steps(d) >= 2 for d in corpora["teacher"]) >= 35
    test_questions = {p.question for p in arith.TASK.load("test", limit=200)}
    assert not any(q in d for d in corpora["teacher"] for q in test_questions)


def test_tiny_pretraining_gives_loadable_cached_checkpoints(tmp_path):
    shape = MicroModelParams(n_layers=1, d_model=32, n_heads=2, n_kv_heads=1, d_ff=64)
    params = PretrainParams(student=shape, teacher=shape, n_step_lines=16, n_one_step=16, n_statements=16,
                            n_other_tasks=4, n_multi_step=16, student_steps=3, teacher_steps=3, batch_size=8,
                            n_eval=4, vocab_size=300)
    paths = pretrain_micro(params, tmp_path)
    report = json.loads(open(paths["report"]).read())
    assert 0.0 <= report["teacher"]["multi_step_accuracy"] <= 1.0
    assert "one_step_accuracy" in report["student"]
    for role in ("student", "teacher"):
        curve = json.loads(open(f"{paths[role]}/loss.json").read())
        assert curve and all(point["loss"] > 0 for point in curve)
        model, tokenizer = load_model(paths[role], device="cpu")
        assert model.num_parameters() == report[role]["params"]
    started = time.time()
    assert pretrain_micro(params, tmp_path) == paths
    assert time.time() - started < 1.0  # the second call is a cache hit
