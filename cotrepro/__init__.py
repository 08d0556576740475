"""cotrepro: reproduce what language models learn from synthetic chain-of-thought traces.

Layout: `steps.py` is the table of the pipeline's steps; `experiments/<step>.py` holds each step's
params schema and logic, built on the engine modules (`generate`, `train`, `dpo`, `evaluate`,
`stepvalues`, `grade`, ...); `plots.py` and `findings.py` turn stored results into figures.

Engine modules import torch and transformers inside their functions, not at the top: every
step's params schema lives beside its code, and `cotrepro validate` loads them all without
paying seconds for torch (`tests/test_imports.py` holds this).

Importing the package pins the CPU kernels' vector path (`kernels.py`), so numbers regenerate
byte for byte across x86 machines.
"""

__version__ = "0.2.0"

# Before anything imports torch: every x86 machine runs the same CPU kernels (see kernels.py).
from cotrepro.kernels import pin_cpu_kernels as _pin_cpu_kernels  # noqa: E402

_pin_cpu_kernels()
