"""The artifact cache writes atomically: an interrupted build never leaves an entry that loads."""

import subprocess
import sys
import textwrap

import pytest
from course_utils.cache import cached_dir, clear_stale_temporaries


def test_builds_once_then_reuses(tmp_path):
    calls = []

    def build(out):
        calls.append(out)
        (out / "weights.txt").write_text("42")

    first = cached_dir("thing", build, root=tmp_path)
    second = cached_dir("thing", build, root=tmp_path)
    assert first == second and (first / "weights.txt").read_text() == "42"
    assert len(calls) == 1


def test_failed_build_leaves_nothing(tmp_path):
    def build(out):
        (out / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cached_dir("thing", build, root=tmp_path)
    assert not (tmp_path / "thing").exists()
    assert list(tmp_path.iterdir()) == []


def test_killed_build_leaves_no_loadable_entry(tmp_path):
    # A child process is killed (os._exit, no cleanup) in the middle of writing an entry.
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from course_utils.cache import cached_dir
        def build(out):
            (out / "config.json").write_text("{{}}")
            os._exit(9)
        cached_dir("model", build, root=Path({str(tmp_path)!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == 9
    assert not (tmp_path / "model").exists(), "a killed build left an entry in place"
    assert clear_stale_temporaries(tmp_path) == 1
    path = cached_dir("model", lambda out: (out / "config.json").write_text("{}"), root=tmp_path)
    assert (path / "config.json").exists()
