"""Week 4: the notebooks run and the lessons of DPO show.

Each notebook is executed once (tiny profile, seed 0) and every assertion reads its metrics.json.
Thresholds keep a margin from what seeds 0-3 measured (numbers in the comments).
"""

import pytest
from conftest import executed

pytestmark = pytest.mark.slow

KEYS = """dpo_loss_matches_trl_abs_diff dpo_reward_accuracy_final dpo_win_rate_vs_sft dpo_rm_reward_before
dpo_rm_reward_after dpo_kl beta_values beta_rm_reward beta_kl dpo_wall_s dpo_peak_mem_bytes rlhf_wall_s
rlhf_peak_mem_bytes rlhf_rm_reward_after wall_s peak_mem_bytes""".split()


@pytest.fixture(scope="module")
def m():
    return executed("04_dpo.ipynb").metrics


def test_writes_every_metric(m):
    assert not [k for k in KEYS if k not in m]


def test_loss_matches_trl(m):
    assert m["dpo_loss_matches_trl_abs_diff"] <= 1e-5  # measured 0.0 (DPO alone and DPO + NLL)


def test_dpo_learns_the_pairs(m):
    assert m["dpo_reward_accuracy_final"] >= 0.7  # measured (seeds 0-3): 0.78-0.82
    assert m["dpo_reward_margin_final"] >= 0.35  # measured: 0.52-0.58


def test_dpo_raises_the_reward_and_the_labeller_prefers_it(m):
    gain = m["dpo_rm_reward_after"] - m["dpo_rm_reward_before"]
    assert gain >= 0.1  # measured (seeds 0-3): +0.20 to +0.36 (from -0.22)
    assert m["dpo_win_rate_vs_sft"] >= 0.53  # measured: 0.578-0.593


def test_larger_beta_gives_smaller_kl(m):
    betas, kl = m["beta_values"], m["beta_kl"]
    assert len(betas) >= 3 and betas == sorted(betas)
    # measured (seeds 0-3), beta 0.1 / 0.5 / 2: [19.2, 5.1, 3.7] [16.3, 6.1, 5.6] [22.6, 6.0, 3.9] [23.3, 12.5, 4.7]
    # the smallest beta drifts furthest: ratio 1.9-3.8 (AVX-512 machine, seeds 0-3), 1.30 (AVX2 machine, seed 0)
    assert kl[0] >= 1.15 * max(kl[1:])
    assert kl[-1] <= kl[1]  # and the largest stays nearest


def test_dpo_is_cheaper_than_rlhf_where_the_notebook_says(m):
    # Per answer learned from, DPO is faster (measured ms per answer, seeds 0-3: 10-13 vs 44-52 uncontended); its model states take
    # half of PPO's. Measured wall time and peak RSS of the whole runs go either way on the tiny model, which the
    # notebook says and explains.
    assert m["dpo_ms_per_answer"] * 2 < m["rlhf_ms_per_answer"]
    assert 2 * m["dpo_model_state_bytes"] == m["rlhf_model_state_bytes"]
    assert (m["dpo_models_in_memory"], m["rlhf_models_in_memory"]) == (2, 4)
    assert isinstance(m["dpo_faster_measured"], bool) and isinstance(m["dpo_leaner_measured"], bool)


def test_budget(m):
    assert m["peak_mem_bytes"] < 3 * 2**30  # measured 1.1-1.3 GB


def test_solutions_notebook():
    s = executed("04_dpo_solutions.ipynb").metrics
    # measured: -0.82 to -0.93 from -0.22 (AVX-512 machine, seeds 0-3); -0.49 from -0.14 (AVX2 machine, seed 0)
    assert s["flipped_reward"] <= s["start_reward"] - 0.25
    assert s["dpo_reward"] >= s["start_reward"] + 0.1  # the cached policy of the lesson's seed 0: +0.25
    assert s["kto_reward"] >= s["start_reward"] + 0.05  # measured: 0.13 from -0.22 (the same on seeds 0-2)
    assert s["peak_mem_bytes"] < 3 * 2**30
