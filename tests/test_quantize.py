"""course_utils.quantize: the quantizers written by hand against plain facts and against bitsandbytes."""

import pytest
import torch
from course_utils.quantize import (
    Int8Tensor,
    absmax_int8,
    dequantize_int8,
    double_quantize,
    fake_quantize_linears,
    nf4_dequantize,
    nf4_levels,
    nf4_quantize,
    zeropoint_int8,
)


def test_int8_roundtrip_error_is_at_most_half_a_step():
    x = torch.randn(32, 64)
    for quantize in (absmax_int8, zeropoint_int8):
        q = quantize(x, 64)
        assert ((dequantize_int8(q) - x).abs().reshape(-1, 64) <= q.scale / 2 + 1e-6).all()


def test_zero_point_beats_absmax_on_a_skewed_tensor():
    x = torch.rand(4096) * 2 + 1  # all in [1, 3]: absmax wastes the negative half of its codes
    err = {f.__name__: (dequantize_int8(f(x)) - x).abs().mean() for f in (absmax_int8, zeropoint_int8)}
    assert err["zeropoint_int8"] < 0.6 * err["absmax_int8"]


def test_zero_point_matches_pytorch_and_keeps_zero_exact_for_a_one_signed_tensor():
    from torch.ao.quantization.observer import MinMaxObserver

    for x in (torch.rand(4096) * 2 + 1, -torch.rand(4096), torch.randn(4096)):  # positive, negative, both signs
        q = zeropoint_int8(x)
        observer = MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
        observer(x)
        scale, zero = observer.calculate_qparams()
        assert torch.allclose(q.scale.flatten(), scale, rtol=1e-5) and q.zero.item() == zero.item()
        assert 0 <= q.zero.item() <= 255
        zeros = Int8Tensor(torch.full((1, 1), int(q.zero.item()), dtype=torch.uint8), q.scale, q.zero, (1,))
        assert dequantize_int8(zeros).item() == 0.0  # the zero point is the code that stands for exactly 0.0


def test_smaller_blocks_isolate_an_outlier():
    torch.manual_seed(0)
    x = torch.randn(64, 512)
    x[:, 3] *= 50  # one outlier column
    errors = [(dequantize_int8(absmax_int8(x, b)) - x).abs().mean() for b in (4096, 1024, 256, 64)]
    assert errors == sorted(errors, reverse=True)


def test_bad_block_sizes_are_refused():
    with pytest.raises(ValueError, match="divide"):
        absmax_int8(torch.randn(10), 3)


def test_nf4_levels_and_roundtrip_match_bitsandbytes():
    functional = pytest.importorskip("bitsandbytes.functional")
    torch.manual_seed(0)
    w = torch.randn(64, 128) * 0.02
    packed, state = functional.quantize_4bit(w, blocksize=64, quant_type="nf4")
    assert torch.allclose(nf4_levels(), state.code.float(), atol=1e-6)
    theirs = functional.dequantize_4bit(packed, state)
    assert torch.allclose(nf4_dequantize(nf4_quantize(w, 64)), theirs, atol=1e-6)


def test_nf4_has_an_exact_zero_and_sixteen_levels():
    levels = nf4_levels()
    assert len(levels) == 16 and 0.0 in levels.tolist() and levels.min() == -1 and levels.max() == 1


def test_double_quantization_keeps_the_scales_close():
    absmax = torch.rand(1000) * 0.1 + 0.01
    assert (double_quantize(absmax) - absmax).abs().max() < 0.01 * absmax.max()


def test_fake_quantization_leaves_the_output_head_alone():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    before = [m.weight.clone() for m in model if isinstance(m, torch.nn.Linear)]
    assert fake_quantize_linears(model, lambda w: torch.zeros_like(w)) == 2  # no get_output_embeddings: all change
    assert all((m.weight == 0).all() for m in model if isinstance(m, torch.nn.Linear)) and before[0].abs().sum() > 0


def test_int8_matmul_splits_outlier_columns():
    from course_utils.quantize import int8_matmul, outlier_columns

    torch.manual_seed(0)
    x, w = torch.randn(64, 32), torch.randn(16, 32)
    x[:, 3] *= 40  # one outlier feature in every token
    exact = x @ w.T
    assert outlier_columns(x, 6.0).nonzero().flatten().tolist() == [3]
    plain, split = int8_matmul(x, w, None), int8_matmul(x, w, 6.0)
    assert (split - exact).abs().mean() < 0.5 * (plain - exact).abs().mean()
    assert torch.allclose(int8_matmul(x, w, 0.0), exact, atol=1e-4)  # every column kept apart: no int8 left


def test_load_quantized_refuses_an_unknown_format():
    from course_utils.quantize import load_quantized

    with pytest.raises(ValueError, match="form must be one of"):
        load_quantized("unused", "int3")
