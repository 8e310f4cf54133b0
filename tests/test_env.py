"""The precision rule: decided from the profile and the hardware's capabilities, never by timing."""

import multiprocessing
import time

import pytest
import torch
from course_utils.data import pack_texts
from course_utils.env import autocast, choose_precision
from course_utils.models import build_tiny_model
from course_utils.tokenizer import train_bpe_tokenizer
from course_utils.training import TrainConfig, train_causal_lm

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("profile", "device", "capability", "flags", "expected"),
    [
        ("tiny", CUDA, (9, 0), set(), "fp32"),  # H100: the tiny profile stays in fp32
        ("tiny", CPU, None, {"avx512_bf16"}, "fp32"),
        ("small", CUDA, (9, 0), set(), "bf16"),  # Hopper
        ("small", CUDA, (8, 0), set(), "bf16"),  # A100
        ("small", CUDA, (7, 5), set(), "fp16"),  # T4, Colab's free GPU: bf16 would be emulated
        ("small", CUDA, (7, 0), set(), "fp16"),  # V100
        ("small", CPU, None, {"avx2", "avx512_bf16"}, "bf16"),
        ("small", CPU, None, {"avx2", "amx_bf16"}, "bf16"),
        ("small", CPU, None, {"avx2", "fma"}, "fp32"),  # AVX2 only: bf16 emulated; never fp16 on a CPU
    ],
)
def test_precision_follows_the_capabilities(profile, device, capability, flags, expected):
    assert choose_precision(profile, device, gpu_capability=capability, flags=flags) == expected


def test_bad_precision_and_fp16_on_cpu_are_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="int4")
    with pytest.raises(ValueError, match="fp16 on a CPU"):
        autocast(CPU, "fp16")


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = torch.randn(256, 256)
    while time.perf_counter() < end:
        x @ x


def _short_run() -> tuple[str, list[float]]:
    texts = ["Alma lives in Dunmere.", "3 + 4 = 7.", "One day a little fox found a kite."] * 40
    tokenizer = train_bpe_tokenizer(texts, vocab_size=300)
    model = build_tiny_model(tokenizer, "w32", seed=0)
    precision = choose_precision("tiny")
    config = TrainConfig(steps=15, batch_size=8, eval_every=0, precision=precision)
    history = train_causal_lm(model, pack_texts(texts, tokenizer, 16), config, progress=False)
    return precision, history["train_loss"]


def test_same_seed_same_numbers_idle_or_busy():
    idle = _short_run()
    load = [multiprocessing.get_context("spawn").Process(target=_busy, args=(30.0,)) for _ in range(2)]
    for process in load:
        process.start()
    try:
        busy = _short_run()
        decisions = {choose_precision(p) for p in ("tiny",) * 20}
    finally:
        for process in load:
            process.terminate()
    assert busy == idle
    assert decisions == {idle[0]}
