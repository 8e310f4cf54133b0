"""The training loop for the tiny model: next-token prediction on packed blocks of tokens.

Week 1 teaches with it and the artifact cache builds the tiny base model with it: one loop,
short enough to read top to bottom. Its precision is part of the config (fp32 unless told
otherwise; ``course_utils.env.choose_precision`` says which one a profile uses on this hardware),
so the same config and seed give the same model on a busy machine and an idle one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from course_utils.env import autocast, check_precision
from course_utils.metrics import evaluate_loss
from tqdm.auto import tqdm


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
    precision: str = "fp32"  # "fp32", or autocast to "bf16" / "fp16" (fp16 with loss scaling, GPUs only)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, found {self.steps} and {self.batch_size}")
        check_precision(self.precision)


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to a tenth of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_causal_lm(
    model: torch.nn.Module,
    train_blocks: torch.Tensor,
    config: TrainConfig,
    val_blocks: torch.Tensor | None = None,
    progress: bool = True,
) -> dict:
    """Train model on random batches of train_blocks; return the loss history and throughput."""
    device = next(model.parameters()).device
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")  # fp16 gradients underflow
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
        fused=device.type == "cuda",  # one kernel for the whole update on a GPU (bench: tools/bench_gpu.py)
    )
    generator = torch.Generator().manual_seed(config.seed)
    history = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    tokens, start = 0, time.perf_counter()
    bar = tqdm(range(config.steps), desc="training", disable=not progress, mininterval=1.0)
    for step in bar:
        if val_blocks is not None and config.eval_every and step % config.eval_every == 0:
            history["val_step"].append(step)
            history["val_loss"].append(evaluate_loss(model, val_blocks, precision=config.precision))
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        idx = torch.randint(len(train_blocks), (config.batch_size,), generator=generator)
        batch = train_blocks[idx].to(device)
        with autocast(device, config.precision):
            loss = model(input_ids=batch, labels=batch).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        tokens += batch.numel()
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if val_blocks is not None:
        history["val_step"].append(config.steps)
        history["val_loss"].append(evaluate_loss(model, val_blocks, precision=config.precision))
    history["wall_s"] = time.perf_counter() - start
    history["tokens_per_s"] = tokens / history["wall_s"]
    model.eval()
    return history


def without_log_lines(trainer):
    """trainer, made silent when its arguments ask for no progress bar (``disable_tqdm=True``).

    transformers then prints every log dictionary instead of a bar: a cache build, or a loop that prints its own
    line per run, wants neither.
    """
    from transformers.trainer_callback import PrinterCallback

    if trainer.args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)
    return trainer


def trainer_arguments(output_dir, epochs: float, lr: float, batch_size: int, precision: str, seed: int) -> dict:
    """The arguments every TRL trainer of the course shares (SFTConfig, RewardConfig, ...), as a dict.

    Cosine schedule, mixed precision by the course's rule, no activation checkpointing (TRL turns it on: memory a
    tiny model does not need, paid for in time), no checkpoints or reports, a progress bar.
    """
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        per_device_train_batch_size=batch_size,
        activation_checkpointing=False,
        bf16=precision == "bf16",  # mixed precision: autocast over fp32 master weights
        fp16=precision == "fp16",  # with loss scaling; only on GPUs without native bf16
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,  # pinned host memory speeds up large host-to-GPU copies; ours are tiny
        disable_tqdm=False,  # a progress bar (True: none, and no log lines when the trainer goes through without_log_lines)
    )
