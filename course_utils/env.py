"""Profiles, device and seeds: the few settings every notebook shares."""

from __future__ import annotations

import functools
import os
import platform
import random
import time

import numpy as np
import torch

PROFILES = ("tiny", "small")


def default_profile() -> str:
    """ "small" where a GPU is found, else "tiny" (the CPU profile CI runs)."""
    return "small" if torch.cuda.is_available() else "tiny"


def check_profile(profile: str) -> str:
    """Return profile if it is one the course knows, else raise a ValueError naming the choices."""
    if profile not in PROFILES:
        raise ValueError(f"PROFILE must be one of {PROFILES}, found {profile!r}; set it in the parameters cell")
    return profile


def get_device() -> torch.device:
    """The device training runs on: CUDA if present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(device: torch.device | None = None) -> torch.dtype:
    """The low-precision dtype for autocast: bf16, or fp16 on GPUs without bf16 (never fp16 on CPU)."""
    device = device or get_device()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@functools.cache
def _cpu_bf16_speedup() -> float:
    """How much faster a bf16 matmul is than fp32 on this CPU, timed on the spot (a few ms).

    CPUs with AVX512-BF16 or AMX run bf16 several times faster than fp32; CPUs with only AVX2
    emulate it, hundreds of times slower. Timing is the one test that is right on both.
    """
    a = torch.randn(128, 128)
    timings = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = a.to(dtype)
        x @ x  # warm-up
        start = time.perf_counter()
        for _ in range(4):
            x @ x
        timings[dtype] = time.perf_counter() - start
    return timings[torch.float32] / timings[torch.bfloat16]


def use_low_precision(device: torch.device | None = None) -> bool:
    """Whether autocast to autocast_dtype() speeds training up on this device."""
    device = device or get_device()
    if device.type == "cuda":
        return True
    return _cpu_bf16_speedup() > 1.2


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch so that a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def describe_environment() -> dict[str, str]:
    """Versions and hardware worth printing at the top of every notebook."""
    import datasets
    import peft
    import transformers
    import trl

    device = get_device()
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
        "datasets": datasets.__version__,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "torch threads": str(torch.get_num_threads()),
        "autocast": str(autocast_dtype(device)) if use_low_precision(device) else "off (fp32 is faster here)",
    }
    return info
