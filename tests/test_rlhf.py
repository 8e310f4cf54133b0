"""course_utils.rlhf and course_utils.ppo: the PPO pieces against plain definitions, the pairs from rankings, and the cache keys."""

import dataclasses
import math

import pytest
import torch
from course_utils.data import read_jsonl
from course_utils.labeller import judge
from course_utils.ppo import (
    PPO_SETTINGS,
    PPOSettings,
    gae,
    policy_loss,
    position_ids,
    tiny_ppo_key,
    token_logprobs,
    value_loss,
    whiten,
)
from course_utils.rlhf import REWARD_RECIPE, chatty_rows, preference_pairs, ranking_pairs, tiny_reward_key


def test_a_ranking_of_four_distinct_scores_gives_six_pairs():
    row = {
        "prompt": "q",
        "answer": "a",
        "responses": ["w", "x", "y", "z"],
        "scores": [7, 3, 5, 1],
        "ranking": [0, 2, 1, 3],
    }
    pairs = preference_pairs([row])
    assert len(pairs) == 6
    assert all(set(p) == {"prompt", "chosen", "rejected"} for p in pairs)
    assert pairs[0]["chosen"][0]["content"] == "w" and pairs[0]["rejected"][0]["content"] == "y"


def test_ranking_pairs_are_index_pairs_best_first():
    assert ranking_pairs([0, 2, 1], [7, 3, 5]) == [(0, 2), (0, 1), (2, 1)]
    assert len(ranking_pairs(list(range(7)), list(range(7, 0, -1)))) == 21


def test_ties_give_no_pair():
    row = {"prompt": "q", "answer": "a", "responses": ["w", "x", "y"], "scores": [5, 5, 1], "ranking": [0, 1, 2]}
    assert len(preference_pairs([row])) == 2


def test_chatty_rows_are_correct_answers_only():
    rows = chatty_rows()
    by_prompt = {r["prompt"]: r["answer"] for r in read_jsonl("preference_train.jsonl")}
    assert rows and all(judge(r["response"], by_prompt[r["prompt"]])["correct"] for r in rows)


def gae_by_definition(rewards, values, lengths, gamma, lam):
    out = torch.zeros_like(rewards)
    for b, n in enumerate(lengths):
        v = values[b, :n].tolist() + [0.0]
        deltas = [rewards[b, t].item() + gamma * v[t + 1] - v[t] for t in range(n)]
        for t in range(n):
            out[b, t] = sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t))
    return out


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0)])
def test_gae_matches_the_definition(gamma, lam):
    torch.manual_seed(0)
    lengths = [5, 1, 8, 3]
    mask = torch.zeros(4, 8)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    rewards, values = torch.randn(4, 8), torch.randn(4, 8)
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    assert torch.allclose(advantages, gae_by_definition(rewards, values, lengths, gamma, lam), atol=1e-5)
    assert torch.allclose(returns, (advantages + values) * mask)
    assert (advantages[mask == 0] == 0).all()


def test_lambda_one_gives_the_return_minus_the_value():
    rewards, values, mask = torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[0.5, 1.0, 1.5]]), torch.ones(1, 3)
    advantages, _ = gae(rewards, values, mask, 1.0, 1.0)
    assert torch.allclose(advantages, torch.tensor([[1.5, 1.0, 0.5]]))


def test_policy_loss_clips_the_ratio():
    mask, old = torch.ones(1, 2), torch.zeros(1, 2)
    up = torch.full((1, 2), math.log(2.0))  # ratio 2
    assert policy_loss(up, old, torch.ones(1, 2), mask, 0.2).item() == pytest.approx(-1.2)  # gain stops at 1 + eps
    assert policy_loss(up, old, -torch.ones(1, 2), mask, 0.2).item() == pytest.approx(2.0)  # losses are not clipped
    assert policy_loss(old, old, torch.ones(1, 2), mask, 0.2).item() == pytest.approx(-1.0)


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    mask = torch.ones(1, 1)
    loss = value_loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]), torch.tensor([[2.0]]), mask, 0.2)
    assert loss.item() == pytest.approx(0.5 * 1.8**2)  # clipped to 0.2, still 1.8 from the return


def test_whiten_and_positions():
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = whiten(torch.tensor([[1.0, 2.0, 3.0, 99.0]]), mask)
    assert w[0, 3] == 0 and abs(w[0, :3].mean().item()) < 1e-6
    assert position_ids(torch.tensor([[0, 0, 1, 1, 1]])).tolist() == [[0, 0, 0, 1, 2]]


def test_token_logprobs_score_the_distribution_that_was_sampled():
    class Logits(torch.nn.Module):  # a "model" whose logits are fixed: the vocabulary's log-probs depend on T only
        def __init__(self, logits):
            super().__init__()
            self.table = logits

        def forward(self, input_ids, attention_mask=None, position_ids=None):
            return type("Out", (), {"logits": self.table.expand(len(input_ids), -1, -1)})()

    torch.manual_seed(0)
    logits = torch.randn(1, 6, 10)
    sequences = torch.randint(10, (2, 6))
    for temperature in (1.0, 0.7, 1.5):
        got = token_logprobs(Logits(logits), sequences, torch.ones_like(sequences), 2, temperature=temperature)
        want = torch.log_softmax(logits[:, 1:-1] / temperature, -1).expand(2, -1, -1)
        assert torch.allclose(got, want.gather(-1, sequences[:, 2:, None]).squeeze(-1))


def test_settings_refuse_a_ragged_minibatch():
    with pytest.raises(ValueError, match="multiple of minibatch_size"):
        PPOSettings(batch_size=30, minibatch_size=16)


def test_cache_keys_follow_their_recipes():
    assert tiny_reward_key(dataclasses.replace(REWARD_RECIPE, lr=2e-3)) != tiny_reward_key()
    assert tiny_ppo_key(dataclasses.replace(PPO_SETTINGS, kl_coef=0.0)) != tiny_ppo_key()
    assert PPO_SETTINGS.precision == "fp32" and REWARD_RECIPE.precision == "fp32"
