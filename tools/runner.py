"""The notebook harness behind ``make course`` and the notebook tests.

Each notebook runs under papermill in its own process, with its ``parameters`` cell overridden
(PROFILE, SEED, OUTPUT_DIR); we record status, wall time and peak memory (RSS of the kernel)
and read back the ``metrics.json`` the notebook wrote.

    python -m tools.runner                 # every lesson notebook, tiny profile
    python -m tools.runner --solutions     # the solutions notebooks too
    python -m tools.runner --only 01       # notebooks whose name starts with 01
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
BUILD_DIR = ROOT / "build"


def find_notebooks(solutions: bool = False, only: str = "") -> list[Path]:
    """Lesson notebooks (NN_topic.ipynb) in order, and their _solutions notebooks if asked."""
    found = []
    for path in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")):
        if path.stem.endswith("_solutions") and not solutions:
            continue
        if path.name.startswith(only):
            found.append(path)
    return found


@dataclass
class NotebookRun:
    """What one papermill execution produced."""

    notebook: str
    status: str = "not run"
    wall_s: float = 0.0
    peak_rss_bytes: int = 0
    metrics: dict = field(default_factory=dict)
    output_dir: str = ""
    log: str = ""


def headline_keys(notebook: Path) -> list[str]:
    """Metric names a notebook asks to be shown in the course table (its metadata)."""
    meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    return meta.get("course", {}).get("headline_metrics", [])


def has_jupyter_kernel() -> bool:
    """Whether papermill and a Python kernel are installed (else notebooks run with tools.plain_exec)."""
    return all(importlib.util.find_spec(m) is not None for m in ("papermill", "ipykernel"))


def collapse_carriage_returns(text: str) -> str:
    """Keep what a terminal shows: of each line, the part after its last carriage return (a bar's final state)."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def tidy_outputs(path: Path) -> None:
    """Make an executed notebook readable: one line per progress bar instead of one per refresh."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
                output["text"] = collapse_carriage_returns(text).splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def execute_notebook(
    notebook: Path, out_root: Path, profile: str = "tiny", seed: int = 0, timeout_s: int = 1800
) -> NotebookRun:
    """Execute notebook with papermill in a child process; measure it and read its metrics.json.

    Where no Jupyter kernel is installed, the notebook's code runs with tools.plain_exec instead (no outputs kept).
    """
    notebook = Path(notebook).resolve()
    out_dir = Path(out_root).resolve() / notebook.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.json"
    metrics_path.unlink(missing_ok=True)
    log_path = out_dir / "papermill.log"
    params = ["-p", "PROFILE", profile, "-p", "SEED", str(seed), "-p", "OUTPUT_DIR", str(out_dir.resolve())]
    papermill = has_jupyter_kernel()
    if papermill:
        cmd = [sys.executable, "-m", "papermill", str(notebook), str(out_dir / notebook.name), "--kernel", "python3",
               "--cwd", str(notebook.parent), "--no-progress-bar", "--log-output", *params]  # fmt: skip
    else:
        cmd = [sys.executable, "-m", "tools.plain_exec", str(notebook.resolve()), *params]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    run = NotebookRun(notebook=notebook.name, output_dir=str(out_dir), log=str(log_path))
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=notebook.parent)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
        # wait4 reports the peak RSS of the child and of its reaped children: the kernel
        _, status, usage = os.wait4(proc.pid, 0) if proc.returncode is None else (0, 0, None)
    run.wall_s = time.perf_counter() - start
    code = proc.returncode if proc.returncode is not None else os.waitstatus_to_exitcode(status)
    if usage is not None:
        run.peak_rss_bytes = int(usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024))
    if metrics_path.exists():
        run.metrics = json.loads(metrics_path.read_text())
        run.peak_rss_bytes = max(run.peak_rss_bytes, int(run.metrics.get("peak_mem_bytes", 0)))
    if papermill and (out_dir / notebook.name).exists():
        tidy_outputs(out_dir / notebook.name)
    run.status = (
        "ok" if code == 0 and metrics_path.exists() else ("no metrics.json" if code == 0 else f"failed ({code})")
    )
    return run


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value[:4]) + (", ..." if len(value) > 4 else "") + "]"
    return str(value)


def format_table(runs: list[NotebookRun], notebooks: list[Path]) -> str:
    """A Markdown table: notebook, status, wall time, peak memory, headline metrics."""
    lines = ["| notebook | status | wall time | peak RSS | headline metrics |", "|---|---|---|---|---|"]
    for run, nb in zip(runs, notebooks):
        keys = headline_keys(nb)
        heads = ", ".join(f"{k}={_fmt(run.metrics[k])}" for k in keys if k in run.metrics)
        lines.append(
            f"| {run.notebook} | {run.status} | {run.wall_s:.0f} s | {run.peak_rss_bytes / 2**30:.2f} GiB | {heads} |"
        )
    total = sum(r.wall_s for r in runs)
    lines.append(f"| **all** | {sum(r.status == 'ok' for r in runs)}/{len(runs)} ok | {total:.0f} s | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the course notebooks with papermill and tabulate them.")
    parser.add_argument("--profile", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "course", help="where executed notebooks go")
    parser.add_argument("--only", default="", help="run only notebooks whose file name starts with this")
    parser.add_argument("--solutions", action="store_true", help="also run the _solutions notebooks")
    args = parser.parse_args(argv)
    notebooks = find_notebooks(args.solutions, args.only)
    if not notebooks:
        print(f"no notebooks matching {args.only!r} in {NOTEBOOK_DIR}", file=sys.stderr)
        return 2
    runs = []
    for nb in notebooks:
        print(f"running {nb.name} ({args.profile} profile)...", flush=True)
        runs.append(execute_notebook(nb, args.out, args.profile, args.seed))
        print(
            f"  {runs[-1].status} in {runs[-1].wall_s:.0f} s"
            + ("" if runs[-1].status == "ok" else f"; see {runs[-1].log}")
        )
    table = format_table(runs, notebooks)
    (args.out / "course.md").write_text(table + "\n")
    (args.out / "course.json").write_text(json.dumps([r.__dict__ for r in runs], indent=2) + "\n")
    print("\n" + table)
    return 0 if all(r.status == "ok" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
