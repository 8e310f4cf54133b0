"""Measuring what a run costs (wall time, peak memory) and writing ``metrics.json``."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from course_utils.cache import write_json_atomic

_rss_peak_before_reset = 0  # measure() resets the kernel's peak-RSS counter; the run's peak must survive that


def process_peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started, across every measure() block (Linux reports KiB,
    macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(_rss_peak_before_reset, int(peak if sys.platform == "darwin" else peak * 1024))


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux only); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _proc_status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status (Linux: VmHWM peak, VmRSS current), in bytes; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _read_peak_rss() -> int:
    """The kernel's peak-RSS counter, since the last reset (VmHWM on Linux; the process peak elsewhere)."""
    return _proc_status_bytes("VmHWM") or process_peak_rss_bytes()


def current_rss_bytes() -> int:
    """Resident memory of this process now (Linux); elsewhere the peak so far, an upper bound."""
    return _proc_status_bytes("VmRSS") or process_peak_rss_bytes()


def release_memory() -> None:
    """Hand memory freed by deleted models back to the system, so that the next measure() block starts low.

    Python frees the tensors, but glibc's allocator keeps much of the memory for reuse, and a CPU block's peak
    RSS then starts from that high water. malloc_trim returns it (glibc only; elsewhere this only collects).
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    libc_name = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and libc_name:
        try:
            ctypes.CDLL(libc_name).malloc_trim(0)
        except (OSError, AttributeError):  # a libc without malloc_trim (musl): nothing to hand back
            pass


_cuda_peak_before_reset = 0  # measure() resets CUDA's peak counter; the run's peak must survive that


def cuda_peak_bytes() -> int:
    """Peak CUDA memory allocated by this process so far, across every measure() block (0 without CUDA)."""
    if not torch.cuda.is_available():
        return 0
    return max(_cuda_peak_before_reset, int(torch.cuda.max_memory_allocated()))


@dataclass
class Measurement:
    """Filled in when the ``measure`` block ends."""

    label: str = ""
    wall_s: float = math.nan
    peak_mem_bytes: int = 0
    memory_kind: str = "cpu rss"

    def __str__(self) -> str:
        return f"{self.label}: {self.wall_s:.1f} s, peak {self.memory_kind} {self.peak_mem_bytes / 2**20:,.0f} MiB"


@contextmanager
def measure(label: str = "", show: bool = True) -> Iterator[Measurement]:
    """Record wall time and peak memory of a block: CUDA peak on a GPU, peak RSS on CPU.

    On CPU, Linux lets us reset the peak counter, so the number is the block's own peak;
    elsewhere it is the process peak so far (an upper bound).
    """
    result = Measurement(label=label)
    cuda = torch.cuda.is_available()
    if cuda:
        global _cuda_peak_before_reset
        torch.cuda.synchronize()
        _cuda_peak_before_reset = cuda_peak_bytes()
        torch.cuda.reset_peak_memory_stats()
        result.memory_kind = "cuda"
    else:
        global _rss_peak_before_reset
        _rss_peak_before_reset = max(_rss_peak_before_reset, _read_peak_rss())
        _reset_peak_rss()
    start = time.perf_counter()
    try:
        yield result
    finally:
        if cuda:
            torch.cuda.synchronize()
            result.peak_mem_bytes = int(torch.cuda.max_memory_allocated())
        else:
            result.peak_mem_bytes = _read_peak_rss()
        result.wall_s = time.perf_counter() - start
        if show:
            print(result)


def write_metrics(output_dir: str | Path, metrics: dict) -> Path:
    """Write ``metrics.json`` (the numbers the notebook's test asserts) into output_dir."""
    return write_json_atomic(Path(output_dir) / "metrics.json", metrics)
