"""The run store: run directories, cache keys, and JSONL that survives SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cotrepro.store import JsonlStore, RunDir, cache_key, stable_hash


def test_append_skips_duplicate_keys_and_reopens(tmp_path):
    store = JsonlStore(tmp_path / "r.jsonl")
    assert store.append({"key": "a", "v": 1})
    assert not store.append({"key": "a", "v": 2})
    store.append({"key": "b", "v": 3})
    again = JsonlStore(tmp_path / "r.jsonl")
    assert [r["v"] for r in again] == [1, 3]
    assert again.done == {"a", "b"}


def test_torn_last_line_is_dropped_and_file_repaired(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a", "v": 1}\n{"key": "b", "v"')
    store = JsonlStore(path)
    assert store.done == {"a"}
    assert path.read_text() == '{"key": "a", "v": 1}\n'
    store.append({"key": "b", "v": 2})
    assert [json.loads(l)["key"] for l in path.read_text().splitlines()] == ["a", "b"]


def test_garbage_in_the_middle_names_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "c"}\n')
    with pytest.raises(ValueError, match=r"r\.jsonl:2: malformed record"):
        JsonlStore(path)


WRITER = r"""
import sys, time
from cotrepro.store import JsonlStore
store = JsonlStore(sys.argv[1])
for i in range(100000):
    if str(i) in store:
        continue
    store.append({"key": str(i), "payload": "x" * (i % 5000)})
    print(i, flush=True)
"""


def test_sigkill_mid_write_resumes_without_loss_or_duplicates(tmp_path):
    path = tmp_path / "r.jsonl"
    acknowledged = -1
    for _ in range(3):  # kill it three times at arbitrary points, then let it finish a slice
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            if line:
                acknowledged = max(acknowledged, int(line))
            if acknowledged >= 0 and int(line or 0) % 97 == 13:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = JsonlStore(path)
    keys = [json.loads(l)["key"] for l in path.read_text().splitlines()]
    assert len(keys) == len(set(keys)), "duplicated records"
    assert {str(i) for i in range(acknowledged + 1)} <= store.done, "an acknowledged record was lost"
    assert keys == [str(i) for i in range(len(keys))], "records out of order or a gap"


def test_cache_key_covers_everything_that_changes_a_generation():
    base = dict(model="m", revision="r", adapter=None, template="t", template_version=1,
                sampling={"temperature": 0.7}, seed=0, backend="hf")
    key = cache_key(**base)
    assert key == cache_key(**base)
    for field, other in [("model", "m2"), ("revision", "r2"), ("adapter", "a"), ("template", "t2"),
                         ("template_version", 2), ("sampling", {"temperature": 0.8}), ("seed", 1),
                         ("backend", "vllm")]:
        assert cache_key(**{**base, field: other}) != key, field


def test_run_dir_records_params_and_provenance(tmp_path):
    params = {"experiment": "x", "lr": 0.1}
    run = RunDir.open("x", params, root=tmp_path, seeds=[0, 1])
    assert run.path == tmp_path / "x" / stable_hash(params)
    manifest = run.read_json("manifest.json")
    assert manifest["seeds"] == [0, 1]
    assert manifest["libraries"]["torch"]
    assert "cotrepro_version" in manifest and "git_commit" in manifest
    # the step it belongs to first, then the params as given
    assert (run.path / "params.yaml").read_text() == "step: x\nexperiment: x\nlr: 0.1\n"
    assert RunDir.open("x", params, root=tmp_path).path == run.path
    assert RunDir.open("x", {**params, "lr": 0.2}, root=tmp_path).path != run.path
