"""DPO: the one definition of week 4's DPO policy.

* ``DPORecipe`` / ``dpo_config()``: the recipe, as TRL's own ``DPOConfig`` (week 4 shows it unwrapped).
* ``train_dpo()``: ``DPOTrainer`` on the ranked preference pairs, against a frozen reference.
* ``tiny_dpo_dir()`` / ``load_tiny_dpo()``: the chatty SFT model of week 3 (where RLHF starts, also DPO's reference)
  trained with DPO on every ranked training pair, built on demand into the artifact cache.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
from course_utils.checkpoints import cache_key, cached_checkpoint, trainer_history
from course_utils.data import read_jsonl
from course_utils.env import check_precision
from course_utils.rlhf import load_policy, preference_pairs, tiny_chatty_sft_dir, tiny_chatty_sft_key
from course_utils.training import trainer_arguments, without_log_lines
from transformers import PreTrainedTokenizerBase
from trl import DPOConfig, DPOTrainer


@dataclass(frozen=True)
class DPORecipe:
    """The values that define a DPO run; everything else is a DPOConfig default."""

    beta: float = 0.1  # strength of the pull towards the reference: the beta of the KL-regularised objective
    sft_weight: float = 1.0  # weight of the NLL of the chosen answers (RPO); 0 is plain DPO
    epochs: float = 0.5  # half a pass over the 3,840 pairs (a seeded random half): about 40 s on 2 cores
    lr: float = 2e-4
    batch_size: int = 32  # pairs per optimizer step
    max_length: int = 128  # tokens of prompt + response; the longest pair has about 110
    seed: int = 0
    precision: str = "fp32"

    def __post_init__(self):
        if self.beta <= 0:
            raise ValueError(f"beta must be positive (it scales the implicit reward), found {self.beta}")
        check_precision(self.precision)


DPO_RECIPE = DPORecipe()
SMALL_DPO_RECIPE = DPORecipe(lr=5e-6, batch_size=16, max_length=256)  # SmolLM2-135M: pretrained, a gentle rate


def dpo_config(output_dir: str | Path, recipe: DPORecipe = DPO_RECIPE, **overrides) -> DPOConfig:
    """TRL's DPOConfig for recipe: the sigmoid (original DPO) loss, plus the SFT term if sft_weight; beta, precision."""
    values = trainer_arguments(output_dir, recipe.epochs, recipe.lr, recipe.batch_size, recipe.precision, recipe.seed)
    values.update(beta=recipe.beta, max_length=recipe.max_length, warmup_steps=5)
    if recipe.sft_weight:  # DPO plus the chosen answers' next-token loss (RPO): keeps their likelihood up
        values.update(loss_type=["sigmoid", "sft"], loss_weights=[1.0, recipe.sft_weight])
    values.update(overrides)
    return DPOConfig(**values)


def train_dpo(model, reference, tokenizer: PreTrainedTokenizerBase, pairs: list[dict], config: DPOConfig) -> DPOTrainer:
    """Train model in place with TRL's DPOTrainer on preference pairs against the frozen reference."""
    trainer = DPOTrainer(
        model=model,
        ref_model=reference,
        args=config,
        train_dataset=datasets.Dataset.from_list(pairs),
        processing_class=tokenizer,
    )
    without_log_lines(trainer).train()
    model.eval()
    return trainer


def tiny_dpo_key(recipe: DPORecipe = DPO_RECIPE) -> str:
    return cache_key("tiny-dpo", asdict(recipe), tiny_chatty_sft_key(), data_files=("preference_train.jsonl",))


def tiny_dpo_dir(recipe: DPORecipe = DPO_RECIPE, trained: tuple | None = None) -> Path:
    """The cached DPO policy, trained by recipe from the chatty SFT model if missing.

    trained: (model, tokenizer, trainer) that week 4 already trained by exactly this recipe; saved instead.
    """

    def train() -> tuple:
        reference, tokenizer = load_policy(tiny_chatty_sft_dir())
        model = copy.deepcopy(reference)
        pairs = preference_pairs(read_jsonl("preference_train.jsonl"))
        with tempfile.TemporaryDirectory() as tmp:
            trainer = train_dpo(model, reference.requires_grad_(False), tokenizer, pairs,
                                dpo_config(tmp, recipe, disable_tqdm=True))  # fmt: skip
        return model, tokenizer, trainer_history(trainer)

    return cached_checkpoint(tiny_dpo_key(recipe), train, trained, "the tiny DPO policy")


def load_tiny_dpo(recipe: DPORecipe = DPO_RECIPE):
    """(DPO policy, tokenizer) from the cache, in eval mode, generation stopping at the end of turn."""
    return load_policy(tiny_dpo_dir(recipe))
