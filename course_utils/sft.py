"""Supervised fine-tuning (SFT): the one definition of the course's tiny SFT model, and how to score it.

* ``SFT_RECIPE`` and ``sft_config()``: the recipe, as TRL's own ``SFTConfig`` (week 2 shows it unwrapped).
* ``to_messages()`` / ``sft_dataset()``: instruction rows as two-turn conversations, TRL's conversational format.
* ``train_sft()`` / ``train_tiny_sft()``: ``SFTTrainer`` on those conversations, loss on the assistant's tokens only.
* ``tiny_sft_dir()`` / ``load_tiny_sft()``: the tiny base model fine-tuned on ``instruct_train.jsonl`` by the
  recipe, built on demand into the artifact cache (about 40 s on 2 CPU cores) for the weeks that start from it.
* ``generate_answers()`` / ``accuracy_by()``: greedy, batched answers to chat prompts, and exact match per group.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import torch
from course_utils.checkpoints import cache_key, cached_checkpoint, load_tiny_base, tiny_base_key, trainer_history
from course_utils.data import read_jsonl
from course_utils.env import check_precision
from course_utils.metrics import exact_match
from course_utils.models import load_model, load_tokenizer
from course_utils.tokenizer import IM_END
from course_utils.training import trainer_arguments, without_log_lines
from transformers import PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer


@dataclass(frozen=True)
class SFTRecipe:
    """The values that define an SFT run; everything else is an SFTConfig default."""

    epochs: float = 6.0  # passes over the training rows
    lr: float = 5e-4  # peak learning rate; 2e-3 learns no better and wrecks general text (perplexity x300)
    batch_size: int = 32  # conversations per optimizer step
    warmup_steps: int = 10  # linear warm-up, then cosine decay to 0
    weight_decay: float = 0.0
    max_length: int = 128  # tokens; the longest training conversation has about 70
    seed: int = 0  # model init of new heads, data order
    precision: str = "fp32"  # "fp32", "bf16" or "fp16" (GPUs only); see course_utils.env.choose_precision

    def __post_init__(self):
        if self.epochs <= 0 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError(
                f"epochs, lr and batch_size must be positive, found {self.epochs}, {self.lr}, {self.batch_size}"
            )
        check_precision(self.precision)


SFT_RECIPE = SFTRecipe()  # the cached tiny SFT model
SMALL_SFT_RECIPE = SFTRecipe(epochs=2.0, lr=1e-4, batch_size=16, max_length=256)  # SmolLM2-135M; precision per run


def to_messages(row: dict) -> list[dict[str, str]]:
    """An instruction row ({"prompt", "response", ...}) as a user turn and an assistant turn."""
    missing = [k for k in ("prompt", "response") if k not in row]
    if missing:
        raise ValueError(f"an instruction row needs 'prompt' and 'response', found {sorted(row)}; see data/README.md")
    return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]


def sft_dataset(rows: list[dict]) -> datasets.Dataset:
    """A conversational dataset (one ``messages`` column), the format TRL's SFTTrainer expects for chat data."""
    return datasets.Dataset.from_list([{"messages": to_messages(r)} for r in rows])


def sft_config(output_dir: str | Path, recipe: SFTRecipe = SFT_RECIPE, **overrides) -> SFTConfig:
    """TRL's SFTConfig for recipe: assistant-only loss, the recipe's precision, no checkpoints saved."""
    values = trainer_arguments(output_dir, recipe.epochs, recipe.lr, recipe.batch_size, recipe.precision, recipe.seed)
    values.update(
        warmup_steps=recipe.warmup_steps,
        weight_decay=recipe.weight_decay,
        max_length=recipe.max_length,
        assistant_only_loss=True,  # needs {% generation %} markers in the chat template
        packing=False,
    )
    values.update(overrides)
    return SFTConfig(**values)


def train_sft(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, rows: list[dict], config: SFTConfig
) -> SFTTrainer:
    """Fine-tune model in place on instruction rows with TRL's SFTTrainer and config; return the trainer."""
    trainer = SFTTrainer(model=model, args=config, train_dataset=sft_dataset(rows), processing_class=tokenizer)
    without_log_lines(trainer).train()
    model.eval()
    return trainer


def train_tiny_sft(
    base_model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict] | None = None,
    recipe: SFTRecipe = SFT_RECIPE,
    **overrides,
) -> SFTTrainer:
    """Fine-tune base_model in place by recipe on instruction rows (default: instruct_train.jsonl).

    overrides go to sft_config (e.g. max_steps=100). The trainer's ``state.log_history`` is the loss curve.
    """
    rows = read_jsonl("instruct_train.jsonl") if rows is None else rows
    with tempfile.TemporaryDirectory() as tmp:
        return train_sft(base_model, tokenizer, rows, sft_config(tmp, recipe, **overrides))


def tiny_sft_key(recipe: SFTRecipe = SFT_RECIPE) -> str:
    """Cache key: hash of the recipe, of the base model's key (tokenizer and chat template included) and the data."""
    return cache_key("tiny-sft", asdict(recipe), tiny_base_key(), data_files=("instruct_train.jsonl",))


def tiny_sft_dir(recipe: SFTRecipe = SFT_RECIPE, trained: tuple | None = None) -> Path:
    """The cached tiny SFT model: the tiny base fine-tuned on instruct_train.jsonl by recipe, built if missing.

    trained: (model, tokenizer, trainer) that a notebook already fine-tuned by exactly this recipe; saved
    instead of training again (week 2 does this). The entry is written here and nowhere else.
    """

    def train() -> tuple:
        model, tokenizer = load_tiny_base()
        return model, tokenizer, trainer_history(train_tiny_sft(model, tokenizer, recipe=recipe, disable_tqdm=True))

    return cached_checkpoint(tiny_sft_key(recipe), train, trained, "the tiny SFT model")


def load_tiny_sft(recipe: SFTRecipe = SFT_RECIPE):
    """(model, tokenizer) of the cached tiny SFT model, in eval mode."""
    path = tiny_sft_dir(recipe)
    return load_model(path).eval(), load_tokenizer(path)


def chat_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[str]:
    """Each prompt as a user turn rendered by the chat template, ending with the cue for the assistant's answer."""
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids that end an answer: the chat template's end of turn and the end-of-text token."""
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(IM_END)}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


@torch.no_grad()
def generate_answers(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int = 12,
    batch_size: int = 64,
    chat: bool = True,
) -> list[str]:
    """Greedy answers to user prompts, each rendered with the chat template; decoded up to the end of turn.

    chat=False continues the prompts as plain text instead (a base model's few-shot prompt) and keeps the first line.
    """
    model.eval()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues on the right
    answers: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            texts = prompts[i : i + batch_size]
            texts = chat_prompts(tokenizer, texts) if chat else texts
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=end_of_turn_ids(tokenizer),
                pad_token_id=pad_id,
            )  # (B, prompt + new tokens)
            answers += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [a.strip() if chat else (a.strip().splitlines() or [""])[0] for a in answers]


def accuracy_by(rows: list[dict], answers: list[str], key: str = "task") -> dict[str, float]:
    """Exact-match accuracy of answers against the rows' responses, per value of rows[key] (e.g. task, split)."""
    if len(rows) != len(answers):
        raise ValueError(f"expected one answer per row, found {len(answers)} answers for {len(rows)} rows")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row[key], []).append(i)
    return {
        name: exact_match([answers[i] for i in idx], [rows[i]["response"] for i in idx])
        for name, idx in sorted(groups.items())
    }
