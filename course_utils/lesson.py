"""The top and the bottom every notebook shares: ``run = start(...)`` after the parameters, ``run.finish()`` last.

``start`` settles the profile, precision, seed, device and output folder, prints them with the library
versions, and starts the clock; ``finish`` adds wall time and peak memory to ``run.metrics`` and writes
``metrics.json``, the file each notebook's test reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from course_utils.env import (
    check_precision,
    check_profile,
    choose_precision,
    default_profile,
    describe_environment,
    get_device,
    set_seed,
)
from course_utils.measure import cuda_peak_bytes, process_peak_rss_bytes, write_metrics


@dataclass
class Run:
    """One execution of a notebook: its settings, the metrics it collects, and when it started."""

    profile: str
    seed: int
    precision: str
    device: torch.device
    output_dir: Path
    metrics: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def finish(self, show: bool = True) -> Path:
        """Record wall time and peak memory, write metrics.json into output_dir, print a summary."""
        self.metrics.update(wall_s=time.perf_counter() - self.started, peak_mem_bytes=process_peak_rss_bytes())
        if self.device.type == "cuda":
            self.metrics["peak_gpu_mem_bytes"] = cuda_peak_bytes()  # across measure() blocks, which reset CUDA's
        path = write_metrics(self.output_dir, self.metrics)
        if show:
            for key, value in self.metrics.items():
                if not isinstance(value, (dict, list)):
                    print(f"{key:>32}: {f'{value:.6g}' if isinstance(value, float) else value}")  # 1.2e-07, not 0.0
            print(f"\nfinished in {self.metrics['wall_s']:.0f} s, peak memory "
                  f"{self.metrics['peak_mem_bytes'] / 2**30:.2f} GiB; wrote {path}")  # fmt: skip
        return path


def start(profile: str = "", seed: int = 0, output_dir: str | Path = "build", precision: str = "") -> Run:
    """Settle a notebook's parameters and print them with the environment.

    profile: "tiny", "small", or "" for small where a GPU is found, else tiny.
    precision: "fp32", "bf16", "fp16", or "" for the rule in ``course_utils.env.choose_precision``.
    """
    profile = check_profile(profile or default_profile())
    device = get_device()
    precision = check_precision(precision) if precision else choose_precision(profile, device)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    settings = {"profile": profile, "seed": str(seed), "precision": precision, **describe_environment()}
    for name, value in settings.items():
        print(f"{name:>14}: {value}")
    return Run(profile, seed, precision, device, output_dir, metrics={"profile": profile, "seed": seed,
                                                                       "precision": precision})  # fmt: skip
