"""Sampling: per-prompt seeds, stop strings, length buckets, resuming after SIGKILL, the package's
decoder against transformers `generate`, and sample ranges (the Monte Carlo rollouts)."""

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

from cotrepro.generate_baseline import GenerateBackend, SeededSampler
from cotrepro.generate import (DecodeBackend, SamplingParams, make_backend,
                               row_seeds, sample, sample_range, truncate_at_stop)
from cotrepro.models import load_model
from cotrepro.stepvalues import Rollout
from cotrepro.store import JsonlStore
from cotrepro.tiny import tiny_random_model

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
    real = DecodeBackend.generate

    def spy(self, batch, sampling):
        batches.append(batch)
        return real(self, batch, sampling)

    monkeypatch.setattr(DecodeBackend, "generate", spy)
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
    monkeypatch.setattr(DecodeBackend, "generate", lambda self, batch, s: calls.append(batch) or [["?"]] * len(batch))
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
    real = DecodeBackend.generate
    monkeypatch.setattr(DecodeBackend, "generate", lambda self, b, s: generated.extend(b) or real(self, b, s))
    resumed = sample(model, tokenizer, prompts, params, store=store, model_id="tiny", progress=False)
    assert len(generated) == 40 - survived  # only the missing prompts were generated
    lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(lines) == 40 and len({r["key"] for r in lines}) == 40
    monkeypatch.setattr(DecodeBackend, "generate", real)
    assert resumed == sample(model, tokenizer, prompts, params, progress=False)


# ---------------------------------------------------------------- the decoder against `generate`


def _varied(model, seed=0):
    """A tiny random model whose greedy text varies: at the default initialisation (std 0.02) the
    residual stream is the last token's embedding and greedy decoding repeats it forever, so a
    stop string would cut every completion at its first character and test nothing."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.dim() >= 2:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.5)
            elif "post_" in name and "norm" in name:  # gemma2's post-norms: let the blocks count
                weight.fill_(10.0)
    return model.eval()


def _mid_text_stops(texts, skip=3):
    """One two-character ASCII stop string per text that first occurs at position `skip` or later."""
    stops = []
    for text in texts:
        for i in range(skip, len(text) - 1):
            piece = text[i:i + 2]
            if piece.isascii() and piece.isprintable() and text.find(piece) == i and piece not in stops:
                stops.append(piece)
                break
    return tuple(stops)


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma2"])
def varied_model(request):
    model, tokenizer = tiny_random_model(request.param)
    return _varied(model), tokenizer


def test_decoder_greedy_output_equals_generate_with_and_without_stop_strings(varied_model):
    model, tokenizer = varied_model
    free = SamplingParams(k=2, max_new_tokens=24, batch_size=64)
    decoded = DecodeBackend(model, tokenizer).generate(PROMPTS, free)
    assert decoded == GenerateBackend(model, tokenizer).generate(PROMPTS, free)
    assert all(c[0] == c[1] for c in decoded)  # greedy: k identical copies
    texts = [c[0] for c in decoded]
    assert len(set(texts)) == len(texts)  # _varied did its job: the test can fail
    stops = _mid_text_stops(texts)
    assert len(stops) >= 3
    cut = SamplingParams(max_new_tokens=24, stop=stops)
    decoded_cut = DecodeBackend(model, tokenizer).generate(PROMPTS, cut)
    assert decoded_cut == GenerateBackend(model, tokenizer).generate(PROMPTS, cut)
    for (text,), full in zip(decoded_cut, texts):
        assert text == truncate_at_stop(full, stops)
        assert not any(s in text for s in stops)
    assert sum(0 < len(c[0]) < len(full) for c, full in zip(decoded_cut, texts)) >= 3  # cut mid-text


def test_decoder_samples_do_not_depend_on_the_batch(varied_model):
    """A row's samples are the same alone and in a batch whose other rows pad it, share its
    forward passes and leave it (at EOS or a stop string) at other steps."""
    model, tokenizer = varied_model
    backend = DecodeBackend(model, tokenizer)
    free = SamplingParams(k=3, temperature=1.0, max_new_tokens=16, seed=11)
    first = backend.generate(PROMPTS, free)
    stops = _mid_text_stops([c[0] for c in first])
    for params in (free, SamplingParams(k=3, temperature=1.0, top_p=0.9, max_new_tokens=16, seed=11, stop=stops)):
        together = backend.generate(PROMPTS, params)
        alone = [backend.generate([p], params)[0] for p in PROMPTS]
        assert together == alone
        assert backend.generate(PROMPTS[::-1], params) == together[::-1]
        assert any(len(set(c)) > 1 for c in together)  # sampled, not greedy
    with_stops = backend.generate(PROMPTS, SamplingParams(k=3, temperature=1.0, max_new_tokens=16, seed=11,
                                                          stop=stops))
    assert with_stops == [[truncate_at_stop(t, stops) for t in c] for c in first]


def test_make_backend_names():
    model, tokenizer = tiny_random_model("llama")
    assert isinstance(make_backend(model, tokenizer, "hf"), DecodeBackend)
    assert isinstance(make_backend(model, tokenizer, "generate"), GenerateBackend)
    assert SamplingParams().backend == "hf"
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend(model, tokenizer, "mystery")
    with pytest.raises(ValueError, match="needs a loaded model"):
        make_backend("some/path", tokenizer, "hf")


# ---------------------------------------------------------------- sample ranges


def test_row_seeds_of_a_range_are_those_of_the_full_draw():
    full = row_seeds(5, "a prompt", 0, 8)
    assert row_seeds(5, "a prompt", 3, 4) == full[3:7]
    assert len(set(full)) == 8 and row_seeds(6, "a prompt", 0, 8) != full


def test_sample_range_pieces_equal_the_full_draw_and_sample(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    kw = dict(temperature=1.0, max_new_tokens=10, seed=4)
    full = sample_range(model, tokenizer, [(p, 0, 6) for p in PROMPTS], **kw)
    assert all(len(r) == 6 and all(isinstance(x, Rollout) for x in r) for r in full)
    pieces = sample_range(model, tokenizer, [(p, 0, 2) for p in PROMPTS] + [(p, 2, 4) for p in PROMPTS], **kw)
    assert [a + b for a, b in zip(pieces[:len(PROMPTS)], pieces[len(PROMPTS):])] == full
    assert sample_range(model, tokenizer, [(PROMPTS[1], 3, 1)], **kw)[0] == full[1][3:4]
    # sample j of a context is completion j of `sample` with the same seed
    drawn = sample(model, tokenizer, PROMPTS, SamplingParams(k=6, temperature=1.0, max_new_tokens=10, seed=4),
                   progress=False)
    assert [[r.text for r in rollouts] for rollouts in full] == drawn
    assert all(1 <= r.n_tokens <= 10 for rollouts in full for r in rollouts)
    assert any(len({r.text for r in rollouts}) > 1 for rollouts in full)


def test_sample_range_stores_each_range_and_reads_it_back(model_and_tokenizer, tmp_path, monkeypatch):
    model, tokenizer = model_and_tokenizer
    store = tmp_path / "rollouts.jsonl"
    requests = [(p, 0, 3) for p in PROMPTS[:3]]
    kw = dict(temperature=1.0, max_new_tokens=8, seed=2, store=store, model_id="tiny")
    first = sample_range(model, tokenizer, requests, **kw)
    assert len(JsonlStore(store)) == 3
    monkeypatch.setattr(DecodeBackend, "decode", lambda *a, **k: pytest.fail("sampled again"))
    assert sample_range(model, tokenizer, requests, **kw) == first
