"""What every benchmark writes beside its numbers: the machine, and the throughput `cotrepro plan` reads."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
THROUGHPUT = RESULTS / "throughput.json"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """One line: CPU, cores, torch threads and version, accelerator, load average now."""
    import torch

    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only"
    return (f"{cpu_name()} ({os.cpu_count()} cores), {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, {device}{load}")


def record_throughput(table: str, **values: float) -> None:
    """Merge measured rates (e.g. sample_tokens_per_s) into bench/results/throughput.json, under
    this machine's kind (cpu or cuda), for `cotrepro plan`'s estimates. Each rate keeps the date,
    the machine it was measured on (the benchmarks may run on different ones) and `table`, what
    it was read from."""
    import torch

    kind = "cuda" if torch.cuda.is_available() else "cpu"
    data = json.loads(THROUGHPUT.read_text()) if THROUGHPUT.exists() else {}
    entry = data.setdefault(kind, {})
    entry.update(values)
    for name in values:
        entry.setdefault("measured_on", {})[name] = f"{time.strftime('%Y-%m-%d')}, {describe()} ({table})"
    RESULTS.mkdir(parents=True, exist_ok=True)
    THROUGHPUT.write_text(json.dumps(data, indent=2) + "\n")
