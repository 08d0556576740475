"""One CPU code path for every x86 machine, so a rerun elsewhere computes the same floats.

PyTorch, MKL and oneDNN pick their vector code at run time from what the CPU offers: AVX-512 on
this project's machines, AVX2 on older ones. The paths round differently (pilot p15 in LOG.md: the
micro teacher's logits differ bitwise between them), and a greedy answer near a tie then flips on
another machine, which moves a committed table by one answer in thousands. Pinning all three
libraries to AVX2, which nearly every x86-64 server of the last decade has, gives one path
everywhere. On this project's AVX-512 machine the AVX2 paths were faster, not slower (LOG.md,
2026-12-04).

The settings are environment variables each library reads when it first dispatches a kernel, so
`pin_cpu_kernels` runs when `cotrepro` is imported, before any tensor exists; child processes
(papermill kernels, the job pool, `accelerate launch` ranks) inherit them. A variable the user
already set wins, and `COTREPRO_NATIVE_KERNELS=1` turns the pinning off (the machine's own
path: not comparable across machines). On other machines (aarch64) nothing is set: their kernels
differ from x86 ones anyway.
"""

from __future__ import annotations

import os
import platform

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
OPT_OUT = "COTREPRO_NATIVE_KERNELS"


def pin_cpu_kernels(environ: dict | None = None, machine: str | None = None) -> dict[str, str]:
    """Set the pinning variables not already set; return the ones in force (empty when not pinned)."""
    environ = os.environ if environ is None else environ
    machine = platform.machine() if machine is None else machine
    if machine.lower() not in ("x86_64", "amd64") or environ.get(OPT_OUT, "") not in ("", "0"):
        return {}
    for name, value in PINNED.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in PINNED}


def kernel_settings() -> dict[str, str]:
    """The kernel variables of this process, for a run's manifest."""
    return {name: os.environ[name] for name in (*PINNED, OPT_OUT) if os.environ.get(name)}
