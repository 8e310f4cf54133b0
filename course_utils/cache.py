"""The artifact cache: checkpoints later weeks need, built on demand and written atomically; atomic JSON files.

Each entry is a directory under ``COURSE_CACHE`` (default ``~/.cache/finetune-course``). It is
built in a temporary directory next to its final place and renamed into place only when the
build finished, so a run killed half-way never leaves an entry that loads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch


def cache_root() -> Path:
    """Where cached artifacts live: $COURSE_CACHE, else ~/.cache/finetune-course."""
    root = os.environ.get("COURSE_CACHE") or Path.home() / ".cache" / "finetune-course"
    return Path(root).expanduser()


def cached_dir(key: str, build: Callable[[Path], None], root: Path | None = None) -> Path:
    """Return the cache directory for key, calling build(tmp_dir) to fill it first if missing.

    build writes everything into the empty directory it is given; only when it returns is that
    directory renamed to its final name. If two processes race, the first rename wins.
    """
    root = Path(root) if root else cache_root()
    final = root / key
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{key}-"))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a lost race: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def clear_stale_temporaries(root: Path | None = None) -> int:
    """Delete leftovers of interrupted builds; return how many were removed."""
    root = Path(root) if root else cache_root()
    stale = list(root.glob(".tmp-*")) if root.exists() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def write_json_atomic(path: Path, obj) -> Path:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(_jsonable(obj), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path
