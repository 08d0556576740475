"""Hostile programs stay contained: each returns not-passed within its limit and leaves nothing.

Every test runs under each isolation that works here ("bwrap" where bubblewrap works, and the
"limits" fallback). What a mode cannot contain is skipped with the reason, never asserted loosely.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from cotrepro import sandbox
from cotrepro.sandbox import CodeExecutionNotAllowed, run_program

REPO = Path(__file__).resolve().parents[1]
MODES = (["bwrap"] if sandbox.bwrap_works() else []) + ["limits"]


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def run(source: str, mode: str, **kwargs):
    return run_program(source, allow=True, isolation=mode, **kwargs)


def separate_uid(mode: str) -> bool:
    return sandbox.drops_privileges(mode == "bwrap")


def contained(mode: str) -> bool:
    """Other processes are out of reach: own pid namespace or a separate uid."""
    return mode == "bwrap" or separate_uid(mode)


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def lingering_child(marker: str) -> str:
    """Program text that starts a sleeper (marker in its command line) in a new session."""
    return ("import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)  # {marker}'],"
            " start_new_session=True)\n")


@pytest.fixture
def marker():
    return f"cotrepro-marker-{uuid.uuid4().hex}"


def test_legitimate_program_passes(mode):
    result = run("def add(a, b):\n    return a + b\nprint('hello')\nassert add(2, 3) == 5\n",
                 mode, timeout_s=10)
    assert result.passed and result.status == "passed"
    assert result.stdout_tail == "hello"


def test_failed_assert_fails(mode):
    result = run("assert 1 + 1 == 3\n", mode, timeout_s=10)
    assert result.status == "failed" and "AssertionError" in result.stderr_tail


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)"])
def test_early_exit_zero_does_not_pass(mode, exit_call):
    result = run(f"{exit_call}\nassert False\n", mode, timeout_s=10)
    assert result.returncode == 0 and not result.passed and result.status == "failed"


def test_syntax_error_is_an_error_without_running():
    result = run_program("def f(:\n", allow=True)
    assert result.status == "error" and "SyntaxError" in result.stderr_tail


def test_infinite_loop_times_out_and_leaves_nothing(mode, marker):
    if mode == "limits" and not separate_uid(mode):
        pytest.skip("limits alone as one uid cannot reap a child that left the session (setsid)")
    start = time.monotonic()
    result = run(lingering_child(marker) + "while True:\n    pass\n", mode, timeout_s=1.5)
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - start < 5
    assert processes_with(marker) == []


def test_cpu_limit_stops_a_busy_program(mode):
    result = run("while True:\n    pass\n", mode, timeout_s=10, cpu_s=1)
    assert result.status == "timeout" and result.duration_s < 5


def test_memory_bomb_is_contained(mode, marker):
    result = run(f"# {marker}\nblocks = []\nwhile True:\n    blocks.append(bytearray(2**26))\n",
                 mode, timeout_s=3, memory_mb=256)
    assert not result.passed and result.status in ("failed", "killed")
    assert "MemoryError" in result.stderr_tail or result.status == "killed"
    assert result.duration_s < 3


def test_output_flood_is_cut_by_file_size_limit(mode):
    result = run("while True:\n    print('x' * 1000)\n", mode, timeout_s=5, max_file_mb=1)
    # Python ignores SIGXFSZ, so the write raises "File too large" instead of the clock running out
    assert result.status == "failed" and "File too large" in result.stderr_tail


def test_fork_bomb_is_contained(mode, marker):
    if not (separate_uid(mode) or mode == "bwrap"):
        # As root without a separate uid the process-count limit does not hold: never run it.
        pytest.skip("run only where programs get a sandbox uid or bwrap's own pid namespace")
    # Bounded even if it escaped: depth 4, 5 children each (at most 781 sleeping processes).
    bomb = ("import os, sys, time\n"
            "depth = int(sys.argv[1])\n"
            "if depth < 4:\n"
            "    for _ in range(5):\n"
            "        try:\n"
            "            pid = os.fork()\n"
            "        except OSError:\n"
            "            print('fork refused', flush=True)\n"
            "            break\n"
            "        if pid == 0:\n"
            "            os.execv(sys.executable, [sys.executable, sys.argv[0], str(depth + 1)])\n"
            "        time.sleep(0.05)\n"
            "time.sleep(120)\n")
    program = (f"import subprocess, sys\nopen('bomb-{marker}.py', 'w').write({bomb!r})\n"
               f"subprocess.run([sys.executable, 'bomb-{marker}.py', '0'])\n")
    result = run(program, mode, timeout_s=3, max_procs=12)
    assert result.status == "timeout"
    assert "fork refused" in result.stdout_tail  # the limit, not the clock, stopped it
    assert processes_with(marker) == []


def test_writes_outside_the_work_dir_do_not_land(mode, marker):
    if mode != "bwrap":
        pytest.skip("without bubblewrap, world-writable directories such as /tmp are writable")
    targets = [Path("/tmp") / marker, REPO / marker]
    program = (f"for path in {[str(t) for t in targets]!r}:\n"
               "    try:\n        open(path, 'w').write('x')\n"
               "    except OSError:\n        pass\n")
    try:
        assert run(program, mode, timeout_s=10).passed
        assert not any(t.exists() for t in targets)
    finally:
        for t in targets:
            t.unlink(missing_ok=True)


def test_repo_is_not_writable_by_a_separate_uid(mode, marker):
    if not contained(mode):
        pytest.skip("limits alone run as the test's own uid, which may write the repo")
    target = REPO / marker
    try:
        result = run(f"open({str(target)!r}, 'w').write('x')\n", mode, timeout_s=10)
        assert result.status == "failed" and not target.exists()
    finally:
        target.unlink(missing_ok=True)


def test_environment_secrets_are_not_visible(mode, marker, monkeypatch):
    secret = f"s3cret-{marker}"
    monkeypatch.setenv("COTREPRO_TEST_SECRET", secret)
    program = (
        "import os\n"
        f"secret = {secret!r}\n"
        "if any(secret in v for v in os.environ.values()): print('ENV-LEAK')\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        if secret.encode() in open(f'/proc/{pid}/environ', 'rb').read():\n"
        "            print('PROC-LEAK')\n"
        "    except OSError:\n"
        "        pass\n")
    result = run(program, mode, timeout_s=10)
    assert result.passed
    assert "ENV-LEAK" not in result.stdout_tail
    if contained(mode):
        assert "PROC-LEAK" not in result.stdout_tail


def test_network_is_unreachable(mode):
    if mode != "bwrap":
        pytest.skip("the limits-only fallback does not contain network access")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        program = ("import socket\n"
                   f"socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')\n")
        result = run(program, mode, timeout_s=5)
        assert result.status == "failed"
        with pytest.raises(socket.timeout):
            listener.accept()


def test_program_cannot_kill_its_runner(mode):
    if not contained(mode):
        pytest.skip("limits alone as the test's own uid cannot stop a kill of the runner")
    program = ("import os\n"
               "for pid in (os.getppid(), " + str(os.getpid()) + "):\n"
               "    try:\n        os.kill(pid, 9)\n    except OSError:\n        pass\n")
    result = run(program, mode, timeout_s=10)
    assert result.status in ("passed", "failed")  # we are still here to read it


def test_execution_requires_opt_in(monkeypatch):
    monkeypatch.delenv(sandbox.ALLOW_ENV, raising=False)
    with pytest.raises(CodeExecutionNotAllowed, match="--allow-code-execution"):
        run_program("print(1)")
    monkeypatch.setenv(sandbox.ALLOW_ENV, "1")
    assert run_program("print(1)").passed


def test_working_directory_is_fresh_and_removed(mode):
    first = run("import os\nopen('left.txt', 'w').write('x')\nprint(os.getcwd())\n", mode,
                timeout_s=10)
    second = run("import os\nassert not os.path.exists('left.txt')\n", mode, timeout_s=10)
    assert first.passed and second.passed
    assert not Path(first.stdout_tail).exists()
