"""Install the course's run-time packages into Colab's live runtime. Each notebook's first cell clones the
repository and runs this file in the notebook's own process (``%run tools/colab_install.py --setup``).

Only the "run time" section of requirements.txt is installed: Colab keeps its own torch, numpy and
matplotlib, and none of the tools (JupyterLab, papermill, ruff, pytest) that a laptop needs. If pip
replaced a package that the running session had already imported, it stops and asks for a restart.

    python -m tools.colab_install --dry-run      # what would be installed
    %run tools/colab_install.py --setup          # in a notebook: install, check, make the package importable
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
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


def install(dry_run: bool = False) -> list[str]:
    """pip-install the run-time pins and the course package; return the import names of packages that changed."""
    pins = run_time_pins()
    before = {pin.split("==")[0]: installed_version(pin.split("==")[0]) for pin in pins}
    commands = [
        [sys.executable, "-m", "pip", "install", "-q", *pins],
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
    ]
    for command in commands:
        print(" ".join(command[2:]))
        done = None if dry_run else subprocess.run(command, capture_output=True, text=True)
        if done is not None and done.returncode != 0:
            raise RuntimeError(
                f"pip failed:\n{done.stderr.strip()[-2000:]}\nCheck the runtime's network and run the cell again; if pip reports a "
                "conflict, start a fresh runtime (Runtime > Disconnect and delete runtime)."
            )
    changed = [name for name, version in before.items() if version and version != installed_version(name)]
    return [name.replace("-", "_") for name in changed]


def setup_colab(dry_run: bool = False) -> None:
    """Install, stop with a clear message if the session must restart, make course_utils importable, move into notebooks/.

    Runs in the notebook's process: an editable install is only seen by a new process, hence the sys.path entry.
    """
    changed = install(dry_run)
    stale = [name for name in changed if name in sys.modules]
    if stale:
        raise SystemExit(f"{stale} were upgraded under this session: Runtime > Restart session, then run all again.")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.chdir(ROOT / "notebooks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print what would be installed, install nothing")
    parser.add_argument("--setup", action="store_true", help="also check for a restart and enter notebooks/ (Colab)")
    args = parser.parse_args(argv)
    if args.setup:
        setup_colab(args.dry_run)
    else:
        install(args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
