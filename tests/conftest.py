"""Shared fixtures: executing a notebook once per test session and handing its run to the tests."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tools.runner import BUILD_DIR, NOTEBOOK_DIR, NotebookRun, execute_notebook


@functools.cache
def run_notebook(name: str, seed: int = 0) -> NotebookRun:
    """Execute notebooks/<name> once (tiny profile) and return its run; later calls reuse it."""
    return execute_notebook(NOTEBOOK_DIR / name, BUILD_DIR / "test-notebooks", profile="tiny", seed=seed)


def executed(name: str) -> NotebookRun:
    run = run_notebook(name)
    if run.status != "ok":
        log = Path(run.log).read_text()[-4000:] if Path(run.log).exists() else ""
        pytest.fail(f"{name} did not run: {run.status}\n{log}")
    return run
