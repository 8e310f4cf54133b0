"""Import the functions a lesson defines straight from its notebook, without running the notebook.

Only the imports and the ``def``/``class`` statements of the code cells are executed, so a broken helper
fails its unit test in seconds instead of after a full papermill run.
"""

from __future__ import annotations

import ast
import json
import types
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def import_definitions(notebook: str, names: list[str] | None = None) -> types.SimpleNamespace:
    """The notebook's imports, functions and classes, as attributes of a namespace (only names, if given)."""
    cells = json.loads((NOTEBOOK_DIR / notebook).read_text(encoding="utf-8"))["cells"]
    kept = []
    for cell in cells:
        if cell["cell_type"] != "code" or "google.colab" in "".join(cell["source"]):
            continue
        for node in ast.parse("".join(cell["source"])).body:
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
                kept.append(node)
    namespace: dict = {"__name__": f"notebook_{Path(notebook).stem}"}
    exec(compile(ast.Module(body=kept, type_ignores=[]), notebook, "exec"), namespace)
    missing = [n for n in names or [] if n not in namespace]
    if missing:
        raise AttributeError(f"{notebook} defines no {missing}")
    return types.SimpleNamespace(**{k: v for k, v in namespace.items() if names is None or k in names})
