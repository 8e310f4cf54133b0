"""The artifact cache: checkpoints later weeks need, built on demand and written atomically.

Each entry is a directory under ``COURSE_CACHE`` (default ``~/.cache/finetune-course``). It is
built in a temporary directory next to its final place and renamed into place only when the
build finished, so a run killed half-way never leaves an entry that loads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


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
