"""Install the course's run-time packages into Colab's live runtime (the notebooks' first cell runs this).

Only the "run time" section of requirements.txt is installed: Colab keeps its own torch, numpy and
matplotlib, and none of the tools (JupyterLab, papermill, ruff, pytest) that a laptop needs. Messages
go to stderr; stdout lists the import names of packages that were already installed at another
version, so the cell can tell whether the running session must restart to see them.

    python tools/colab_install.py [--dry-run]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_TIME_SECTION = "# --- run time"


def run_time_pins(requirements: Path = ROOT / "requirements.txt") -> list[str]:
    """The pins of the run-time section of requirements.txt ("name==version" lines)."""
    pins, inside = [], False
    for line in requirements.read_text().splitlines():
        if line.startswith("# ---"):
            inside = line.startswith(RUN_TIME_SECTION)
        elif inside and line.strip() and not line.startswith("#"):
            pins.append(line.strip())
    if not pins:
        raise ValueError(f"no '{RUN_TIME_SECTION}' section with pins in {requirements}")
    return pins


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print what would be installed, install nothing")
    args = parser.parse_args(argv)
    pins = run_time_pins()
    before = {pin.split("==")[0]: installed_version(pin.split("==")[0]) for pin in pins}
    commands = [
        [sys.executable, "-m", "pip", "install", "-q", *pins],
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
    ]
    for command in commands:
        print(" ".join(command[2:]), file=sys.stderr)
        if not args.dry_run and subprocess.run(command).returncode != 0:
            print(
                "installing failed (see pip's message above). Check the runtime's network, then run the cell again; "
                "if pip reports a conflict, start a fresh runtime (Runtime > Disconnect and delete runtime).",
                file=sys.stderr,
            )
            return 1
    changed = [name for name, version in before.items() if version and version != installed_version(name)]
    print(" ".join(name.replace("-", "_") for name in changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
