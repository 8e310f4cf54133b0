"""Week 3: the notebooks run and the lessons of RLHF show.

Each notebook is executed once (tiny profile, seed 0) and every assertion reads its metrics.json.
Thresholds keep a margin from what seeds 0-3 measured (numbers in the comments).
"""

import pytest
from conftest import executed

pytestmark = pytest.mark.slow

KEYS = """rm_loss_matches_trl_abs_diff rm_accuracy rm_accuracy_by_kind gae_matches_reference_abs_diff ppo_reward_before
ppo_reward_after ppo_kl_final nokl_reward_after nokl_kl_final ptx_general_ppl_with ptx_general_ppl_without
labeller_win_rate_ppo_vs_sft trl_method trl_reward_after trl_kl_final ppo_wall_s trl_wall_s ppo_peak_mem_bytes
trl_peak_mem_bytes wall_s peak_mem_bytes preference_pairs labeller_score_sft labeller_score_ppo""".split()


@pytest.fixture(scope="module")
def m():
    return executed("03_rlhf.ipynb").metrics


def test_writes_every_metric(m):
    assert not [k for k in KEYS if k not in m]
    assert m["trl_method"] in ("rloo", "grpo")


def test_from_scratch_matches_the_reference(m):
    assert m["rm_loss_matches_trl_abs_diff"] <= 1e-5
    assert m["gae_matches_reference_abs_diff"] <= 1e-5


def test_reward_model_beats_chance(m):
    # measured (seeds 0-3): 0.66-0.83 on held-out pairs (chance 0.5); correctness pairs 0.59-0.83
    assert m["rm_accuracy"] >= 0.6
    assert m["rm_accuracy_by_kind"]["polite"] >= 0.9  # rudeness shows in a few words: measured 0.98-1.0
    assert m["rm_accuracy_by_kind"]["concise"] <= 0.6  # the notebook says length is not learned: measured 0.07-0.48


def test_ppo_raises_the_reward_with_a_bounded_kl(m):
    # measured (seeds 0-3): reward-model score up by 0.35-1.29, KL 3.2-4.5 nats per response
    assert m["ppo_reward_after"] >= m["ppo_reward_before"] + 0.15
    assert 0 < m["ppo_kl_final"] <= 8


def test_without_kl_the_policy_drifts_much_further(m):
    # measured (seeds 0-3): 23-108 nats against 3.2-4.5 with the penalty (5x to 33x), and a higher reward
    assert m["nokl_kl_final"] >= 3 * m["ppo_kl_final"]
    assert m["nokl_reward_after"] > m["ppo_reward_after"]


def test_ptx_keeps_general_perplexity_lower(m):
    # measured (seeds 0-3): 2.9-3.0 with PTX, 28.6-34.0 without; the chatty SFT model starts at 23.6
    assert m["ptx_general_ppl_with"] * 3 <= m["ptx_general_ppl_without"]
    assert m["ptx_general_ppl_with"] < m["general_ppl_sft"] < m["ptx_general_ppl_without"]
    assert abs(m["ppo_reward_after"] - m["noptx_reward_after"]) <= 0.25  # "little or no reward": measured <= 0.08


def test_the_labeller_is_reported_and_ppo_does_not_wreck_the_answers(m):
    # "On most runs the labeller's score rises too; on some it does not". Measured: win rate 0.66-0.98 and labeller
    # 4.33 -> 4.57-5.76 (AVX-512 machine, seeds 0-3); AVX2 machine 4.59 -> 3.89 (win 0.44, seed 0), 4.81 (0.65,
    # seed 1), 5.29 (0.81, seed 2). The prose names the seed-0 AVX2 run; PPO never lost more than 0.7 of 7 points.
    assert 0 <= m["labeller_win_rate_ppo_vs_sft"] <= 1
    assert m["labeller_win_rate_ppo_vs_sft"] >= 0.35
    assert m["labeller_score_ppo"] >= m["labeller_score_sft"] - 1.0


def test_cut_answers_are_counted_and_ppo_cuts_fewer(m):
    # "about a fifth of the SFT model's samples run past 80; PPO's share falls": SFT 0.18 (the same model and
    # sampling seed on every SEED), PPO 0.0 (seed 0; AVX2 machine, 2026-12-02: the only machine it was measured on)
    assert 0.1 <= m["truncated_fraction_sft"] <= 0.3
    assert m["truncated_fraction_ppo"] < 0.5 * m["truncated_fraction_sft"]


def test_trl_rloo_raises_the_reward_too(m):
    # measured (seeds 0-3, AVX-512 machine): reward +0.19 to +0.50 (PPO +0.35 to +1.29), KL 8.3-10.2 (PPO 3.2-4.5);
    # AVX2 machine, seed 0: +0.14 (PPO +0.88), KL 7.3 (PPO 5.4, 1.35x)
    assert m["trl_reward_after"] > m["ppo_reward_before"]
    assert m["trl_reward_after"] <= m["ppo_reward_after"] + 0.15  # "less than or about as much as our PPO"
    assert m["trl_kl_final"] > 1.3 * m["ppo_kl_final"]  # "two to three times further"


def test_memory_budget(m):
    assert m["peak_mem_bytes"] < 4 * 2**30  # measured 1.17-1.30 GB


def test_solutions_notebook():
    s = executed("03_rlhf_solutions.ipynb").metrics
    kl = s["frontier_kl"]
    assert kl[0] >= kl[-1]  # larger beta, smaller KL (asserted in the notebook too); measured 6.3-8.7 vs 2.9-3.4
    assert s["mc_reward"] > s["start_reward"]
    assert s["peak_mem_bytes"] < 4 * 2**30
