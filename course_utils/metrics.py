"""Metrics several weeks share: next-token loss and perplexity, exact match, scoring fixed answer choices,
and the fact probe (how often a model ranks a person's true attribute first)."""

from __future__ import annotations

import math
import re
import string

import torch
from course_utils.data import load_world, pack_texts
from course_utils.env import autocast
from transformers import PreTrainedTokenizerBase


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, blocks: torch.Tensor, batch_size: int = 32, precision: str = "fp32") -> float:
    """Mean next-token cross-entropy of model over blocks (token-weighted)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        batch = blocks[i : i + batch_size].to(device)
        with autocast(device, precision):
            loss = model(input_ids=batch, labels=batch).loss
        n = batch.numel() - len(batch)  # predicted positions
        total += loss.item() * n
        count += n
    return total / count


def perplexity(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    block_size: int = 128,
    batch_size: int = 32,
) -> float:
    """exp(mean next-token loss) of model on texts packed into blocks (batch_size blocks at a time: a large
    vocabulary's logits take batch x block x vocab x 4 bytes)."""
    blocks = pack_texts(texts, tokenizer, block_size)
    return math.exp(evaluate_loss(model, blocks, batch_size))


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and extra spaces: "  Paris." and "paris" compare equal."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Fraction of predictions equal to their reference after normalize_answer."""
    if len(predictions) != len(references):
        raise ValueError(f"expected as many predictions as references, found {len(predictions)} and {len(references)}")
    if not references:
        return math.nan
    hits = sum(normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references))
    return hits / len(references)


@torch.no_grad()
def choice_logprobs(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompt: str, choices: list[str]
) -> list[float]:
    """Log-probability the model gives each choice as the continuation of prompt (summed over its tokens).

    All choices go through the model in one right-padded batch.
    """
    device = next(model.parameters()).device
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    choice_ids = [tokenizer(" " + c.strip(), add_special_tokens=False)["input_ids"] for c in choices]
    width = len(prompt_ids) + max(len(c) for c in choice_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(choices), width), pad, device=device)
    mask = torch.zeros_like(ids)
    for i, c in enumerate(choice_ids):
        ids[i, : len(prompt_ids) + len(c)] = torch.tensor(prompt_ids + c)
        mask[i, : len(prompt_ids) + len(c)] = 1
    logprobs = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
    scores = []
    for i, c in enumerate(choice_ids):
        positions = torch.arange(len(prompt_ids) - 1, len(prompt_ids) - 1 + len(c), device=device)
        scores.append(logprobs[i, positions, ids[i, positions + 1]].sum().item())
    return scores


def pick_choice(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompt: str, choices: list[str]) -> str:
    """The choice the model finds most likely after prompt."""
    scores = choice_logprobs(model, tokenizer, prompt, choices)
    return choices[max(range(len(choices)), key=scores.__getitem__)]


def fact_probe_accuracy(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    people: list[dict],
    templates: dict[str, str] | None = None,
    world: dict | None = None,
) -> dict[str, float]:
    """Per attribute, the fraction of people whose true value the model ranks first among the attribute's values.

    templates maps an attribute to a cloze prompt with ``{p}`` for the name (default: the world's probe
    prompts, e.g. "{p} lives in the town of"); world defaults to data/world.json.
    """
    world = world or load_world()
    templates = templates or world["probe_prompts"]
    result = {}
    for attribute, template in templates.items():
        choices = world["attributes"][attribute]
        hits = [pick_choice(model, tokenizer, template.format(p=p["name"]), choices) == p[attribute] for p in people]
        result[attribute] = sum(hits) / len(hits) if hits else math.nan
    return result
