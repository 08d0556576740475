"""One vLLM session for tests/engines/test_vllm.py, in its own process: vLLM starts an engine
process (spawned, hence the `__main__` guard), and a rerun in a fresh process is what the
reproducibility test compares against.

    python _vllm_run.py MODEL_DIR FORM OUT_JSON

FORM "model": the backend gets a model loaded with `cotrepro.models.load_model` (it stands for
its folder); FORM "path": the folder itself. Every call goes through `cotrepro.generate.sample`
with `SamplingParams(backend="vllm")`, as a params file selects it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace


def main(model_dir: str, form: str, out: str) -> None:
    from _micro import PROMPTS, SAMPLED, STOP, OTHER_PROMPTS
    from cotrepro.generate import make_backend, sample
    from cotrepro.models import load_model
    from cotrepro.sections import SamplingParams

    if form == "model":
        model, tokenizer = load_model(model_dir)
    else:
        model, tokenizer = model_dir, None
    started = time.time()
    backend = make_backend(model, tokenizer, "vllm")  # loads the engine; sample() below reuses it
    load_s = time.time() - started

    def run(prompts, sampling):
        return sample(model, tokenizer, prompts, sampling, progress=False)

    greedy = SamplingParams(max_new_tokens=24, stop=STOP, backend="vllm", batch_size=64)
    sampled = SamplingParams(**SAMPLED, stop=STOP, backend="vllm")
    started = time.time()
    results = {
        "backend": type(backend).__name__,
        "greedy": run(PROMPTS, greedy),
        "greedy_eos": run(PROMPTS, replace(greedy, stop=())),               # ends at EOS, not a stop string
        "together": run(PROMPTS, sampled),                                  # one vLLM call of 16 prompts
        "alone": run(PROMPTS, replace(sampled, batch_size=sampled.k)),      # one call per prompt
        "reversed": run(PROMPTS[::-1], sampled)[::-1],                      # the same batch, another order
        "mixed": run(PROMPTS[:5] + OTHER_PROMPTS, sampled)[:5],             # other batch-mates
    }
    results["load_s"], results["sample_s"] = load_s, time.time() - started
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
