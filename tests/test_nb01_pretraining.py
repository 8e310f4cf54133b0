"""Week 1: the notebook runs and its lessons show. Thresholds keep a margin from seeds 0-3.

Measured 2026-11-26 in fp32 (the tiny profile's precision everywhere) on a 2-core CPU with AVX512-BF16 and on CI's
AVX2 CPU; the comments give the ranges.
"""

import pytest
from conftest import executed

pytestmark = pytest.mark.slow

KEYS = """tokenizer_vocab_size bytes_per_token manual_loss_abs_diff initial_val_loss final_val_loss train_tokens_per_s
fact_probe_seen_acc fact_probe_unseen_acc fact_probe_unseen_interval scaling_params_non_embedding scaling_val_losses
scaling_alpha scaling_fit_c scaling_c_identified causal_leak_positions showcase_verdicts domain_ppl_before
domain_ppl_after general_ppl_before general_ppl_after contrastive_score_before contrastive_score_after wall_s
peak_mem_bytes""".split()


@pytest.fixture(scope="module")
def m():
    return executed("01_pretraining.ipynb").metrics


def test_writes_every_metric(m):
    assert not [k for k in KEYS if k not in m]


def test_tokenizer_compresses(m):
    assert 256 < m["tokenizer_vocab_size"] <= 2048
    assert m["bytes_per_token"] > 2.5  # measured 3.52 (deterministic)


def test_manual_loss_equals_library_loss(m):
    assert m["manual_loss_abs_diff"] <= 1e-5


def test_pretraining_learns_beyond_token_frequencies(m):
    # measured (seeds 0-3): initial 6.85-6.90, final 0.96-0.99, unigram entropy 4.74
    assert m["final_val_loss"] < m["initial_val_loss"] - 4
    assert m["final_val_loss"] < m["unigram_entropy"] - 2


def test_seen_facts_are_recalled_unseen_are_not(m):
    # measured (seeds 0-3): seen 0.79-1.0 (0.79: seed 2 on the AVX512 CPU), unseen 0.05-0.15 (chance 0.11)
    assert m["fact_probe_seen_acc"] >= 0.6
    assert m["fact_probe_unseen_acc"] <= 0.35
    assert m["fact_probe_seen_acc"] - m["fact_probe_unseen_acc"] >= 0.5
    # "unseen facts score near chance": chance lies inside the 95% interval (measured lower ends 0.01-0.07)
    low, high = m["fact_probe_unseen_interval"]
    assert low <= m["fact_probe_chance"] <= high


def test_causal_mask_hides_the_future(m):
    assert m["causal_leak_positions"] == 0


def test_showcase_verdicts_are_scored(m):
    # measured (seeds 0-3): 1-3 of the 4 prompts right; the question prompt never answered by the base model
    verdicts = m["showcase_verdicts"]
    assert len(verdicts) == 4 and 1 <= sum(verdicts.values())
    assert not verdicts["Question: Where does Alma live? Answer:"]


def test_loss_falls_with_model_size(m):
    # measured (seeds 0-3): w16 4.08-4.23 ... w64 1.60-1.84, each step down >= 0.1; alpha (non-embedding N) 0.24-0.27
    params, losses = m["scaling_params_non_embedding"], m["scaling_val_losses"]
    assert len(params) >= 3 and params == sorted(params) and params[0] < 5_000  # embeddings excluded
    assert all(b < a + 0.05 for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 1.0
    assert 0.1 < m["scaling_alpha"] < 0.6
    # c is either identified inside (0, min loss) or reported as not identified and set to 0 (seeds 0-3: not identified)
    assert (0 < m["scaling_fit_c"] < min(losses)) if m["scaling_c_identified"] else m["scaling_fit_c"] == 0


def test_continued_pretraining_adapts_and_forgets(m):
    # measured (seeds 0-3, healer's notes consistent with the world): domain 2.0e6-1.9e7 -> 7.7-10.0; general 2.6-2.7 -> 5.9-8.5
    assert m["domain_ppl_after"] < 0.1 * m["domain_ppl_before"]
    assert m["general_ppl_after"] > m["general_ppl_before"]  # the cost of adaptation shows


def test_contrastive_fine_tuning_improves_retrieval(m):
    # measured (seeds 0-3): 0.175-0.35 -> 0.925-1.0
    assert m["contrastive_score_after"] >= m["contrastive_score_before"] + 0.3


def test_memory_budget(m):
    assert m["peak_mem_bytes"] < 3 * 2**30


def test_solutions_notebook():
    s = executed("01_pretraining_solutions.ipynb").metrics
    assert s["ppl_abs_diff"] / s["library_ppl"] < 1e-3
    assert s["alt_phrasing_acc"] > 0.3  # measured 1.0 (seed-0 base model)
    assert 0.1 < s["novel_phrasing_acc"] < s["alt_phrasing_acc"]  # measured 0.5
    assert s["compute_optimal_shape"] in ("w16", "w32", "w64")
    assert s["isoflop_compute_spread"] < 0.02
