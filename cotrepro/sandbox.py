"""Run one untrusted Python program, contained, and say whether it passed.

Model-generated code (MBPP completions) is run only on explicit opt-in. Each program runs in a
fresh `python -I -S` subprocess (isolated, no site-packages: the standard library only, which
also halves start-up time), in a fresh working directory, with a scrubbed environment,
resource limits (CPU, address space, file size, process count, no core dumps), its own session,
and a wall-clock limit after which everything it started is killed. Where bubblewrap works, the
program also runs inside it: a read-only view of /, private /tmp, no network, its own pid
namespace, /root hidden. When the runner is root, the program drops to a per-run unprivileged
uid, because a process-count limit does not hold for root and because a separate uid keeps it
from signalling or reading the runner.

A program passes only when every statement ran: the harness reads a per-run nonce from stdin
before running the candidate and prints it last, so an early `sys.exit(0)` or `os._exit(0)` does
not pass. This guards against accidental early exits, not against a program written to read the
nonce out of the harness and forge a pass.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import os
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ALLOW_ENV = "COTREPRO_ALLOW_CODE_EXECUTION"
ISOLATION_ENV = "COTREPRO_SANDBOX"  # "auto" (default), "bwrap" or "limits"
_TAIL_CHARS = 2000
_SANDBOX_UID_BASE = 100_000_000  # far above any real account; uid = base + pid * 16 + slot
_uid_slots = itertools.count()
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1

# Runs in the child before any candidate code: drop privileges (when asked), take the nonce,
# run the candidate as __main__, then print the nonce as the last line.
_HARNESS = r"""
import os, sys
if len(sys.argv) > 2:
    uid = int(sys.argv[2])
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
sys.argv = sys.argv[1:2]
nonce = sys.stdin.readline().strip()
sys.stdin.close()
main = type(sys)("__main__")  # a fresh __main__ module, as `python file` gives
main.__file__ = sys.argv[0]
sys.modules["__main__"] = main
with open(main.__file__, encoding="utf-8") as f:
    code = compile(f.read(), main.__file__, "exec")
del f
exec(code, main.__dict__)
sys.stdout.flush()
os.write(1, ("\n" + nonce + "\n").encode())
"""


class CodeExecutionNotAllowed(RuntimeError):
    """Raised when generated code would run without the user's explicit opt-in."""

    def __init__(self) -> None:
        super().__init__("generated code runs only with --allow-code-execution or "
                         f"{ALLOW_ENV}=1")


@dataclass(frozen=True)
class RunResult:
    """What happened to one program."""

    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error" | "killed"
    returncode: int | None
    stdout_tail: str
    stderr_tail: str
    duration_s: float


def code_execution_allowed(allow: bool | None = None) -> bool:
    """The explicit opt-in: `allow` if given, else env COTREPRO_ALLOW_CODE_EXECUTION=1."""
    return allow if allow is not None else os.environ.get(ALLOW_ENV, "") == "1"


def require_code_execution(allow: bool | None = None) -> None:
    """Raise CodeExecutionNotAllowed unless the user opted in."""
    if not code_execution_allowed(allow):
        raise CodeExecutionNotAllowed()


def run_program(source: str, *, timeout_s: float = 5.0, cpu_s: int | None = None,
                memory_mb: int = 1024, max_file_mb: int = 16, max_procs: int = 64,
                allow: bool | None = None, isolation: str | None = None) -> RunResult:
    """Run `source` contained and report whether it ran to the end with exit code 0.

    `isolation` is "bwrap", "limits" or "auto" (default: env COTREPRO_SANDBOX, else "auto",
    which uses bubblewrap when it works here and otherwise limits alone, with one warning).
    """
    require_code_execution(allow)
    start = time.monotonic()
    try:
        compile(source, "candidate.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return RunResult(False, "error", None, "", f"{type(exc).__name__}: {exc}"[-_TAIL_CHARS:],
                         time.monotonic() - start)
    use_bwrap = _choose_isolation(isolation) == "bwrap"
    limits = _Limits(cpu_s or int(timeout_s) + 1, memory_mb, max_file_mb, max_procs)
    return _run(source, timeout_s, limits, use_bwrap, start)


@dataclass(frozen=True)
class _Limits:
    cpu_s: int
    memory_mb: int
    max_file_mb: int
    max_procs: int


_PROBE_LIMITS = _Limits(cpu_s=30, memory_mb=1024, max_file_mb=16, max_procs=64)


def _choose_isolation(isolation: str | None) -> str:
    choice = isolation or os.environ.get(ISOLATION_ENV) or "auto"
    if choice not in ("auto", "bwrap", "limits"):
        raise ValueError(f"unknown isolation {choice!r}; choose auto, bwrap or limits")
    if choice == "auto":
        return "bwrap" if bwrap_works() else "limits"
    if choice == "bwrap" and not bwrap_works():
        raise RuntimeError("isolation 'bwrap' requested but bubblewrap does not work here")
    return choice


@functools.cache
def bwrap_works() -> bool:
    """Whether bubblewrap is installed and can run a program here (probed once per process)."""
    if shutil.which("bwrap") is None:
        log.warning("bubblewrap not found: generated code runs with resource limits only "
                    "(no network or filesystem isolation)")
        return False
    probe = _run("print('ok')", 30.0, _PROBE_LIMITS, True, time.monotonic())
    if not probe.passed:
        log.warning("bubblewrap does not work here (%s): generated code runs with resource "
                    "limits only (no network or filesystem isolation)",
                    probe.stderr_tail.strip()[-300:])
    return probe.passed


def drops_privileges(use_bwrap: bool) -> bool:
    """Whether programs run as a separate unprivileged uid (only possible, and needed, as root).

    Inside bubblewrap the Python installation is always reachable. Without it the sandbox uid
    must be able to read it; where it cannot (e.g. a pyenv under /root), programs stay root and
    the process-count limit does not hold.
    """
    if os.geteuid() != 0:
        return False
    return use_bwrap or _unprivileged_python_works()


@functools.cache
def _unprivileged_python_works() -> bool:
    probe = _run("import json, re, collections", 30.0, _PROBE_LIMITS, False, time.monotonic(),
                 drop=True)
    if not probe.passed:
        log.warning("running as root and the Python installation is not readable by an "
                    "unprivileged uid: generated code runs as root without a process-count limit")
    return probe.passed


def _run(source: str, timeout_s: float, limits: _Limits, use_bwrap: bool, start: float,
         drop: bool | None = None) -> RunResult:
    if drop is None:
        drop = drops_privileges(use_bwrap)
    uid = _SANDBOX_UID_BASE + os.getpid() * 16 + next(_uid_slots) % 16 if drop else None
    base = Path(tempfile.mkdtemp(prefix="cotrepro-run-"))
    try:
        os.chmod(base, 0o711)  # the sandbox uid may enter base, but list or touch nothing in it
        work = base / "work"
        work.mkdir()
        (work / "candidate.py").write_text(source, encoding="utf-8")
        if uid is not None:
            os.chown(work, uid, uid)
            os.chown(work / "candidate.py", uid, uid)
        python = [sys.executable, "-I", "-S", "-c", _HARNESS, str(work / "candidate.py")]
        if uid is not None:
            python.append(str(uid))
        argv = _bwrap_argv(work) + python if use_bwrap else python
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "HOME": str(work)}
        nonce = secrets.token_hex(16)
        with open(base / "stdout", "w+b") as out, open(base / "stderr", "w+b") as err:
            returncode, timed_out = _spawn_and_wait(argv, env, work, nonce, timeout_s, limits,
                                                    out, err, uid)
            stdout, stderr = _tail(out), _tail(err)
        if use_bwrap and returncode > 128:  # bwrap reports a child killed by signal N as 128+N
            returncode = 128 - returncode
        lines = stdout.rstrip("\n").split("\n")
        finished = lines[-1] == nonce
        if finished:
            stdout = "\n".join(lines[:-1]).rstrip("\n")
        status = _status(returncode, timed_out, finished)
        return RunResult(status == "passed", status, returncode, stdout[-_TAIL_CHARS:],
                         stderr[-_TAIL_CHARS:], time.monotonic() - start)
    except OSError as exc:
        return RunResult(False, "error", None, "", f"could not run the program: {exc}",
                         time.monotonic() - start)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _bwrap_argv(work: Path) -> list[str]:
    """Read-only /, private /tmp and /root, writable `work`, fresh namespaces (no network)."""
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--perms", "1777", "--tmpfs", "/tmp", "--perms", "0755", "--tmpfs", "/root"]
    # /root is hidden (it holds tokens and caches); re-expose the Python installation if it
    # lives there (pyenv), with traversable parents.
    for prefix in sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix,
                                                        os.path.dirname(sys.executable))}):
        if prefix.startswith("/root/"):
            parts = Path(prefix).relative_to("/root").parts
            for depth in range(1, len(parts)):
                argv += ["--perms", "0755", "--dir", str(Path("/root", *parts[:depth]))]
            argv += ["--ro-bind", prefix, prefix]
    # `work` keeps its host path; its parent (inside the private /tmp, usually) must be enterable.
    argv += ["--perms", "0711", "--dir", str(work.parent), "--bind", str(work), str(work),
             "--chdir", str(work)]
    if os.geteuid() == 0:  # privileged bwrap; the harness itself drops to the sandbox uid
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                 "--unshare-cgroup-try"]
    else:
        argv += ["--unshare-all"]
    return argv + ["--die-with-parent", "--new-session", "--"]


def _spawn_and_wait(argv, env, work, nonce, timeout_s, limits, out, err, uid):
    """Start the program, feed it the nonce, wait up to timeout_s, then reap all it started."""
    nproc = limits.max_procs if uid is not None or os.geteuid() == 0 else \
        _count_processes(os.getuid()) + limits.max_procs  # NPROC counts all of our own too

    def set_limits() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        memory = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = limits.max_file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # If the runner itself is killed (the grader kills a worker that overruns), take the
        # program (or bwrap, whose --die-with-parent then ends the rest) down with it.
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=work,
                            env=env, preexec_fn=set_limits, start_new_session=True,
                            close_fds=True)
    try:
        try:
            proc.stdin.write((nonce + "\n").encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        timed_out = not _wait_exited(proc.pid, timeout_s)
    finally:
        # The leader has exited (or is killed here) but is not reaped yet, so its pid, which is
        # also the session and group id, cannot have been reused by an unrelated process.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _reap(proc.pid, uid)
        returncode = proc.wait()
    return returncode, timed_out


def _wait_exited(pid: int, timeout_s: float) -> bool:
    """Wait until `pid` exits without reaping it; False when timeout_s passed first."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            return bool(select.select([fd], [], [], timeout_s)[0])
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.005)
    return False


def _reap(session: int, uid: int | None) -> None:
    """Kill every straggler: the sandbox uid's processes, the session's, and their pid namespaces.

    Repeats until none is left, so processes forked while we kill are caught too.
    """
    own_ns = _pid_ns(os.getpid())
    namespaces: set[str] = set()
    for _ in range(200):
        victims = []
        for pid, owner, sid in _processes():
            if (uid is not None and owner == uid) or sid == session:
                victims.append(pid)
                ns = _pid_ns(pid)
                if ns is not None and ns != own_ns:
                    namespaces.add(ns)  # its other members are caught from the next scan on
            elif namespaces and _pid_ns(pid) in namespaces:
                victims.append(pid)
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    log.warning("could not reap every process of a sandboxed program (session %d)", session)


def _processes():
    """(pid, uid, session id) of every live, non-zombie process visible in /proc."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            owner = entry.stat().st_uid
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            yield int(entry.name), owner, int(fields[3])


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _count_processes(uid: int) -> int:
    return sum(1 for _, owner, _ in _processes() if owner == uid)


def _tail(file) -> str:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(max(0, size - 64 * 1024))
    return file.read().decode("utf-8", errors="replace")


def _status(returncode: int, timed_out: bool, finished: bool) -> str:
    if timed_out or returncode == -signal.SIGXCPU:
        return "timeout"
    if returncode < 0:
        return "killed"
    return "passed" if returncode == 0 and finished else "failed"
