"""course_utils.measure: a block's own peak, and the run's peak across blocks."""

import torch
from course_utils import measure as m


def test_the_run_peak_survives_the_resets_of_measure_blocks(monkeypatch):
    """measure() resets CUDA's peak counter for each block; cuda_peak_bytes() must still see the largest block."""
    fake = {"peak": 0}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: fake["peak"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: fake.update(peak=0))
    monkeypatch.setattr(m, "_cuda_peak_before_reset", 0)
    with m.measure("big", show=False) as big:
        fake["peak"] = 12
    with m.measure("small", show=False) as small:
        fake["peak"] = 3
    assert (big.peak_mem_bytes, small.peak_mem_bytes) == (12, 3)
    assert m.cuda_peak_bytes() == 12


def test_the_process_peak_survives_the_resets_of_measure_blocks(monkeypatch):
    """On CPU, measure() resets the kernel's peak-RSS counter; process_peak_rss_bytes() must still see the largest."""
    fake = {"peak": 0}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(m, "_read_peak_rss", lambda: fake["peak"])
    monkeypatch.setattr(m, "_reset_peak_rss", lambda: fake.update(peak=0))
    monkeypatch.setattr(m.resource, "getrusage", lambda who: type("Usage", (), {"ru_maxrss": fake["peak"] // 1024}))
    monkeypatch.setattr(m.sys, "platform", "linux")
    monkeypatch.setattr(m, "_rss_peak_before_reset", 0)
    with m.measure("big", show=False) as big:
        fake["peak"] = 12 * 1024
    with m.measure("small", show=False) as small:
        fake["peak"] = 3 * 1024
    assert (big.peak_mem_bytes, small.peak_mem_bytes) == (12 * 1024, 3 * 1024)
    assert m.process_peak_rss_bytes() == 12 * 1024
