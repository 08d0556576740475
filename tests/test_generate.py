"""Sampling: per-prompt seeds, stop strings, length buckets, and resuming after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cotrepro.generate import HFBackend, SamplingParams, SeededSampler, sample, truncate_at_stop
from cotrepro.micro import tiny_random_model
from cotrepro.models import load_model
from cotrepro.store import JsonlStore

torch.set_num_threads(1)
PROMPTS = ["12 + 5 =", "The quick brown", "def add(a, b):", "Problem: 3 * 4", "x", "Solution: step by step, 20 - 7"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_llama")
    tiny_random_model("llama", out)
    return out


@pytest.fixture(scope="module")
def model_and_tokenizer(model_dir):
    return load_model(model_dir, device="cpu")


def test_sampling_repeats_for_a_seed_and_differs_across_seeds(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    params = SamplingParams(k=3, temperature=1.0, max_new_tokens=12, seed=7)
    first = sample(model, tokenizer, PROMPTS, params, progress=False)
    again = sample(model, tokenizer, PROMPTS, params, progress=False)
    other = sample(model, tokenizer, PROMPTS, SamplingParams(k=3, temperature=1.0, max_new_tokens=12, seed=8),
                   progress=False)
    assert first == again
    assert first != other
    assert all(len(c) == 3 for c in first)
    assert any(len(set(c)) > 1 for c in first)  # the k samples of a prompt are not copies


def test_a_prompt_gets_the_same_samples_in_any_batch(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    params = SamplingParams(k=2, temperature=1.0, max_new_tokens=10, seed=3, batch_size=12)
    together = sample(model, tokenizer, PROMPTS, params, progress=False)
    alone = [sample(model, tokenizer, [p], params, progress=False)[0] for p in reversed(PROMPTS)]
    assert together == alone[::-1]


def test_greedy_k_copies_and_stop_strings_cut(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    free = sample(model, tokenizer, PROMPTS[:2], SamplingParams(k=2, max_new_tokens=16), progress=False)
    assert all(c[0] == c[1] for c in free)
    text = free[0][0]
    stop = text[5:8]  # a string the unconstrained completion contains
    cut = sample(model, tokenizer, PROMPTS[:1], SamplingParams(max_new_tokens=16, stop=(stop,)), progress=False)
    assert cut[0][0] == text[:text.find(stop)]
    assert stop not in cut[0][0]


def test_truncate_at_stop_cuts_at_the_earliest_stop():
    assert truncate_at_stop("a\nb\n\nQuestion: c", ("Question:", "\n\n")) == "a\nb"
    assert truncate_at_stop("no stop here", ("###",)) == "no stop here"


def test_seeded_sampler_follows_the_softmax_and_top_p():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    rows = 4000
    sampler = SeededSampler(list(range(rows)), temperature=1.0, top_p=1.0, prompt_length=0)
    chosen = sampler(torch.zeros(rows, 0, dtype=torch.long), logits.repeat(rows, 1)).argmax(dim=1)
    freq = torch.bincount(chosen, minlength=4).float() / rows
    assert torch.allclose(freq, logits.softmax(0), atol=0.03)
    # probabilities 0.64, 0.24, 0.09, 0.03: the smallest set with mass >= 0.8 is the first two
    nucleus = SeededSampler(list(range(rows)), temperature=1.0, top_p=0.8, prompt_length=0)
    kept = nucleus(torch.zeros(rows, 0, dtype=torch.long), logits.repeat(rows, 1)).argmax(dim=1)
    assert set(kept.tolist()) == {0, 1}
    share_of_first = (kept == 0).float().mean().item()
    assert share_of_first == pytest.approx(0.644 / 0.881, abs=0.03)


def test_batches_are_bucketed_by_length(model_and_tokenizer, monkeypatch):
    model, tokenizer = model_and_tokenizer
    prompts = ["a " * n for n in (1, 9, 2, 8, 3, 7, 4, 6)]
    batches = []
    real = HFBackend.generate

    def spy(self, batch, sampling):
        batches.append(batch)
        return real(self, batch, sampling)

    monkeypatch.setattr(HFBackend, "generate", spy)
    out = sample(model, tokenizer, prompts, SamplingParams(k=2, max_new_tokens=3, batch_size=4), progress=False)
    assert len(out) == len(prompts) and all(len(c) == 2 for c in out)
    assert [len(b) for b in batches] == [2, 2, 2, 2]  # batch_size counts sequences: 2 prompts x k=2
    lengths = [sorted(len(p) for p in b) for b in batches]
    # longest first, and every prompt of a batch at least as long as any of a later batch
    assert all(shortest >= longest for (shortest, _), (_, longest) in zip(lengths, lengths[1:]))


def test_store_caches_by_sampling_params(model_and_tokenizer, tmp_path, monkeypatch):
    model, tokenizer = model_and_tokenizer
    store = tmp_path / "samples.jsonl"
    params = SamplingParams(temperature=0.7, max_new_tokens=5)
    first = sample(model, tokenizer, PROMPTS[:3], params, store=store, model_id="tiny", progress=False)
    calls = []
    monkeypatch.setattr(HFBackend, "generate", lambda self, batch, s: calls.append(batch) or [["?"]] * len(batch))
    assert sample(model, tokenizer, PROMPTS[:3], params, store=store, model_id="tiny", progress=False) == first
    assert calls == []
    hotter = SamplingParams(temperature=1.3, max_new_tokens=5)
    sample(model, tokenizer, PROMPTS[:3], hotter, store=store, model_id="tiny", progress=False)
    assert sum(len(b) for b in calls) == 3  # other params: nothing reused
    assert len(JsonlStore(store)) == 6


_KILLED_JOB = """
import sys, torch
torch.set_num_threads(1)
from cotrepro.generate import SamplingParams, sample
from cotrepro.models import load_model
model, tokenizer = load_model(sys.argv[1], device="cpu")
prompts = [f"Problem {i}: 12 + {i} =" for i in range(40)]
sample(model, tokenizer, prompts, SamplingParams(k=2, temperature=1.0, max_new_tokens=24, batch_size=2, seed=5),
       store=sys.argv[2], model_id="tiny", progress=False)
"""


def test_sigkilled_job_resumes_with_nothing_lost_or_duplicated(model_dir, model_and_tokenizer, tmp_path, monkeypatch):
    store = tmp_path / "killed.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    job = subprocess.Popen([sys.executable, "-c", _KILLED_JOB, str(model_dir), str(store)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and job.poll() is None:
        if store.exists() and store.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.05)
    assert job.poll() is None, f"the job ended before it could be killed: {job.stderr.read().decode()[-500:]}"
    job.send_signal(signal.SIGKILL)
    job.wait()
    job.stderr.close()
    survived = len(JsonlStore(store))
    assert 3 <= survived < 40

    model, tokenizer = model_and_tokenizer
    prompts = [f"Problem {i}: 12 + {i} =" for i in range(40)]
    params = SamplingParams(k=2, temperature=1.0, max_new_tokens=24, batch_size=2, seed=5)
    generated = []
    real = HFBackend.generate
    monkeypatch.setattr(HFBackend, "generate", lambda self, b, s: generated.extend(b) or real(self, b, s))
    resumed = sample(model, tokenizer, prompts, params, store=store, model_id="tiny", progress=False)
    assert len(generated) == 40 - survived  # only the missing prompts were generated
    lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(lines) == 40 and len({r["key"] for r in lines}) == 40
    monkeypatch.setattr(HFBackend, "generate", real)
    assert resumed == sample(model, tokenizer, prompts, params, progress=False)
