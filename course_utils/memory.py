"""Memory accounting for training: how many bytes each parameter costs.

Training with AdamW keeps, per parameter:
- the weight itself (4 bytes in fp32, 2 in bf16),
- for trainable parameters: its gradient (same dtype as the weight) and AdamW's two moments
  (exp_avg and exp_avg_sq, 4 bytes each in fp32), plus, under mixed precision with bf16 weights,
  an fp32 master copy (4 bytes).
Full fp32 fine-tuning is therefore 4 + 4 + 8 = 16 bytes per parameter; LoRA pays the 16 bytes only
for its adapters and 4 (or 2) for the frozen base. Activations come on top and grow with batch x length.

The bonus week scales these counts out:
- ``bytes_per_param(method)``: the bytes of model state per parameter for fp32 and mixed-precision AdamW, 8-bit
  AdamW, LoRA and QLoRA (the table of week 8, section 1);
- ``zero_memory(n_params, n_devices, stage)``: per-device bytes of model state under data parallelism and ZeRO
  stages 1-3 and offload, by the formulas of the ZeRO paper (Rajbhandari et al., 2020);
- ``zero_communication(n_params, n_devices, stage)``: bytes each device sends per step under the same scheme.
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


@dataclass(frozen=True)
class ParamBytes:
    """Bytes of model state per parameter of the model, by kind (fractions where only some parameters train)."""

    weights: float
    gradients: float
    optimizer: float  # optimizer moments
    master: float = 0.0  # fp32 master copy of low-precision weights

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.master


NF4_BYTES = 0.5 + 4 / 64  # 4-bit codes, an fp32 absmax per 64 weights: bitsandbytes' default, the course's QLoRA run
NF4_DOUBLE_QUANT_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # absmax in 8 bits, an fp32 scale per 256 of them (QLoRA paper)
BYTES_PER_PARAM_METHODS = ("fp32_adam", "mixed_adam", "fp32_adam8bit", "mixed_adam8bit", "lora", "qlora")


def bytes_per_param(
    method: str, trainable_fraction: float = 0.0, quantized_fraction: float | None = None, double_quant: bool = False
) -> ParamBytes:
    """Model-state bytes per parameter of the model when training by method (activations come on top).

    * ``fp32_adam``: fp32 weights and gradients, AdamW's two fp32 moments: 4 + 4 + 8 = 16.
    * ``mixed_adam``: bf16 weights and gradients, fp32 moments and an fp32 master copy: 2 + 2 + 8 + 4 = 16.
    * ``fp32_adam8bit`` / ``mixed_adam8bit``: the moments in 8 bits (bitsandbytes' AdamW8bit): 10 either way.
    * ``lora``: a frozen base in bf16 (2 bytes); adapters of trainable_fraction times the base's parameters,
      trained in fp32 (16 bytes each, as peft does).
    * ``qlora``: the same adapters on a base whose linear layers are NF4 (``NF4_BYTES``, or
      ``NF4_DOUBLE_QUANT_BYTES`` with double_quant) while the embeddings, the output head and the norms stay in bf16,
      as bitsandbytes leaves them: quantized_fraction is the share of parameters in the quantized linear layers
      (``quantized_linear_fraction(config)``).
    """
    if method not in BYTES_PER_PARAM_METHODS:
        raise ValueError(f"method must be one of {BYTES_PER_PARAM_METHODS}, found {method!r}")
    if method in ("lora", "qlora"):
        if not 0 < trainable_fraction < 1:
            raise ValueError(
                f"{method} needs the adapters' size as trainable_fraction in (0, 1), found {trainable_fraction}; "
                "count it with lora_parameter_count(config, r) / n_params"
            )
        base = 2.0
        if method == "qlora":
            if quantized_fraction is None or not 0 < quantized_fraction <= 1:
                raise ValueError(
                    f"qlora needs the share of parameters in quantized linear layers as quantized_fraction in (0, 1],"
                    f" found {quantized_fraction}; count it with quantized_linear_fraction(config)"
                )
            base = qlora_base_bytes_per_param(quantized_fraction, double_quant)
        f = trainable_fraction
        return ParamBytes(weights=base + 4 * f, gradients=4 * f, optimizer=8 * f)
    low = method.startswith("mixed")
    moments = 2.0 if method.endswith("8bit") else 8.0
    return ParamBytes(weights=2.0 if low else 4.0, gradients=2.0 if low else 4.0, optimizer=moments,
                      master=4.0 if low else 0.0)  # fmt: skip


def qlora_base_bytes_per_param(quantized_fraction: float, double_quant: bool = False) -> float:
    """Bytes per parameter of a QLoRA base: its linear layers in NF4 (with or without double-quantized scales), the
    rest (embeddings, output head, norms; 1 - quantized_fraction of the parameters) in bf16."""
    nf4 = NF4_DOUBLE_QUANT_BYTES if double_quant else NF4_BYTES
    return quantized_fraction * nf4 + (1 - quantized_fraction) * 2.0


def projection_shapes(config) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear projection in one decoder layer of a Llama config."""
    d, inter = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (d // config.num_attention_heads)  # grouped-query attention: narrower k, v
    return {"q_proj": (d, d), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (d, d),
            "gate_proj": (d, inter), "up_proj": (d, inter), "down_proj": (inter, d)}  # fmt: skip


def quantized_linear_fraction(config) -> float:
    """The share of a Llama's parameters in its decoder layers' linear projections: what a 4-bit load quantizes.

    bitsandbytes (through transformers) quantizes those and keeps the embeddings, the output head and the norms in
    16 bits: for Llama-2-7B that is about 0.26 B of its 6.7 B parameters.
    """
    linear = config.num_hidden_layers * sum(i * o for i, o in projection_shapes(config).values())
    embeddings = config.vocab_size * config.hidden_size * (1 if config.tie_word_embeddings else 2)
    norms = (2 * config.num_hidden_layers + 1) * config.hidden_size
    return linear / (linear + embeddings + norms)


def lora_parameter_count(config, r: int, targets=("q_proj", "k_proj", "v_proj", "o_proj")) -> int:
    """Parameters LoRA of rank r adds to a Llama config: r * (in + out) per target projection, in every layer."""
    shapes = projection_shapes(config)
    unknown = [t for t in targets if t not in shapes]
    if unknown:
        raise ValueError(f"targets must be among {list(shapes)}, found {unknown}")
    return config.num_hidden_layers * sum(r * sum(shapes[t]) for t in targets)


ZERO_STAGES = ("ddp", "zero1", "zero2", "zero3", "zero2_offload", "zero3_offload")


def zero_memory(n_params: int, n_devices: int, stage: str, optimizer_bytes: int = 12) -> dict[str, float]:
    """Per-device bytes of model state (mixed precision AdamW) under data parallelism and ZeRO, and on the host.

    The ZeRO paper's accounting with Psi parameters, N devices and K = optimizer_bytes per parameter (fp32 master
    copy and two fp32 moments: 12): plain data parallelism (``ddp``) keeps (2 + 2 + K) Psi on every device;
    stage 1 shards the optimizer state, 2 Psi + 2 Psi + K Psi / N; stage 2 the gradients too, 2 Psi + (2 + K) Psi / N;
    stage 3 the weights too, (2 + 2 + K) Psi / N. ``zero2_offload`` (ZeRO-Offload) keeps only the bf16 weights on
    the device and moves the gradient shards, master copy and moments to host memory; ``zero3_offload``
    (ZeRO-Infinity on CPU) keeps no model state on the device between layers (the layer being computed aside).
    Returns {"device": bytes, "host": bytes}, per device (per process); activations and buffers come on top.
    """
    if stage not in ZERO_STAGES:
        raise ValueError(f"stage must be one of {ZERO_STAGES}, found {stage!r}")
    if n_devices < 1:
        raise ValueError(f"n_devices must be >= 1, found {n_devices}")
    psi, n, k = float(n_params), n_devices, optimizer_bytes
    device = {
        "ddp": (2 + 2 + k) * psi,
        "zero1": 2 * psi + 2 * psi + k * psi / n,
        "zero2": 2 * psi + (2 + k) * psi / n,
        "zero3": (2 + 2 + k) * psi / n,
        "zero2_offload": 2 * psi,
        "zero3_offload": 0.0,
    }[stage]
    host = {"zero2_offload": (2 + k) * psi / n, "zero3_offload": (2 + 2 + k) * psi / n}.get(stage, 0.0)
    return {"device": device, "host": host}


def zero_communication(n_params: int, n_devices: int, stage: str, weight_bytes: int = 2) -> dict[str, float]:
    """Bytes each device sends per optimizer step over the network, and over PCIe to and from the host.

    A ring all-reduce of the gradients (plain data parallelism) is a reduce-scatter plus an all-gather: each
    device sends 2 (N - 1) / N Psi values. Stages 1 and 2 do the same two halves (reduce-scatter the gradients,
    all-gather the updated weights): no more traffic. Stage 3 gathers the weights twice (forward and backward)
    and reduce-scatters the gradients: 3 (N - 1) / N Psi, 1.5 times as much. Over PCIe, ZeRO-2's offload sends
    the gradient shard down to the host and the updated weight shard back up, every step; ZeRO-3's keeps the weight
    shard on the host too, so it brings it up twice (for the forward and again for the backward pass) and sends
    the gradient shard down: 3 Psi / N instead of 2 Psi / N.
    """
    if stage not in ZERO_STAGES:
        raise ValueError(f"stage must be one of {ZERO_STAGES}, found {stage!r}")
    ring = (n_devices - 1) / n_devices * float(n_params) * weight_bytes
    network = 3 * ring if stage.startswith("zero3") else 2 * ring
    shard = float(n_params) / n_devices * weight_bytes
    pcie = {"zero2_offload": 2 * shard, "zero3_offload": 3 * shard}.get(stage, 0.0)
    return {"network": network, "pcie": pcie}


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
