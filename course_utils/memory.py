"""Memory accounting for training: how many bytes each parameter costs.

Training with AdamW keeps, per parameter:
- the weight itself (4 bytes in fp32, 2 in bf16),
- for trainable parameters: its gradient (same dtype as the weight) and AdamW's two moments
  (exp_avg and exp_avg_sq, 4 bytes each in fp32), plus, under mixed precision with bf16 weights,
  an fp32 master copy (4 bytes).
Full fp32 fine-tuning is therefore 4 + 4 + 8 = 16 bytes per parameter; LoRA pays the 16 bytes only
for its adapters and 4 (or 2) for the frozen base. Activations come on top and grow with batch x length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MemoryEstimate:
    """Predicted bytes, by kind."""

    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations


def training_memory(
    n_params: int,
    n_trainable: int,
    weight_bytes: int = 4,
    optimizer_bytes_per_param: int = 8,
    master_copy_bytes: int = 0,
    activation_bytes: int = 0,
) -> MemoryEstimate:
    """Bytes needed to train: weights for all parameters; gradients and optimizer state for trainable ones."""
    return MemoryEstimate(
        weights=n_params * weight_bytes,
        gradients=n_trainable * weight_bytes,
        optimizer=n_trainable * (optimizer_bytes_per_param + master_copy_bytes),
        activations=activation_bytes,
    )


def activation_bytes_llama(config, batch: int, seq_len: int, dtype_bytes: int = 4) -> int:
    """A rough count of the activations a Llama keeps for backward, without activation checkpointing.

    Per layer and token: about 16 hidden-size vectors (norms, q/k/v/o, residuals) and 4 MLP-width vectors
    (gate, up, their product, down input); plus the logits and their softmax over the vocabulary.
    """
    tokens = batch * seq_len
    per_layer = tokens * (16 * config.hidden_size + 4 * config.intermediate_size) * dtype_bytes
    logits = 2 * tokens * config.vocab_size * 4  # logits and log-softmax, kept in fp32
    return config.num_hidden_layers * per_layer + logits


def optimizer_state_bytes(optimizer) -> int:
    """Bytes an optimizer holds in state tensors (AdamW: exp_avg and exp_avg_sq per trainable parameter).

    Measured from the optimizer itself, so it checks the 8 bytes per trainable parameter that training_memory
    assumes. Accepts a torch optimizer or accelerate's wrapper around one (a Trainer's ``trainer.optimizer``).
    """
    inner = getattr(optimizer, "optimizer", optimizer)
    return sum(
        t.numel() * t.element_size()
        for state in inner.state.values()
        for t in state.values()
        if torch.is_tensor(t) and t.dim() > 0  # skip the per-parameter step counters (scalars)
    )


def saved_activation_bytes(model: torch.nn.Module, batch: dict) -> int:
    """Bytes autograd keeps for backward during one training forward of model on batch (parameters not counted).

    Every tensor saved for backward passes through a saved-tensors hook; we add up the storage of those that are not
    parameters, each storage once. With activation checkpointing on, only what the checkpoints keep is counted: the
    hooks do not see what is recomputed in backward. Runs the backward pass too, so the graph is freed.
    """
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return total
