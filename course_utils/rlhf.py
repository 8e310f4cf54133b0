"""RLHF's first two models, one definition each: the policy RLHF starts from and the reward model (week 3).

* ``tiny_chatty_sft_dir()``: the week 2 SFT model fine-tuned on the *correct* responses of the preference data, in
  every tone and length, so that its samples vary the way the labeller's rankings do (polite or rude, short or
  rambling). It is the policy RLHF starts from and its frozen reference (weeks 3 and 4).
* ``preference_pairs()``: a ranking of K responses as K(K-1)/2 (chosen, rejected) pairs, ties dropped.
* ``RewardRecipe`` / ``reward_config()`` / ``tiny_reward_dir()``: a scalar head on that backbone, trained with TRL's
  ``RewardTrainer`` (Bradley-Terry loss); ``reward_scores()`` scores new responses with it.

The policy-optimisation step that uses them (PPO written out, TRL's RLOO) is ``course_utils.ppo``.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import datasets
import torch
from course_utils.checkpoints import (
    cache_key,
    cached_checkpoint,
    save_checkpoint,
    small_model_source,
    trainer_history,
)
from course_utils.data import read_jsonl
from course_utils.env import check_precision, get_device
from course_utils.labeller import judge
from course_utils.models import load_model, load_tokenizer
from course_utils.sft import (
    SFTRecipe,
    end_of_turn_ids,
    load_tiny_sft,
    sft_config,
    tiny_sft_key,
    train_sft,
    train_tiny_sft,
)
from course_utils.tokenizer import CHAT_TEMPLATE
from course_utils.training import trainer_arguments, without_log_lines
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging
from trl import RewardConfig, RewardTrainer

# The responses use words the tiny tokenizer spells letter by letter ("Ugh", "obviously"): a high rate, 3 passes.
CHATTY_RECIPE = SFTRecipe(epochs=3.0, lr=1e-3)
SMALL_CHATTY_RECIPE = SFTRecipe(epochs=1.0, lr=1e-4, batch_size=16, max_length=256)  # SmolLM2-135M; precision per run


def chatty_rows(rows: list[dict] | None = None) -> list[dict]:
    """Instruction rows from the preference data: each prompt with each of its *correct* responses."""
    rows = read_jsonl("preference_train.jsonl") if rows is None else rows
    return [
        {"prompt": r["prompt"], "response": text}
        for r in rows
        for text in r["responses"]
        if judge(text, r["answer"])["correct"]
    ]


def tiny_chatty_sft_key(recipe: SFTRecipe = CHATTY_RECIPE) -> str:
    return cache_key("tiny-chatty-sft", asdict(recipe), tiny_sft_key(), data_files=("preference_train.jsonl",))


def tiny_chatty_sft_dir(recipe: SFTRecipe = CHATTY_RECIPE) -> Path:
    """The cached policy RLHF starts from: the tiny SFT model fine-tuned on chatty_rows() (about 45 s on 2 cores)."""

    def train() -> tuple:
        model, tokenizer = load_tiny_sft()
        trainer = train_tiny_sft(model, tokenizer, chatty_rows(), recipe, disable_tqdm=True)
        return model, tokenizer, trainer_history(trainer)

    return cached_checkpoint(tiny_chatty_sft_key(recipe), train, None, "the chatty SFT model (where RLHF starts)")


def small_chatty_sft_dir(out_dir: Path, precision: str, seed: int = 0) -> Path:
    """The small profile's start: SmolLM2-135M-Instruct fine-tuned on chatty_rows() by SMALL_CHATTY_RECIPE, saved
    into out_dir (not cached: a GPU trains it in about half a minute). Offline, the Instruct model comes from the GGUF."""
    source = small_model_source("instruct")
    model, tokenizer = load_model(source).to(get_device()), load_tokenizer(source)
    tokenizer.chat_template = CHAT_TEMPLATE  # SmolLM2's ChatML, plus the {% generation %} markers TRL needs
    recipe = replace(SMALL_CHATTY_RECIPE, seed=seed, precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        train_sft(model, tokenizer, chatty_rows(), sft_config(tmp, recipe))
    save_checkpoint(out_dir, model, tokenizer)
    return Path(out_dir)


def load_policy(path: Path):
    """(model, tokenizer) in eval mode, generation set to stop at the end of the assistant's turn."""
    model, tokenizer = load_model(path).eval(), load_tokenizer(path)
    model.generation_config.eos_token_id = end_of_turn_ids(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


# ----------------------------------------------------------------------------------------------- reward model


def ranking_pairs(ranking: list[int], scores: list[int]) -> list[tuple[int, int]]:
    """(better, worse) index pairs of one ranking (best first): each response against every one ranked below it,
    K(K-1)/2 of them for K responses; equal scores carry no preference and give no pair."""
    return [(a, b) for i, a in enumerate(ranking) for b in ranking[i + 1 :] if scores[a] > scores[b]]


def preference_pairs(rows: list[dict]) -> list[dict]:
    """Every (better, worse) pair of each row's ranking, in TRL's conversational preference format.

    A ranking of K responses gives K(K-1)/2 pairs; pairs the labeller scored equal carry no preference and are dropped.
    """
    return [
        {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "chosen": [{"role": "assistant", "content": row["responses"][better]}],
            "rejected": [{"role": "assistant", "content": row["responses"][worse]}],
        }
        for row in rows
        for better, worse in ranking_pairs(row["ranking"], row["scores"])
    ]


@dataclass(frozen=True)
class RewardRecipe:
    """The values that define a reward-model run; everything else is a RewardConfig default."""

    epochs: float = 1.0
    lr: float = 1e-3
    batch_size: int = 32  # pairs per optimizer step
    max_length: int = 128  # tokens of prompt + response; the longest pair has about 110
    seed: int = 0
    precision: str = "fp32"

    def __post_init__(self):
        check_precision(self.precision)


REWARD_RECIPE = RewardRecipe()
SMALL_REWARD_RECIPE = RewardRecipe(lr=5e-5, batch_size=16, max_length=256)  # SmolLM2-135M: pretrained, a gentler rate


def reward_config(output_dir: str | Path, recipe: RewardRecipe = REWARD_RECIPE, **overrides) -> RewardConfig:
    """TRL's RewardConfig for recipe (its bf16 default is replaced by the course's precision rule)."""
    values = trainer_arguments(output_dir, recipe.epochs, recipe.lr, recipe.batch_size, recipe.precision, recipe.seed)
    values.update(warmup_steps=5, max_length=recipe.max_length)
    values.update(overrides)
    return RewardConfig(**values)


def new_reward_model(backbone: str | Path, tokenizer: PreTrainedTokenizerBase, seed: int = 0):
    """The backbone with a fresh scalar head (num_labels=1) that reads the last token of the text.

    transformers reports the head's weight as missing from the checkpoint, in a box on stderr: it is the new head,
    so that report is silenced and checked instead (any other missing or unexpected weight is an error).
    """
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            backbone, num_labels=1, output_loading_info=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    unexpected = [k for k in info["unexpected_keys"] if not k.startswith("lm_head")]  # the LM head is dropped
    if set(info["missing_keys"]) != {"score.weight"} or unexpected:
        raise RuntimeError(f"expected {backbone} to lack only the new head score.weight, found missing "
                           f"{sorted(info['missing_keys'])} and unexpected {sorted(unexpected)}")  # fmt: skip
    model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last token that is not padding
    return model


def train_reward_model(model, tokenizer, pairs: list[dict], config: RewardConfig, eval_pairs=None) -> RewardTrainer:
    """Train model in place on preference pairs with TRL's RewardTrainer; return the trainer."""
    trainer = RewardTrainer(
        model=model,
        args=config,
        train_dataset=datasets.Dataset.from_list(pairs),
        eval_dataset=datasets.Dataset.from_list(eval_pairs) if eval_pairs else None,
        processing_class=tokenizer,
    )
    without_log_lines(trainer).train()
    model.eval()
    return trainer


def reward_model_from(backbone: Path, recipe: RewardRecipe = REWARD_RECIPE) -> tuple:
    """(reward model, tokenizer, trainer): a scalar head on backbone, trained by recipe on every ranked training pair.

    The tiny profile caches the result (tiny_reward_dir); the small profile trains it where it runs (a GPU: ~20 s).
    """
    tokenizer = load_tokenizer(backbone)
    model = new_reward_model(backbone, tokenizer, recipe.seed).to(get_device())
    pairs = preference_pairs(read_jsonl("preference_train.jsonl"))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = train_reward_model(model, tokenizer, pairs, reward_config(tmp, recipe, disable_tqdm=True))
    return model, tokenizer, trainer


def tiny_reward_key(recipe: RewardRecipe = REWARD_RECIPE) -> str:
    return cache_key("tiny-reward", asdict(recipe), tiny_chatty_sft_key(), data_files=("preference_train.jsonl",))


def tiny_reward_dir(recipe: RewardRecipe = REWARD_RECIPE, trained: tuple | None = None) -> Path:
    """The cached reward model: the chatty SFT backbone + scalar head, trained on every ranked training pair.

    trained: (model, tokenizer, trainer) that week 3 already trained by exactly this recipe; saved instead of training
    again. The entry is written here and nowhere else.
    """

    def train() -> tuple:
        model, tokenizer, trainer = reward_model_from(tiny_chatty_sft_dir(), recipe)
        return model, tokenizer, trainer_history(trainer)

    return cached_checkpoint(tiny_reward_key(recipe), train, trained, "the tiny reward model")


def load_tiny_reward_model(recipe: RewardRecipe = REWARD_RECIPE):
    """(reward model, tokenizer) from the cache, in eval mode."""
    path = tiny_reward_dir(recipe)
    return AutoModelForSequenceClassification.from_pretrained(path).eval(), load_tokenizer(path)


def render_chats(tokenizer: PreTrainedTokenizerBase, prompts: list[str], responses: list[str]) -> list[str]:
    """Each (prompt, response) as the chat text the reward model was trained on."""
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
        )
        for p, r in zip(prompts, responses)
    ]


@torch.no_grad()
def reward_scores(reward_model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 64):
    """The reward model's scalar for each (prompt, response), as a float tensor on the CPU."""
    if len(prompts) != len(responses):
        raise ValueError(f"expected one response per prompt, found {len(responses)} for {len(prompts)} prompts")
    device = next(reward_model.parameters()).device
    texts, scores = render_chats(tokenizer, prompts, responses), []
    side, tokenizer.padding_side = tokenizer.padding_side, "right"  # as RewardTrainer pads
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            scores.append(reward_model(**enc.to(device)).logits.squeeze(-1).float().cpu())
    finally:
        tokenizer.padding_side = side
    return torch.cat(scores)
