"""Where a task's rows come from: a local JSONL copy if there is one, else the Hugging Face hub.

Every task loader goes through `load_local_or_hub`, so that a local copy (the default in tests and
on machines without network) and the hub give the same raw rows to the task's `from_record`.
`subset` is the one rule for `limit`/`seed` shared by the tasks that shuffle.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from cotrepro.tasks.base import DataNotFound

T = TypeVar("T")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-blank line.

    Raises ValueError naming the file and the 1-based line number of a malformed line.
    """
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: malformed JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records


def load_local_or_hub(local_path: str | Path | None,
                      hub_loader: Callable[[], Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of `local_path` (JSONL) if that file exists, else `hub_loader()`.

    `local_path=None` means "no local copy": go to the hub directly. `hub_loader` should return raw
    rows (mapping them to Problems happens after, outside this function, so that a bug in a field
    mapping is never reported as missing data). Any failure of the hub (no network, no `datasets`,
    unknown dataset) is raised as DataNotFound naming the local path that was tried.
    """
    if local_path is not None and Path(local_path).is_file():
        return read_jsonl(local_path)
    try:
        return list(hub_loader())
    except DataNotFound:
        raise
    except Exception as e:  # the hub fails in many ways (network, auth, cache); all mean "no data"
        where = f"{local_path} does not exist" if local_path is not None else "no local data_dir given"
        raise DataNotFound(f"{where} and the hub copy could not be loaded: "
                           f"{type(e).__name__}: {e}") from e


def hub_rows(path: str, split: str, name: str | None = None) -> list[dict[str, Any]]:
    """All rows of one split of a hub dataset, as plain dicts (`datasets.load_dataset`)."""
    import datasets  # heavy: imported only when a local copy is missing

    return [dict(row) for row in datasets.load_dataset(path, name, split=split)]


def subset(items: Sequence[T], limit: int | None = None, seed: int | None = 0) -> list[T]:
    """The first `limit` items, after a shuffle seeded by `seed` (seed None: file order).

    Without a limit every item is returned in file order, whatever the seed: a full split is never
    reordered, so outputs line up with the source file. With a limit, the seeded shuffle makes a
    small sample representative of the split (MATH files are sorted by subject) and reproducible.
    """
    if limit is None:
        return list(items)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    chosen = list(items)
    if seed is not None:
        random.Random(seed).shuffle(chosen)
    return chosen[:limit]
