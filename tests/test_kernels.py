"""The CPU kernel pinning (cotrepro/kernels.py): what it sets, when it does not, and that it takes effect."""

import os
import platform
import subprocess
import sys

import pytest

from cotrepro.kernels import OPT_OUT, PINNED, pin_cpu_kernels


def test_pins_all_three_libraries_on_x86():
    environ = {}
    assert pin_cpu_kernels(environ, "x86_64") == PINNED
    assert environ == PINNED


def test_a_variable_the_user_set_wins():
    environ = {"MKL_CBWR": "COMPATIBLE"}
    in_force = pin_cpu_kernels(environ, "x86_64")
    assert in_force["MKL_CBWR"] == "COMPATIBLE" and in_force["ATEN_CPU_CAPABILITY"] == "avx2"


@pytest.mark.parametrize("environ, machine", [({OPT_OUT: "1"}, "x86_64"), ({}, "aarch64"), ({}, "arm64")])
def test_nothing_is_set_when_opted_out_or_not_x86(environ, machine):
    before = dict(environ)
    assert pin_cpu_kernels(environ, machine) == {}
    assert environ == before


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the pinning applies to x86-64 only")
def test_importing_cotrepro_pins_torch_in_a_fresh_process():
    """The variables must be set before torch dispatches its first kernel: importing the package does it."""
    env = {k: v for k, v in os.environ.items() if k not in (*PINNED, OPT_OUT)}
    code = "import cotrepro, torch; torch.ones(2).sum(); print(torch.backends.cpu.get_cpu_capability())"
    pinned = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert pinned.stdout.strip() in ("AVX2", "DEFAULT")  # DEFAULT: a machine without AVX2
    bare = subprocess.run([sys.executable, "-c", code.replace("import cotrepro, ", "import ")], env=env,
                          capture_output=True, text=True, check=True)
    opted_out = subprocess.run([sys.executable, "-c", code], env={**env, OPT_OUT: "1"}, capture_output=True,
                               text=True, check=True)
    assert opted_out.stdout == bare.stdout  # the machine's own best path, as without cotrepro
