"""The checkpoints later weeks start from, each defined once and built on demand into the cache.

* ``tiny_tokenizer_dir()``: the byte-level BPE tokenizer trained on the pretraining corpus.
* ``tiny_base_dir()``: the tiny Llama pretrained from scratch (week 1's recipe, ``BASE_RECIPE``).

Each key carries a hash of its recipe and of the data it is trained on, so changing either
builds a new entry instead of loading a stale one. Any notebook can run alone, in any order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from course_utils.cache import cached_dir
from course_utils.data import data_path, texts
from course_utils.measure import write_json_atomic
from course_utils.models import build_tiny_model, load_model, load_tokenizer, shape_dict
from course_utils.tokenizer import CHAT_TEMPLATE, train_bpe_tokenizer
from course_utils.training import TrainConfig, pack_texts, train_causal_lm

TOKENIZER_VOCAB_SIZE = 2048  # an upper bound: the tiny world's text saturates below it
BLOCK_SIZE = 128  # tokens per pretraining block


@dataclass(frozen=True)
class PretrainRecipe:
    """Everything that defines the cached tiny base model."""

    shape: str = "base"  # a name from course_utils.models.TINY_SHAPES
    init_seed: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=600, batch_size=16, lr=4e-3, eval_every=50))


BASE_RECIPE = PretrainRecipe()


def cache_key(name: str, *parts: object, data_files: tuple[str, ...] = ("manifest.json", "pretrain.jsonl")) -> str:
    """name plus a hash of the recipe parts and of the data files the artifact is built from."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for name_ in data_files:
        digest.update(data_path(name_).read_bytes())
    return f"{name}-{digest.hexdigest()[:12]}"


def tiny_tokenizer_dir() -> Path:
    """The cached tiny tokenizer (trained on the pretraining corpus), built if missing."""

    def build(out: Path) -> None:
        train_bpe_tokenizer(texts("pretrain.jsonl"), vocab_size=TOKENIZER_VOCAB_SIZE).save_pretrained(out)

    return cached_dir(tiny_tokenizer_key(), build)


def tiny_tokenizer_key() -> str:
    return cache_key("tiny-tokenizer", TOKENIZER_VOCAB_SIZE, CHAT_TEMPLATE)


def load_tiny_tokenizer():
    return load_tokenizer(tiny_tokenizer_dir())


def pretrain_blocks(tokenizer, corpus: str = "pretrain.jsonl"):
    """A corpus file packed into (n_blocks, BLOCK_SIZE) token blocks."""
    return pack_texts(texts(corpus), tokenizer, BLOCK_SIZE)


def pretrain_tiny_model(recipe: PretrainRecipe = BASE_RECIPE, progress: bool = True):
    """Train the tiny base model from scratch by recipe: returns (model, tokenizer, history)."""
    tokenizer = load_tiny_tokenizer()
    model = build_tiny_model(tokenizer, recipe.shape, seed=recipe.init_seed)
    history = train_causal_lm(
        model,
        pretrain_blocks(tokenizer),
        recipe.train,
        val_blocks=pretrain_blocks(tokenizer, "general_heldout.jsonl"),
        progress=progress,
    )
    return model, tokenizer, history


def tiny_base_key(recipe: PretrainRecipe = BASE_RECIPE) -> str:
    return cache_key(
        "tiny-base", shape_dict(recipe.shape), recipe.init_seed, asdict(recipe.train), tiny_tokenizer_key()
    )


def save_checkpoint(out: Path, model, tokenizer, history: dict | None = None) -> None:
    """save_pretrained (safetensors) for model and tokenizer, plus the training history."""
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if history is not None:
        write_json_atomic(out / "history.json", history)


def tiny_base_dir(recipe: PretrainRecipe = BASE_RECIPE) -> Path:
    """The cached tiny pretrained base model, trained by recipe if missing (about 1 min on 2 cores)."""

    def build(out: Path) -> None:
        print(f"building the tiny base model into the cache ({recipe.train.steps} steps)...")
        save_checkpoint(out, *pretrain_tiny_model(recipe))

    return cached_dir(tiny_base_key(recipe), build)


def load_tiny_base(recipe: PretrainRecipe = BASE_RECIPE):
    """(model, tokenizer) of the cached tiny base model."""
    path = tiny_base_dir(recipe)
    return load_model(path), load_tokenizer(path)
