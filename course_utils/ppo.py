"""RLHF's policy-optimisation step (week 3): PPO written out, TRL's RLOO beside it, and their cached policies.

* ``PPOSettings`` / ``train_ppo()``: PPO with four models (actor, critic, reward model, frozen reference), a
  per-token KL penalty, GAE, the clipped policy loss, the clipped value loss and the PTX term (next-token loss on
  pretraining text); ``evaluate_policy()`` measures reward and KL; ``tiny_ppo_dir()`` caches the PPO policy.
* ``rloo_config()`` / ``tiny_rloo_dir()``: TRL's ``RLOOTrainer`` on the same start, reward model and budget.

The start policy and the reward model come from ``course_utils.rlhf``.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from course_utils.checkpoints import cache_key, cached_checkpoint, pretrain_blocks, trainer_history
from course_utils.data import read_jsonl
from course_utils.env import autocast, check_precision
from course_utils.rlhf import load_policy, load_tiny_reward_model, reward_scores, tiny_chatty_sft_dir, tiny_reward_key
from course_utils.sft import chat_prompts, end_of_turn_ids
from course_utils.training import without_log_lines
from tqdm.auto import tqdm


@dataclass(frozen=True)
class PPOSettings:
    """One PPO run. Per iteration: batch_size prompts, one sampled response each, ppo_epochs passes in minibatches."""

    iterations: int = 20
    batch_size: int = 32
    minibatch_size: int = 16
    ppo_epochs: int = 2
    lr: float = 2e-4  # actor and critic
    kl_coef: float = 0.2  # beta: reward -= kl_coef * (log pi - log pi_ref), per token
    ptx_coef: float = 0.2  # weight of the next-token loss on pretraining text (0: plain PPO)
    ptx_batch_size: int = 8  # pretraining blocks per minibatch
    clip: float = 0.2  # epsilon of the clipped ratio (and of the value clipping)
    vf_coef: float = 0.5
    gamma: float = 1.0
    lam: float = 0.95
    max_new_tokens: int = 80  # the longest rambling answer has about 75 tokens: cut shorter, it would look concise
    temperature: float = 1.0
    seed: int = 0
    precision: str = "fp32"

    def __post_init__(self):
        check_precision(self.precision)
        if self.batch_size % self.minibatch_size:
            raise ValueError(f"batch_size must be a multiple of minibatch_size, found {self.batch_size}, "
                             f"{self.minibatch_size}")  # fmt: skip


PPO_SETTINGS = PPOSettings()
SMALL_PPO_SETTINGS = PPOSettings(lr=2e-5)  # SmolLM2-135M: a 135 M-parameter policy moves far at the tiny rate
MAX_NEW_TOKENS = PPO_SETTINGS.max_new_tokens  # room for the longest rambling answer (about 75 tokens) and its end


@dataclass
class Rollout:
    """Sampled responses: tokens (prompt, left-padded, then response), attention mask, prompt length, response mask."""

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    response_mask: torch.Tensor  # (B, T) float: 1 on response tokens up to and including the end of turn
    truncated: torch.Tensor  # (B,) bool: the response reached max_new_tokens without its end of turn


@torch.no_grad()
def rollout(
    policy, tokenizer, prompts: list[str], max_new_tokens: int = MAX_NEW_TOKENS, temperature: float = 1.0
) -> Rollout:
    """Sample one response per prompt from policy (plain sampling: no top-k, no top-p)."""
    device = next(policy.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer(chat_prompts(tokenizer, prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    enc = enc.to(device)
    ends = end_of_turn_ids(tokenizer)
    policy.eval()
    seq = policy.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                          max_new_tokens=max_new_tokens, eos_token_id=ends, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    prompt_len = enc["input_ids"].shape[1]
    response = seq[:, prompt_len:]
    is_end = torch.isin(response, torch.tensor(ends, device=device)).long()
    mask = (is_end.cumsum(-1) - is_end) == 0  # tokens up to and including the first end of turn
    attention = torch.cat([enc["attention_mask"], mask.long()], dim=1)
    return Rollout(seq, attention, prompt_len, mask.float(), is_end.sum(-1) == 0)


def decode_responses(tokenizer, batch: Rollout) -> list[str]:
    return [
        tokenizer.decode(s[batch.prompt_len :][m.bool()], skip_special_tokens=True).strip()
        for s, m in zip(batch.sequences, batch.response_mask)
    ]


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as generate() used them."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def token_logprobs(
    model, sequences, attention_mask, prompt_len: int, precision: str = "fp32", temperature: float = 1.0
) -> torch.Tensor:
    """log pi(token | text before it) for every response token: (B, T).

    temperature: the one the responses were sampled at. Sampling at T draws from softmax(logits / T), so the
    ratio and the KL must be computed on that distribution too (TRL divides by its temperature the same way).
    """
    device = sequences.device
    with autocast(device, precision):
        logits = model(input_ids=sequences, attention_mask=attention_mask,
                       position_ids=position_ids(attention_mask)).logits  # fmt: skip
    logits = logits[:, prompt_len - 1 : -1].float() / temperature  # the logits at t predict token t + 1
    return torch.log_softmax(logits, -1).gather(-1, sequences[:, prompt_len:, None]).squeeze(-1)


def token_values(critic, sequences, attention_mask, prompt_len: int, precision: str = "fp32") -> torch.Tensor:
    """The critic's value of the state before each response token: its scalar head on every position, (B, T)."""
    with autocast(sequences.device, precision):
        hidden = critic.model(input_ids=sequences, attention_mask=attention_mask,
                              position_ids=position_ids(attention_mask)).last_hidden_state  # fmt: skip
        values = critic.score(hidden).squeeze(-1)
    return values[:, prompt_len - 1 : -1].float()


def gae(rewards, values, mask, gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, one backward pass over time for the whole batch: (advantages, returns).

    delta_t = r_t + gamma V_{t+1} - V_t,  A_t = delta_t + gamma lam A_{t+1}; positions outside mask count as 0, so a
    response's last token bootstraps from 0 (the episode ends there).
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages * mask, (advantages + values) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the masked entries."""
    mean = masked_mean(x, mask)
    return (x - mean) * torch.rsqrt(masked_mean((x - mean) ** 2, mask) + 1e-8) * mask


def policy_loss(logp, old_logp, advantages, mask, clip: float = 0.2) -> torch.Tensor:
    """The clipped surrogate: -min(ratio A, clip(ratio, 1-eps, 1+eps) A), averaged over response tokens."""
    ratio = torch.exp(logp - old_logp)
    return masked_mean(-torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages), mask)


def value_loss(values, old_values, returns, mask, clip: float = 0.2) -> torch.Tensor:
    """0.5 max((V - R)^2, (V_clipped - R)^2): the critic regresses the returns, moving at most clip per update."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return masked_mean(0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)


def ptx_loss(actor, blocks: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """Next-token loss on pretraining text: the InstructGPT "PPO-ptx" term that keeps the actor a language model."""
    with autocast(blocks.device, precision):
        logits = actor(input_ids=blocks).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), blocks[:, 1:].flatten())


def train_ppo(
    actor, critic, reference, reward_model, tokenizer, prompts: list[str],
    settings: PPOSettings = PPO_SETTINGS, ptx_blocks: torch.Tensor | None = None, progress: bool = True,
) -> dict[str, list[float]]:  # fmt: skip
    """PPO on actor and critic in place; reference and reward_model stay frozen. Returns the history per iteration.

    Loss per minibatch: L = L_PPO + vf_coef L_value + ptx_coef L_ptx.
    """
    if settings.ptx_coef and ptx_blocks is None:
        raise ValueError("ptx_coef > 0 needs ptx_blocks (pretraining text, e.g. pretrain_blocks(tokenizer))")
    device = next(actor.parameters()).device
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    params = [p for m in (actor, critic) for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    history = {k: [] for k in ("reward", "kl", "policy_loss", "value_loss", "ptx_loss", "response_tokens")}
    bar = tqdm(range(settings.iterations), desc="PPO", disable=not progress)
    for _ in bar:
        # 1. Experience: sample, then score with the frozen models (no gradients).
        picks = torch.randint(len(prompts), (settings.batch_size,), generator=generator).tolist()
        batch_prompts = [prompts[i] for i in picks]
        batch = rollout(actor, tokenizer, batch_prompts, settings.max_new_tokens, settings.temperature)
        seq, attn, P, mask = batch.sequences, batch.attention_mask, batch.prompt_len, batch.response_mask
        with torch.no_grad():
            old_logp = token_logprobs(actor, seq, attn, P, settings.precision, settings.temperature)
            ref_logp = token_logprobs(reference, seq, attn, P, settings.precision, settings.temperature)
            old_values = token_values(critic, seq, attn, P, settings.precision)
            scores = reward_scores(reward_model, tokenizer, batch_prompts, decode_responses(tokenizer, batch)).to(
                device
            )
            kl = (old_logp - ref_logp) * mask
            rewards = -settings.kl_coef * kl
            last = mask.sum(-1).long() - 1
            rewards[torch.arange(len(seq), device=device), last] += scores
            advantages, returns = gae(rewards, old_values, mask, settings.gamma, settings.lam)
            advantages = whiten(advantages, mask)
        # 2. Learn: a few passes over the experience, in minibatches.
        actor.train(), critic.train()
        losses = {"policy_loss": [], "value_loss": [], "ptx_loss": []}
        for _ in range(settings.ppo_epochs):
            order = torch.randperm(len(seq), generator=generator).to(device)
            for start in range(0, len(seq), settings.minibatch_size):
                j = order[start : start + settings.minibatch_size]
                logp = token_logprobs(actor, seq[j], attn[j], P, settings.precision, settings.temperature)
                values = token_values(critic, seq[j], attn[j], P, settings.precision)
                l_ppo = policy_loss(logp, old_logp[j], advantages[j], mask[j], settings.clip)
                l_value = value_loss(values, old_values[j], returns[j], mask[j], settings.clip)
                loss = l_ppo + settings.vf_coef * l_value
                l_ptx = torch.zeros(())
                if settings.ptx_coef:
                    rows = torch.randint(len(ptx_blocks), (settings.ptx_batch_size,), generator=generator)
                    l_ptx = ptx_loss(actor, ptx_blocks[rows].to(device), settings.precision)
                    loss = loss + settings.ptx_coef * l_ptx
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                for name, value in zip(losses, (l_ppo, l_value, l_ptx)):
                    losses[name].append(value.item())
        actor.eval(), critic.eval()
        history["reward"].append(scores.mean().item())
        history["kl"].append(kl.sum(-1).mean().item())
        history["response_tokens"].append(mask.sum(-1).mean().item())
        for name, values in losses.items():
            history[name].append(sum(values) / len(values))
        bar.set_postfix(reward=f"{history['reward'][-1]:.2f}", kl=f"{history['kl'][-1]:.2f}")
    return history


@torch.no_grad()
def evaluate_policy(policy, reference, reward_model, tokenizer, prompts: list[str], seed: int = 1234,
                    max_new_tokens: int = 80) -> dict:  # fmt: skip
    """Sample one response per prompt (seeded): mean reward-model score, mean KL(policy || reference) per response
    (summed over its tokens, estimated on the policy's own samples), the share of responses cut at max_new_tokens
    (the chat template closes them before the reward model reads them, so it cannot tell), and the responses."""
    torch.manual_seed(seed)
    batch = rollout(policy, tokenizer, prompts, max_new_tokens)
    seq, attn, P, mask = batch.sequences, batch.attention_mask, batch.prompt_len, batch.response_mask
    kl = ((token_logprobs(policy, seq, attn, P) - token_logprobs(reference, seq, attn, P)) * mask).sum(-1)
    responses = decode_responses(tokenizer, batch)
    scores = reward_scores(reward_model, tokenizer, prompts, responses)
    truncated = batch.truncated.float().mean().item()
    return {"reward": scores.mean().item(), "kl": kl.mean().item(), "truncated": truncated, "responses": responses}


def tiny_ppo_key(settings: PPOSettings = PPO_SETTINGS) -> str:
    return cache_key("tiny-ppo", asdict(settings), tiny_reward_key(), data_files=("preference_train.jsonl",))


def tiny_ppo_dir(settings: PPOSettings = PPO_SETTINGS, trained: tuple | None = None) -> Path:
    """The cached PPO policy (week 3's actor after PPO-ptx by settings), built if missing (about 20 s on 2 cores).

    trained: (actor, tokenizer, history) that week 3 already trained by exactly these settings; saved instead.
    """

    def train() -> tuple:
        actor, tokenizer = load_policy(tiny_chatty_sft_dir())
        reference = copy.deepcopy(actor).requires_grad_(False)
        reward_model, _ = load_tiny_reward_model()
        critic = copy.deepcopy(reward_model)
        prompts = [r["prompt"] for r in read_jsonl("preference_train.jsonl")]
        history = train_ppo(actor, critic, reference, reward_model.requires_grad_(False), tokenizer, prompts,
                            settings, pretrain_blocks(tokenizer), progress=False)  # fmt: skip
        return actor, tokenizer, history

    return cached_checkpoint(tiny_ppo_key(settings), train, trained, "the tiny PPO policy")


def load_tiny_ppo(settings: PPOSettings = PPO_SETTINGS):
    """(PPO policy, tokenizer) from the cache, in eval mode."""
    return load_policy(tiny_ppo_dir(settings))


# ------------------------------------------------------------------------------------------------------ RLOO


def rloo_config(output_dir: str | Path, settings: PPOSettings = PPO_SETTINGS, **overrides):
    """TRL's RLOOConfig as week 3 sets it: as many responses in all as PPO's run, 4 per prompt, the same KL weight."""
    from trl import RLOOConfig

    values = dict(
        output_dir=str(output_dir),
        max_steps=2 * settings.iterations,  # one gradient step per batch of responses
        per_device_train_batch_size=settings.batch_size // 2,  # 16 responses per step: as many in all as PPO's
        num_generations=4,  # k responses per prompt: 4 prompts x 4 answers per step
        max_completion_length=settings.max_new_tokens,
        temperature=settings.temperature,  # sampled, and scored, at PPO's temperature
        top_k=0,  # plain sampling, as our rollouts
        beta=settings.kl_coef,  # the KL coefficient
        learning_rate=settings.lr,
        bf16=settings.precision == "bf16",
        fp16=settings.precision == "fp16",
        activation_checkpointing=False,
        logging_steps=5,
        save_strategy="no",
        report_to="none",
        seed=settings.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        disable_tqdm=True,
    )
    values.update(overrides)
    return RLOOConfig(**values)


def tiny_rloo_key(settings: PPOSettings = PPO_SETTINGS) -> str:
    return cache_key("tiny-rloo", asdict(settings), tiny_reward_key(), data_files=("preference_train.jsonl",))


def tiny_rloo_dir(settings: PPOSettings = PPO_SETTINGS, trained: tuple | None = None) -> Path:
    """The cached RLOO policy: TRL's RLOOTrainer on week 3's policy and reward model (about 20 s on 2 cores).

    The recipe is week 3's RLOO run in the tiny profile (``rloo_config``); week 3's seed-0 run saves through this
    function. trained: (policy, tokenizer, trainer) already trained by exactly this recipe; saved instead.
    """

    def train() -> tuple:
        from trl import RLOOTrainer

        policy, tokenizer = load_policy(tiny_chatty_sft_dir())
        reward_model, _ = load_tiny_reward_model()
        prompts = [{"prompt": [{"role": "user", "content": r["prompt"]}]} for r in read_jsonl("preference_train.jsonl")]
        with tempfile.TemporaryDirectory() as tmp:
            trainer = RLOOTrainer(model=policy.requires_grad_(True), reward_funcs=reward_model,
                                  args=rloo_config(tmp, settings), train_dataset=datasets.Dataset.from_list(prompts),
                                  processing_class=tokenizer, reward_processing_classes=tokenizer)  # fmt: skip
            without_log_lines(trainer).train()
        return trainer.model.eval(), tokenizer, trainer_history(trainer)

    return cached_checkpoint(tiny_rloo_key(settings), train, trained, "the tiny RLOO policy")


def load_tiny_rloo(settings: PPOSettings = PPO_SETTINGS):
    """(RLOO policy, tokenizer) from the cache, in eval mode."""
    return load_policy(tiny_rloo_dir(settings))
