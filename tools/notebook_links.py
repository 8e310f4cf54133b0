"""The notebooks' Colab badge and install cell, generated from the one repository URL in pyproject.toml.

A fork sets ``[project.urls] Repository`` in pyproject.toml to its own URL and runs ``make links``:
every badge and every install cell then point at the fork. ``--check`` (run by the tests) only reports.

    python -m tools.notebook_links [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")

COLAB_CELL = """\
# Colab only: fetch the course, install what the notebooks need (elsewhere `make setup` did). Forks: README.
import sys

if "google.colab" in sys.modules:
    !test -d /content/course || git clone -q {url} /content/course || echo "could not clone {url}: check it and the network"
    %run /content/course/tools/colab_install.py --setup"""


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The course's repository URL: the one place it is written."""
    urls = tomllib.loads(pyproject.read_text())["project"].get("urls", {})
    if "Repository" not in urls:
        raise ValueError(f"{pyproject} needs [project.urls] Repository = 'https://github.com/OWNER/NAME'")
    return urls["Repository"].rstrip("/")


def badge(url: str, notebook: str) -> str:
    path = url.removeprefix("https://github.com/")
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{notebook})"
    )


def colab_cell(url: str) -> str:
    return COLAB_CELL.format(url=url)


def is_colab_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and '"google.colab" in sys.modules' in "".join(cell["source"])


def expected_changes(path: Path, url: str) -> tuple[dict, list[str]]:
    """The notebook with its badge and Colab cell made right, and what differed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    title = "".join(nb["cells"][0]["source"])
    want_badge = badge(url, path.name)
    if BADGE.search(title) is None:
        problems.append("its first cell has no Colab badge")
    elif BADGE.search(title).group(0) != want_badge:
        problems.append("its badge points elsewhere")
        nb["cells"][0]["source"] = BADGE.sub(lambda _: want_badge, title).splitlines(keepends=True)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if not code or not is_colab_cell(code[0]):
        problems.append("its first code cell is not the Colab cell")
    elif "".join(code[0]["source"]) != colab_cell(url):
        problems.append("its Colab cell differs from tools/notebook_links.py")
        code[0]["source"] = colab_cell(url).splitlines(keepends=True)
    return nb, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report notebooks that differ, change nothing")
    args = parser.parse_args(argv)
    url, status = repository_url(), 0
    for path in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")):
        nb, problems = expected_changes(path, url)
        if problems and args.check:
            print(f"{path.name}: " + "; ".join(problems) + " (run `make links`)")
            status = 1
        elif problems:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"{path.name}: fixed ({'; '.join(problems)})")
    return status


if __name__ == "__main__":
    sys.exit(main())
