"""course_utils.evaluation: ROUGE-L against rouge-score, the bootstrap, n-gram contamination, the time budget, and
the keys of the two checkpoints week 7 added owners for (continued pretraining, RLOO)."""

import dataclasses
import time

import pytest
import torch
from course_utils.checkpoints import CPT_TRAIN, tiny_cpt_key
from course_utils.evaluation import (
    TimeBudget,
    bootstrap_ci,
    contaminated,
    lcs_length,
    mean_rouge_l,
    model_bytes,
    ngram_overlap,
    pairwise_outcomes,
    rouge_l,
)
from course_utils.ppo import PPO_SETTINGS, tiny_ppo_key, tiny_rloo_key
from rouge_score import rouge_scorer

PAIRS = [
    ("Sure! The answer is 17.", "17"),
    ("the cat sat on the mat", "the cat lay on a mat"),
    ("Oakhaven", "Jowen lives in Oakhaven."),
    ("a b c d", "d c b a"),
    ("", "anything"),
    ("Ünïcode, café: 42!", "cafe 42"),
]


def test_lcs_length_by_hand():
    assert lcs_length("a b c d".split(), "a c b d".split()) == 3
    assert lcs_length([], ["a"]) == 0
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4  # the textbook example


def test_rouge_l_matches_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for prediction, reference in PAIRS:
        ours = rouge_l(prediction, reference)
        theirs = scorer.score(reference, prediction)["rougeL"]
        assert abs(ours["fmeasure"] - theirs.fmeasure) <= 1e-12, (prediction, reference)
        assert abs(ours["precision"] - theirs.precision) <= 1e-12 and abs(ours["recall"] - theirs.recall) <= 1e-12


def test_mean_rouge_l_checks_lengths():
    assert mean_rouge_l(["17"], ["17"]) == 1.0
    with pytest.raises(ValueError, match="as many"):
        mean_rouge_l(["a"], [])


def test_pairwise_outcomes_and_bootstrap():
    assert pairwise_outcomes([1.0, 0.0, 2.0], [0.0, 1.0, 2.0]) == [1.0, 0.0, 0.5]
    values = [1.0] * 60 + [0.0] * 40
    low, high = bootstrap_ci(values, seed=0)
    assert low < 0.6 < high and 0.45 < low and high < 0.75
    assert bootstrap_ci(values, seed=0) == (low, high)  # seeded: reproducible
    wide = bootstrap_ci(values[::5], seed=0)  # 20 values: a wider interval
    assert wide[1] - wide[0] > high - low
    assert bootstrap_ci([1.0, 1.0, 1.0], seed=0) == (1.0, 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="one score"):
        pairwise_outcomes([1.0], [])


def test_ngram_overlap_finds_a_copied_row_and_not_a_new_one():
    train = ["the quick brown fox jumps over the lazy dog today", "Add 3 and 4. 7"]
    rows = ["quick brown fox jumps over the lazy dog", "Add 3 and 4. 7", "Add 4 and 3. 7", "a new sentence"]
    overlaps = ngram_overlap(rows, train, n=8)
    assert overlaps[0] == 1.0 and overlaps[1] == 1.0  # inside a longer text; short row found whole
    assert overlaps[2] == 0.0 and overlaps[3] == 0.0
    assert contaminated(rows, train, n=8, threshold=1.0) == [True, True, False, False]
    with pytest.raises(ValueError, match="threshold"):
        contaminated(rows, train, threshold=0)


def test_time_budget_stops_a_trainer():
    budget = TimeBudget(0.01)
    control = type("Control", (), {"should_training_stop": False})()
    state = type("State", (), {"global_step": 3})()
    budget.on_train_begin(None, state, control)
    time.sleep(0.02)
    budget.on_step_end(None, state, control)
    assert control.should_training_stop and budget.steps == 3
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0)


def test_model_bytes_counts_parameters():
    model = torch.nn.Linear(4, 3)  # 12 weights + 3 biases, fp32
    assert model_bytes(model) == 15 * 4
    assert model_bytes(model.to(torch.bfloat16)) == 15 * 2


def test_new_owner_keys_record_their_recipe():
    assert tiny_cpt_key() == tiny_cpt_key(CPT_TRAIN)
    assert tiny_cpt_key(dataclasses.replace(CPT_TRAIN, lr=1e-3)) != tiny_cpt_key()
    assert tiny_rloo_key() != tiny_ppo_key()  # two policies, two entries
    assert tiny_rloo_key(dataclasses.replace(PPO_SETTINGS, lr=1e-4)) != tiny_rloo_key()


def test_the_lessons_lcs_and_rouge_l_match_the_library():
    from notebook_defs import import_definitions

    nb = import_definitions("07_evaluation.ipynb", ["lcs", "rouge_l_f"])
    for prediction, reference in PAIRS:
        assert nb.lcs(prediction.split(), reference.split()) == lcs_length(prediction.split(), reference.split())
        assert abs(nb.rouge_l_f(prediction, reference) - rouge_l(prediction, reference)["fmeasure"]) <= 1e-12
