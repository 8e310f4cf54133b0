"""Profiles, device and seeds: the few settings every notebook shares."""

from __future__ import annotations

import os
import platform
import random

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


PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FAST_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # CPUs with these run bf16 matmuls natively


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_precision(
    profile: str,
    device: torch.device | str | None = None,
    gpu_capability: tuple[int, int] | None = None,
    flags: set[str] | None = None,
) -> str:
    """The training precision, decided by rule from the profile and the hardware's capabilities (never by timing).

    * ``tiny`` profile: fp32 everywhere. Its models are launch-bound on a GPU (bf16 buys little) and its
      lessons are calibrated in fp32; the same seed gives the same numbers on every machine, busy or idle.
    * ``small`` profile on a GPU: bf16 where the GPU runs it natively (compute capability >= 8.0: Ampere,
      Ada, Hopper...), else fp16 with loss scaling (a T4 or V100 only emulates bf16, slowly).
    * ``small`` profile on a CPU: bf16 where the CPU has AVX512-BF16 or AMX, else fp32 (AVX2-only CPUs
      emulate bf16, hundreds of times slower). Never fp16 on a CPU.

    gpu_capability and flags stand in for the real device's (tests fake them).
    """
    check_profile(profile)
    device = torch.device(device) if device is not None else get_device()
    if profile == "tiny":
        return "fp32"
    if device.type == "cuda":
        major, _ = gpu_capability or torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16"
    flags = cpu_flags() if flags is None else flags
    return "bf16" if any(f in flags for f in FAST_BF16_CPU_FLAGS) else "fp32"


def check_precision(precision: str) -> str:
    """Return precision if the course knows it, else raise a ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {PRECISIONS}, found {precision!r}; leave it empty to choose by rule"
        )
    return precision


def autocast(device: torch.device, precision: str):
    """torch.autocast to precision's dtype, or a no-op context for fp32."""
    check_precision(precision)
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("fp16 on a CPU is emulated and loses accuracy: use 'bf16' or 'fp32'")
    return torch.autocast(device.type, dtype=DTYPES[precision], enabled=precision != "fp32")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch so that a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def describe_environment() -> dict[str, str]:
    """Versions and hardware worth printing at the top of every notebook (the run adds profile and precision)."""
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
    }
    return info
