"""Quiet libraries: the progress bars and warnings the experiments do not need, off at their source.

A notebook cell that fine-tunes fifteen models should show one progress bar (cotrepro's own, per
loop), not fifteen "Tokenizing train dataset" bars, "Writing model shards" bars and a deprecation
warning per step. Each library is silenced through its own switch, so a real error still shows.
"""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    """Silence transformers, datasets, TRL and peft chatter (idempotent)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # forked workers would warn otherwise
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # notebooks run without ipywidgets: tqdm.auto warns once on import (datasets imports it)
    warnings.filterwarnings("ignore", message="IProgress not found")
    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for name in ("trl", "peft", "accelerate", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft|accelerate)\b")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(trl|peft)\b")
