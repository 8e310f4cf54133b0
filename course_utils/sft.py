"""Supervised fine-tuning (SFT): the tiny SFT model later weeks start from, and instruction evaluation.

The recipe is TRL's own ``SFTConfig``; week 2 shows it unwrapped and trains with it, and
``tiny_sft_dir()`` builds the same model into the artifact cache for weeks that need it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
from transformers import PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer

from course_utils.cache import cached_dir
from course_utils.checkpoints import cache_key, load_tiny_base, save_checkpoint, tiny_base_key
from course_utils.data import read_jsonl
from course_utils.env import use_low_precision
from course_utils.metrics import normalize_answer


@dataclass(frozen=True)
class SFTRecipe:
    """What defines the cached tiny SFT model (everything else is an SFTConfig default)."""

    epochs: float = 6.0
    lr: float = 2e-3
    batch_size: int = 32
    max_length: int = 128
    seed: int = 0


SFT_RECIPE = SFTRecipe()


def to_messages(row: dict) -> dict:
    """An instruction row as a two-turn conversation, the format TRL's conversational SFT expects."""
    return {"messages": [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]}


def sft_dataset(rows: list[dict]) -> datasets.Dataset:
    """Conversational dataset (one ``messages`` column) from instruction rows."""
    return datasets.Dataset.from_list([to_messages(r) for r in rows])


def sft_config(output_dir: str | Path, recipe: SFTRecipe = SFT_RECIPE, **overrides) -> SFTConfig:
    """TRL's SFTConfig for the course: loss on the assistant's tokens only, no checkpoints, no reporting."""
    values = dict(
        output_dir=str(output_dir),
        num_train_epochs=recipe.epochs,
        learning_rate=recipe.lr,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        per_device_train_batch_size=recipe.batch_size,
        max_length=recipe.max_length,
        assistant_only_loss=True,  # needs {% generation %} markers in the chat template
        bf16=use_low_precision(),  # bf16 only where this hardware runs it fast; never fp16 on CPU
        logging_steps=20,
        save_strategy="no",
        report_to="none",
        seed=recipe.seed,
        data_seed=recipe.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    values.update(overrides)
    return SFTConfig(**values)


def train_sft(model, tokenizer: PreTrainedTokenizerBase, rows: list[dict], config: SFTConfig) -> SFTTrainer:
    """Fine-tune model on instruction rows with TRL's SFTTrainer; returns the trainer (its log is the history)."""
    trainer = SFTTrainer(model=model, args=config, train_dataset=sft_dataset(rows), processing_class=tokenizer)
    trainer.train()
    model.eval()
    return trainer


def tiny_sft_key(recipe: SFTRecipe = SFT_RECIPE) -> str:
    return cache_key("tiny-sft", tiny_base_key(), recipe.__dict__, data_files=("instruct_train.jsonl",))


def tiny_sft_dir(recipe: SFTRecipe = SFT_RECIPE) -> Path:
    """The cached tiny SFT model: the tiny base fine-tuned on instruct_train.jsonl by recipe (~1 min)."""

    def build(out: Path) -> None:
        model, tokenizer = load_tiny_base()
        with tempfile.TemporaryDirectory() as tmp:
            trainer = train_sft(model, tokenizer, read_jsonl("instruct_train.jsonl"), sft_config(tmp, recipe))
        save_checkpoint(out, model, tokenizer, {"log_history": trainer.state.log_history})

    return cached_dir(tiny_sft_key(recipe), build)


@torch.no_grad()
def generate_answers(
    model, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int = 12, batch_size: int = 64
) -> list[str]:
    """Greedy answers to user prompts, each rendered with the chat template; decoded up to end of turn."""
    device = next(model.parameters()).device
    end_ids = [i for i in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")} if i is not None]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues on the right
    answers = []
    try:
        for i in range(0, len(prompts), batch_size):
            chats = [[{"role": "user", "content": p}] for p in prompts[i : i + batch_size]]
            texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=end_ids,
                pad_token_id=tokenizer.pad_token_id,
            )
            answers += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [a.strip() for a in answers]


def accuracy_by(rows: list[dict], answers: list[str], key: str = "task") -> dict[str, float]:
    """Exact-match accuracy of answers against rows' responses, grouped by rows[key]."""
    groups: dict[str, list[bool]] = {}
    for row, answer in zip(rows, answers, strict=True):
        groups.setdefault(row[key], []).append(normalize_answer(answer) == normalize_answer(row["response"]))
    return {k: sum(v) / len(v) for k, v in sorted(groups.items())}


def load_tiny_sft(recipe: SFTRecipe = SFT_RECIPE):
    """(model, tokenizer) of the cached tiny SFT model."""
    from course_utils.models import load_model, load_tokenizer

    path = tiny_sft_dir(recipe)
    return load_model(path), load_tokenizer(path)
