"""Week 1: the notebook runs and its lessons show. Thresholds keep a margin from seeds 0-3 (see the issue note)."""

import pytest
from conftest import executed

pytestmark = pytest.mark.slow

KEYS = """tokenizer_vocab_size bytes_per_token manual_loss_abs_diff initial_val_loss final_val_loss train_tokens_per_s
fact_probe_seen_acc fact_probe_unseen_acc scaling_params scaling_val_losses scaling_alpha domain_ppl_before
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
    # measured (seeds 0-3): seen 0.91-1.0, unseen 0.075-0.15 (chance 0.11)
    assert m["fact_probe_seen_acc"] >= 0.75
    assert m["fact_probe_unseen_acc"] <= 0.35
    assert m["fact_probe_seen_acc"] - m["fact_probe_unseen_acc"] >= 0.5


def test_loss_falls_with_model_size(m):
    # measured (seeds 0-3): w16 4.08-4.23 ... w64 1.60-1.84, each step down >= 0.1; alpha 0.39-0.46
    params, losses = m["scaling_params"], m["scaling_val_losses"]
    assert len(params) >= 3 and params == sorted(params)
    assert all(b < a + 0.05 for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 1.0
    assert m["scaling_alpha"] > 0


def test_continued_pretraining_adapts_and_forgets(m):
    # measured (seeds 0-3): domain 1.4e6-1.0e7 -> 9-11; general 2.6-2.7 -> 6.7-11.4
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
    assert s["alt_phrasing_acc"] > 0.3
    assert s["compute_optimal_shape"] in ("w16", "w32", "w64")
    assert s["isoflop_compute_spread"] < 0.02
