"""The run store: one directory per experiment and params hash, and crash-safe JSONL.

Layout (the root defaults to `runs/`, git-ignored):

    runs/<experiment>/<params-hash>/
        params.yaml      the resolved params that made this run
        manifest.json    package version, git commit, seeds, library versions, start time
        *.jsonl          results, appended one record per line

Appends are crash-safe: each record is one `os.write` of one complete line on an `O_APPEND` file,
followed by fsync. A process killed mid-write (SIGKILL) can at worst leave a torn last line with no
newline; `JsonlStore` drops that line on open (truncating the file back to the last complete
record), so a restart resumes with nothing lost that was acknowledged and nothing duplicated.
Records carry a `key`; `JsonlStore.append` refuses a key it already holds, and `done` tells a job
which keys it can skip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from cotrepro.kernels import kernel_settings

DEFAULT_ROOT = Path(os.environ.get("COTREPRO_RUNS", "runs"))
TRACKED_LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "math_verify",
                     "tokenizers", "numpy", "papermill")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the same data always gives the same string."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short content hash of any JSON-able object (dataclasses included)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def cache_key(*, model: str, revision: str | None = None, adapter: str | None = None,
              template: str | None = None, template_version: int | None = None,
              sampling: Any = None, seed: int | None = None, backend: str | None = None,
              **extra: Any) -> str:
    """The key of a cached generation: everything that can change what a model writes.

    Covers model id and revision, adapter, prompt-template name and version, sampling params,
    seed and backend; `extra` takes anything else a caller knows matters (e.g. the task name).
    """
    return stable_hash(dict(model=model, revision=revision, adapter=adapter, template=template,
                            template_version=template_version, sampling=sampling, seed=seed,
                            backend=backend, **extra), length=16)


class JsonlStore:
    """An append-only JSONL file of keyed records that survives being killed mid-write."""

    def __init__(self, path: str | Path, key: str = "key"):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, dict] = {}
        self._recover()

    def _recover(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        for line_no, line in enumerate(data.splitlines(keepends=True), start=1):
            if not line.endswith(b"\n"):
                break  # torn final write: drop it
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if good_end + len(line) == len(data):
                    break  # a garbled last line is a torn write too
                raise ValueError(f"{self.path}:{line_no}: malformed record in the middle of the file") from None
            self._records.setdefault(str(record[self.key]), record)
            good_end += len(line)
        if good_end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: object) -> bool:
        return str(key) in self._records

    def __iter__(self) -> Iterator[dict]:
        return iter(list(self._records.values()))

    @property
    def done(self) -> set[str]:
        """Keys already stored: the work a resumed job skips."""
        return set(self._records)

    def get(self, key: str) -> dict | None:
        return self._records.get(str(key))

    def append(self, record: dict) -> bool:
        """Store `record` durably. Returns False (and writes nothing) if its key is already stored."""
        k = str(record[self.key])
        if k in self._records:
            return False
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            while written < len(line):  # os.write may be partial for very large lines
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        self._records[k] = record
        return True

    def extend(self, records: Iterable[dict]) -> int:
        return sum(self.append(r) for r in records)


def git_commit(cwd: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def library_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclasses.dataclass(frozen=True)
class RunDir:
    """A run directory: `root/<step>/<params hash>`."""

    path: Path

    @classmethod
    def locate(cls, step: str, params: Any, root: str | Path | None = None, inputs: dict | None = None) -> RunDir:
        """The run directory of `step` under these params (not created). `inputs`: what else the
        results depend on (model files, upstream runs), hashed with the params when given."""
        from cotrepro.params import to_dict

        key = to_dict(params) if not inputs else {"params": to_dict(params), "inputs": inputs}
        return cls(Path(root or DEFAULT_ROOT) / step / stable_hash(key))

    @classmethod
    def open(cls, step: str, params: Any, root: str | Path | None = None,
             seeds: Iterable[int] = (), inputs: dict | None = None) -> RunDir:
        """Create (or reopen) the run directory of `step` under these params."""
        from cotrepro import __version__
        from cotrepro.params import to_dict

        run = cls.locate(step, params, root, inputs)
        run.path.mkdir(parents=True, exist_ok=True)
        params_file = run.path / "params.yaml"
        if not params_file.exists():
            _atomic_write(params_file, yaml.safe_dump({"step": step, **to_dict(params)}, sort_keys=False))
        manifest = run.path / "manifest.json"
        if not manifest.exists():
            info = {
                "step": step,
                "params_hash": run.path.name,
                "cotrepro_version": __version__,
                "git_commit": git_commit(Path(__file__).parent),
                "seeds": list(seeds),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "libraries": library_versions(),
                "cpu_kernels": kernel_settings(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            _atomic_write(manifest, json.dumps(info, indent=2))
        return run

    def jsonl(self, name: str, key: str = "key") -> JsonlStore:
        return JsonlStore(self.path / f"{name}.jsonl", key=key)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.path / name
        _atomic_write(path, json.dumps(obj, indent=2, default=str))
        return path

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write a whole JSONL file at once (atomically: a reader sees the old file or the new one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
