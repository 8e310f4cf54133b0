"""Week 2: the notebooks run and the lessons of instruction tuning show.

Each notebook is executed once (tiny profile, seed 0) and every assertion reads its metrics.json.
Thresholds keep a margin from what seeds 0-3 measured on the 2-core CI machine (numbers in the comments).
"""

import json

import pytest
from conftest import executed
from course_utils.data import DATA_DIR

pytestmark = pytest.mark.slow

KEYS = """base_accuracy sft_accuracy sft_accuracy_by_task heldout_phrasing_accuracy_base heldout_phrasing_accuracy_sft
heldout_task_accuracy_base heldout_task_accuracy_sft mask_matches_trl trained_token_fraction pad_fraction_padded
pad_fraction_packed tokens_per_s_padded tokens_per_s_packed curation_removed data_curve_sizes data_curve_accuracy
general_ppl_before general_ppl_after wall_s peak_mem_bytes heldout_phrasing_accuracy_by_task seen_accuracy_by_task
sft_forced_choice_fact_accuracy demo_right_after_sft ni_zero_shot_accuracy_base ni_few_shot_accuracy_base
ni_instructed_seen_accuracy ni_instructed_heldout_task_accuracy data_curve_interval""".split()


@pytest.fixture(scope="module")
def m():
    return executed("02_instruction_tuning.ipynb").metrics


def test_writes_every_metric(m):
    assert not [k for k in KEYS if k not in m]


def test_base_model_fails_at_instructions(m):
    # measured (seeds 0-3): 0.00 on every split
    assert m["base_accuracy"] <= 0.05
    assert m["heldout_phrasing_accuracy_base"] <= 0.05


def test_sft_beats_the_base_model_by_a_wide_margin(m):
    # measured (seeds 0-3): seen 0.73-0.78
    assert m["sft_accuracy"] >= m["base_accuracy"] + 0.45


def test_heldout_phrasings_improve(m):
    # measured (seeds 0-3): 0.44-0.53
    assert m["heldout_phrasing_accuracy_sft"] >= m["heldout_phrasing_accuracy_base"] + 0.3


def test_new_phrasings_differ_by_task(m):
    # measured (seeds 0-3): sentiment 1.0 on the new phrasing, fact_job 0.0, add 0.5-0.67, pet 0.6-0.7, town 0.2
    by_task = m["heldout_phrasing_accuracy_by_task"]
    assert set(by_task) == {"add", "fact_town", "fact_job", "fact_pet", "sentiment", "repeat"}
    assert by_task["sentiment"] >= 0.8
    assert max(by_task.values()) - min(by_task.values()) >= 0.5  # the split's average hides a wide spread


def test_forced_choice_shows_the_knowledge_free_answers_miss(m):
    forced = m["sft_forced_choice_fact_accuracy"]
    # measured (seeds 0-3): town 0.7, job 1.0, pet 0.9, colour 0.8-0.9 (colour: a task type never trained)
    assert sum(forced[a] for a in ("town", "job", "pet")) / 3 >= 0.6
    # measured: colour forced 0.8-0.9 vs free answer 0.0-0.33 (AVX-512 machine, seeds 0-3); 0.3 vs 0.07 (AVX2, seed 0)
    assert forced["colour"] >= m["sft_accuracy_by_task"]["fact_colour"] + 0.15


def test_no_in_context_learning_at_this_scale(m):
    # measured (seeds 0-3): zero-shot 0.00, few-shot (definition + two examples) 0.00
    assert m["ni_zero_shot_accuracy_base"] <= 0.05
    assert m["ni_few_shot_accuracy_base"] <= m["ni_zero_shot_accuracy_base"] + 0.05


def test_definitions_in_training_do_not_reach_new_task_types_at_this_scale(m):
    # measured (seeds 0-3): with definitions seen 0.69-0.74 (bare 0.73-0.78); new task types 0.08-0.15 (bare 0.05-0.22)
    assert m["ni_instructed_seen_accuracy"] >= m["sft_accuracy"] - 0.15  # the trained tasks are learned either way
    for heldout in (m["ni_instructed_heldout_task_accuracy"], m["heldout_task_accuracy_sft"]):
        assert heldout <= 0.35 and heldout <= m["sft_accuracy"] - 0.3


def test_demo_prompts_are_scored(m):
    assert 1 <= m["demo_right_after_sft"] <= 4  # measured (seeds 0-3): 2 of 4


def test_facts_of_probe_people_are_extracted(m):
    # No SFT example names a probe person, yet SFT answers questions about them well above chance (1/8 to 1/10):
    # the facts come from pretraining. measured (seeds 0-3): mean of town, job, pet 0.58-0.66
    facts = [m["sft_accuracy_by_task"][t] for t in ("fact_town", "fact_job", "fact_pet")]
    assert sum(facts) / 3 >= 0.35
    assert min(m["probe_cloze_accuracy_base"].values()) >= 0.8  # the base model knows them (measured 0.9-1.0)


def test_mask_matches_trl(m):
    assert m["mask_matches_trl"] is True
    assert 0 < m["trained_token_fraction"] < 0.2  # measured 0.061 (deterministic)


def test_packing_removes_padding(m):
    assert m["pad_fraction_padded"] > 0.25  # measured 0.35
    assert m["pad_fraction_packed"] < 0.02  # measured 0.0
    assert m["tokens_per_s_padded"] > 0 and m["tokens_per_s_packed"] > 0  # speed is for make bench, not a test


def test_accuracy_grows_with_data(m):
    sizes, acc = m["data_curve_sizes"], m["data_curve_accuracy"]
    assert len(sizes) >= 4 and sizes == sorted(sizes) and len(acc) == len(sizes)
    # measured (seeds 0-3): 30 examples 0.23-0.32, all 1,250 examples 0.60-0.62 (gap 0.30-0.38)
    assert acc[-1] >= acc[0] + 0.15
    (low_first, high_first), (low_last, _) = m["data_curve_interval"][0], m["data_curve_interval"][-1]
    assert low_first <= acc[0] <= high_first
    assert high_first < low_last  # the gain is larger than the test set's noise (half-widths about 0.07)


def test_curation_removes_exactly_what_was_planted(m):
    planted = json.loads((DATA_DIR / "manifest.json").read_text())["planted_in_instruct_raw"]
    assert m["curation_removed"] == planted


def test_forgetting_shows(m):
    # measured (seeds 0-3): 2.63 -> 4.75-4.93
    assert m["general_ppl_after"] > 1.3 * m["general_ppl_before"]


def test_memory_budget(m):
    assert m["peak_mem_bytes"] < 3 * 2**30  # measured 0.8 GiB


def test_solutions_notebook():
    s = executed("02_instruction_tuning_solutions.ipynb").metrics
    assert s["near_dup_flagged"] >= s["near_dup_rows"] > 0  # every near duplicate flagged (asserted in the notebook)
    # measured (seeds 0-3): assistant-only 0.59-0.66 vs loss on every token 0.32-0.34 after 100 steps; seed 0 in a
    # fresh-clone CI run on 2026-11-26: 0.62 vs 0.23
    assert s["acc_assistant_only"] >= s["acc_full_loss"] + 0.1
    # measured (seeds 0-3): subtraction 0.10 -> 0.30-0.53 (asserted in the notebook too)
    assert s["subtract_acc_after"] > s["subtract_acc_before"]
    assert s["peak_mem_bytes"] < 3 * 2**30
