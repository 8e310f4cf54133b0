"""The training loop for the tiny model: next-token prediction on packed blocks of tokens.

Week 1 teaches with it and the artifact cache builds the tiny base model with it: one loop,
short enough to read top to bottom. It autocasts to bf16 where the hardware runs bf16 fast
(GPUs, CPUs with AVX512-BF16 or AMX) and stays in fp32 where bf16 is emulated (AVX2-only CPUs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from course_utils.env import autocast_dtype, use_low_precision


@dataclass
class TrainConfig:
    """Hyper-parameters of one causal-LM training run."""

    steps: int = 600  # optimizer steps
    batch_size: int = 16  # blocks per step
    lr: float = 3e-3  # peak learning rate (tiny models like it high)
    warmup_steps: int = 30  # linear warm-up, then cosine decay to lr / 10
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100  # steps between validation losses (0: never)
    seed: int = 0  # order of the batches
    bf16: bool | None = None  # autocast to bfloat16; None: where this hardware runs it fast

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, found {self.steps} and {self.batch_size}")


def pack_texts(texts: list[str], tokenizer: PreTrainedTokenizerBase, block_size: int = 128) -> torch.Tensor:
    """Tokenize texts, join them with end-of-text tokens and cut into blocks: (n_blocks, block_size)."""
    ids: list[int] = []
    for encoded in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids.extend(encoded + [tokenizer.eos_token_id])
    n = len(ids) // block_size
    if n == 0:
        raise ValueError(f"need at least {block_size} tokens to make one block, found {len(ids)}")
    return torch.tensor(ids[: n * block_size]).view(n, block_size)


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to a tenth of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module, blocks: torch.Tensor, batch_size: int = 32, bf16: bool | None = None
) -> float:
    """Mean next-token cross-entropy of model over blocks (token-weighted)."""
    model.eval()
    device = next(model.parameters()).device
    bf16 = use_low_precision(device) if bf16 is None else bf16
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        batch = blocks[i : i + batch_size].to(device)
        with torch.autocast(device.type, dtype=autocast_dtype(device), enabled=bf16):
            loss = model(input_ids=batch, labels=batch).loss
        n = batch.numel() - len(batch)  # predicted positions
        total += loss.item() * n
        count += n
    return total / count


def train_causal_lm(
    model: torch.nn.Module,
    train_blocks: torch.Tensor,
    config: TrainConfig,
    val_blocks: torch.Tensor | None = None,
    progress: bool = True,
) -> dict:
    """Train model on random batches of train_blocks; return the loss history and throughput."""
    device = next(model.parameters()).device
    bf16 = use_low_precision(device) if config.bf16 is None else config.bf16
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    generator = torch.Generator().manual_seed(config.seed)
    history = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    tokens, start = 0, time.perf_counter()
    bar = tqdm(range(config.steps), desc="training", disable=not progress, mininterval=1.0)
    for step in bar:
        if val_blocks is not None and config.eval_every and step % config.eval_every == 0:
            history["val_step"].append(step)
            history["val_loss"].append(evaluate_loss(model, val_blocks, bf16=bf16))
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        idx = torch.randint(len(train_blocks), (config.batch_size,), generator=generator)
        batch = train_blocks[idx].to(device)
        with torch.autocast(device.type, dtype=autocast_dtype(device), enabled=bf16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += batch.numel()
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if val_blocks is not None:
        history["val_step"].append(config.steps)
        history["val_loss"].append(evaluate_loss(model, val_blocks, bf16=bf16))
    history["wall_s"] = time.perf_counter() - start
    history["tokens_per_s"] = tokens / history["wall_s"]
    model.eval()
    return history
