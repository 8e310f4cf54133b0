"""The memory function gives the textbook numbers; the bench report renders. No timing is asserted here."""

from course_utils.memory import training_memory

from tools.bench import format_report


def test_full_fp32_adamw_costs_16_bytes_per_parameter():
    estimate = training_memory(n_params=1_000, n_trainable=1_000)
    assert estimate.total == 16_000
    assert (estimate.weights, estimate.gradients, estimate.optimizer) == (4_000, 4_000, 8_000)


def test_lora_pays_full_price_only_for_adapters():
    estimate = training_memory(n_params=1_000_000, n_trainable=10_000)
    assert estimate.total == 4 * 1_000_000 + (4 + 8) * 10_000  # the adapters' own weights are among n_params


def test_mixed_precision_adds_a_master_copy():
    estimate = training_memory(n_params=100, n_trainable=100, weight_bytes=2, master_copy_bytes=4)
    assert estimate.total == 100 * (2 + 2 + 8 + 4)


def test_report_renders_every_section():
    results = {
        "machine": "test cpu",
        "date": "2026-01-01",
        "training": {
            "dtype": "fp32",
            "course_tokens_per_s": 10.0,
            "minimal_tokens_per_s": 10.0,
            "ratio_course_over_minimal": 1.0,
            "peak_flops_fp32": 1e11,
            "peak_flops_bf16": 1e9,
            "achieved_flops": 5e10,
            "mfu": 0.5,
        },  # fmt: skip
        "compile": {
            "eager_tokens_per_s": 1.0,
            "compiled_tokens_per_s": 1.1,
            "ratio_compiled_over_eager": 1.1,
            "compile_s": 5.0,
        },  # fmt: skip
        "sft": {"padded_tokens_per_s": 1.0, "packed_tokens_per_s": 2.0, "ratio_packed_over_padded": 2.0},
        "memory": [{"kind": "full", "predicted_bytes": 2**30, "measured_bytes": 2**30, "error_pct": 0.0}],
        "course": [
            {"notebook": "01.ipynb", "wall_s": 100.0, "peak_rss_bytes": 2**30, "status": "ok", "within_budget": True}
        ],
        "gpu": "skipped: no GPU",
    }
    report = format_report(results)
    for needle in [
        "course / minimal | 1.00",
        "MFU",
        "50%",
        "torch.compile / eager, minimal loop | 1.10",
        "SFT packed / padded | 2.00",
        "error +0%",
        "01.ipynb",
        "skipped: no GPU",
    ]:
        assert needle in report, needle
