"""Run a notebook's code cells in one plain Python process, for machines with no Jupyter kernel.

The runner falls back to this where papermill or ipykernel is missing (a GPU machine that reaches no
package registry). Like papermill, it puts the given parameters right after the cell tagged
``parameters``; unlike papermill, it keeps no outputs: they go to this process's stdout.

    python -m tools.plain_exec NOTEBOOK -p NAME VALUE [-p NAME VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from tools.notebook_links import is_colab_cell


def parameter_cell(values: dict[str, str]) -> str:
    """Assignments for the parameters: numbers stay numbers, anything else becomes a string."""
    lines = []
    for name, value in values.items():
        try:
            lines.append(f"{name} = {int(value)!r}")
        except ValueError:
            lines.append(f"{name} = {value!r}")
    return "\n".join(lines)


def code_cells(notebook: Path, values: dict[str, str]) -> list[str]:
    cells, injected = [], False
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code" or is_colab_cell(cell):  # Colab only, and IPython syntax: nothing to do here
            continue
        cells.append("".join(cell["source"]))
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cells.append(parameter_cell(values))
            injected = True
    if not injected:
        raise ValueError(f"{notebook.name} has no cell tagged 'parameters' to put {sorted(values)} after")
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")  # plt.show() without a screen
    namespace = {"__name__": "__main__"}
    for i, source in enumerate(code_cells(args.notebook, dict(args.p))):
        print(f"----- cell {i}", flush=True)
        try:
            exec(compile(source, f"<{args.notebook.name} cell {i}>", "exec"), namespace)
        except Exception:
            traceback.print_exc()
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
