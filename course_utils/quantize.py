"""Quantization written out: week 6 builds these by hand and checks them against bitsandbytes.

* ``absmax_int8`` / ``zeropoint_int8``: 8-bit integers with one scale (and one zero point) per tensor, per row or
  per block of ``block_size`` values; ``dequantize_int8`` maps them back.
* ``nf4_levels``: the 16 "normal float" levels of QLoRA, quantiles of a standard normal, scaled to [-1, 1].
* ``nf4_quantize`` / ``nf4_dequantize``: blockwise absmax scaling, then the nearest of the 16 levels.
* ``double_quantize``: the scales themselves stored in 8 bits (QLoRA's double quantization).
* ``fake_quantize_linears``: every linear weight of a model replaced by its quantized-then-dequantized copy, to
  measure what the rounding alone costs in quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _blocks(x: torch.Tensor, block_size: int | None) -> torch.Tensor:
    """x flattened into rows of block_size values (one row per block); None keeps the last dimension as the row."""
    if block_size is None:
        return x.reshape(-1, x.shape[-1]) if x.dim() > 1 else x.reshape(1, -1)
    if block_size <= 0 or x.numel() % block_size:
        raise ValueError(f"block_size must be positive and divide the {x.numel()} values, found {block_size}")
    return x.reshape(-1, block_size)


@dataclass
class Int8Tensor:
    """8-bit codes with a float scale (and zero point) per block; ``shape`` is the original tensor's."""

    codes: torch.Tensor  # int8 for absmax, uint8 for zero-point; one row per block
    scale: torch.Tensor  # one per block: real value of one integer step
    zero: torch.Tensor | None  # one per block (zero-point only): the integer that stands for 0.0
    shape: torch.Size


def absmax_int8(x: torch.Tensor, block_size: int | None = None) -> Int8Tensor:
    """Symmetric: scale each block so its largest magnitude maps to 127; round to integers in [-127, 127]."""
    rows = _blocks(x.float(), block_size)
    scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
    codes = torch.round(rows / scale).clamp(-127, 127).to(torch.int8)
    return Int8Tensor(codes, scale, None, x.shape)


def zeropoint_int8(x: torch.Tensor, block_size: int | None = None) -> Int8Tensor:
    """Asymmetric: map each block's [min, max] onto [0, 255], so no code is wasted on a range the values never use.

    The range is widened to include 0 ([min(x, 0), max(x, 0)], as PyTorch's observers and ONNX do), so the zero
    point is a code in 0-255 that stands for exactly 0.0 even in a block whose values all have one sign.
    """
    rows = _blocks(x.float(), block_size)
    low = rows.amin(dim=1, keepdim=True).clamp(max=0)
    high = rows.amax(dim=1, keepdim=True).clamp(min=0)
    scale = (high - low).clamp(min=1e-12) / 255
    zero = torch.round(-low / scale)
    codes = torch.round(rows / scale + zero).clamp(0, 255).to(torch.uint8)
    return Int8Tensor(codes, scale, zero, x.shape)


def dequantize_int8(q: Int8Tensor) -> torch.Tensor:
    """Back to floats: (code - zero) * scale, in the original shape."""
    codes = q.codes.float()
    if q.zero is not None:
        codes = codes - q.zero
    return (codes * q.scale).reshape(q.shape)


def nf4_levels() -> torch.Tensor:
    """The 16 NF4 levels: 8 positive and 7 negative quantiles of N(0, 1), plus an exact 0, scaled to [-1, 1].

    Each half is its own grid: the 8 positive levels are the quantiles at 8 evenly spaced probabilities from just
    above 0.5 up to offset (0.9677, the midpoint of the two outermost bins of 15 and 16 equal-probability bins), the
    7 negative ones at 7 evenly spaced probabilities from 1 - offset up to just below 0.5, a coarser step. So the
    levels are not one equal-probability grid: the positive half is finer, which is what buys an exact 0 with an
    even number (16) of codes.
    """
    offset = 0.9677083
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    levels = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative]).sort().values
    return (levels / levels.abs().max()).float()


@dataclass
class NF4Tensor:
    """4-bit level indices (0-15, one uint8 each here: packing two per byte changes nothing but storage)."""

    codes: torch.Tensor  # one row per block
    absmax: torch.Tensor  # one float per block
    shape: torch.Size


def nf4_quantize(x: torch.Tensor, block_size: int = 64) -> NF4Tensor:
    """Blockwise absmax to [-1, 1], then the index of the nearest NF4 level.

    Nearest level = how many midpoints between neighbouring levels lie below the value (torch.bucketize), which
    needs no 16-wide comparison per weight.
    """
    rows = _blocks(x.float(), block_size)
    absmax = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
    levels = nf4_levels()
    midpoints = (levels[1:] + levels[:-1]) / 2
    codes = torch.bucketize(rows / absmax, midpoints).to(torch.uint8)
    return NF4Tensor(codes, absmax, x.shape)


def nf4_dequantize(q: NF4Tensor, absmax: torch.Tensor | None = None) -> torch.Tensor:
    """Back to floats: level[code] * block absmax (absmax given: e.g. the double-quantized scales)."""
    scale = q.absmax if absmax is None else absmax.reshape(q.absmax.shape)
    return (nf4_levels()[q.codes.long()] * scale).reshape(q.shape)


def double_quantize(absmax: torch.Tensor, block_size: int = 256) -> torch.Tensor:
    """QLoRA's second quantization: the per-block scales, minus their mean, in absmax int8 (blocks of block_size);
    returns the scales as they come back (dequantized), so the saving and the error can both be measured."""
    flat = absmax.flatten().float()
    mean = flat.mean()
    pad = (-flat.numel()) % block_size
    centred = torch.cat([flat - mean, torch.zeros(pad)])
    restored = dequantize_int8(absmax_int8(centred, block_size))[: flat.numel()] + mean
    return restored.reshape(absmax.shape)


def outlier_columns(x: torch.Tensor, threshold: float = 6.0) -> torch.Tensor:
    """Mask of the feature columns (last dimension) where any token's |activation| exceeds threshold."""
    return (x.reshape(-1, x.shape[-1]).abs() > threshold).any(dim=0)


def int8_matmul(x: torch.Tensor, weight: torch.Tensor, threshold: float | None = 6.0) -> torch.Tensor:
    """x @ weight.T the LLM.int8() way: absmax int8 per token (rows of x) and per output (rows of weight), the
    integer product rescaled by both scales; with a threshold, the outlier columns of x (and the matching
    columns of weight) bypass int8 and are multiplied in full precision, then the two parts are added."""
    x2 = x.reshape(-1, x.shape[-1]).float()
    keep = outlier_columns(x2, threshold) if threshold is not None else torch.zeros(x2.shape[1], dtype=torch.bool)
    out = x2[:, keep] @ weight[:, keep].float().T
    if not keep.all():
        qx, qw = absmax_int8(x2[:, ~keep]), absmax_int8(weight[:, ~keep].float())
        integer = qx.codes.to(torch.int32) @ qw.codes.to(torch.int32).T  # what an int8 kernel accumulates
        out = out + integer.float() * qx.scale * qw.scale.T
    return out.reshape(*x.shape[:-1], weight.shape[0])


def fake_quantize_linears(model: torch.nn.Module, roundtrip) -> int:
    """Replace the weight of every nn.Linear (but the output head) by roundtrip(weight); returns how many changed.

    roundtrip: weight -> dequantized weight, e.g. ``lambda w: nf4_dequantize(nf4_quantize(w))``. The model still
    computes in floats; only the rounding is simulated, which is what its quality depends on.
    """
    changed = 0
    output_head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module is not output_head:
                module.weight.copy_(roundtrip(module.weight).to(module.weight.dtype))
                changed += 1
    return changed


FORMATS = ("fp32", "bf16", "int8", "nf4", "int8_scratch", "nf4_scratch")


def linear_weight_bytes(model: torch.nn.Module) -> int:
    """Bytes the linear layers' weights occupy as stored (bitsandbytes: codes plus their scales), output head
    excluded: the part of a model that quantization shrinks."""
    output_head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not output_head:
            weight = module.weight
            total += weight.numel() * weight.element_size()
            state = getattr(weight, "quant_state", None) or getattr(weight, "SCB", None)
            if state is not None:  # nf4: per-block absmax; int8: per-row scales (SCB)
                scales = state.absmax if hasattr(state, "absmax") else state
                total += scales.numel() * scales.element_size()
    return total


def load_quantized(path, form: str, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, int]:
    """(model in eval mode on device, bytes of its linear weights) for one of FORMATS, from a saved model folder.

    int8 / nf4: bitsandbytes through transformers' BitsAndBytesConfig (compute in fp32); *_scratch: fp32 weights
    replaced by this module's own quantize-dequantize round trip, with the bytes the codes and scales would take.
    """
    from course_utils.models import load_model
    from transformers import BitsAndBytesConfig

    if form not in FORMATS:
        raise ValueError(f"form must be one of {FORMATS}, found {form!r}")
    if form == "bf16":
        model = load_model(path, dtype=torch.bfloat16)
    elif form in ("int8", "nf4"):
        config = (BitsAndBytesConfig(load_in_8bit=True) if form == "int8" else
                  BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32))  # fmt: skip
        model = load_model(path, quantization_config=config, device_map={"": str(device)})
        for module in model.modules():  # bitsandbytes 0.50's AVX512-BF16 fast path needs in_features % 64 == 0
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    else:
        model = load_model(path)
    size = linear_weight_bytes(model)
    if form == "int8_scratch":
        fake_quantize_linears(model, lambda w: dequantize_int8(absmax_int8(w)))  # one scale per row
        size = sum(m.weight.numel() + 4 * m.weight.shape[0] for m in _linears(model))
    elif form == "nf4_scratch":
        fake_quantize_linears(model, lambda w: nf4_dequantize(nf4_quantize(w, 64)))
        size = sum(m.weight.numel() // 2 + 4 * (m.weight.numel() // 64) for m in _linears(model))
    return model.to(device).eval() if form not in ("int8", "nf4") else model.eval(), size


def _linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    output_head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not output_head]
