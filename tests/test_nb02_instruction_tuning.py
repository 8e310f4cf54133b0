"""Week 2: the notebook runs and SFT's lessons show. Thresholds keep a margin from seeds 0-3 (see the issue note)."""

import json

import pytest
from conftest import executed

from course_utils.tinyworld import DATA_DIR

pytestmark = pytest.mark.slow

KEYS = """base_accuracy sft_accuracy sft_accuracy_by_task heldout_phrasing_accuracy_base heldout_phrasing_accuracy_sft
heldout_task_accuracy_base heldout_task_accuracy_sft mask_matches_trl trained_token_fraction pad_fraction_padded
pad_fraction_packed tokens_per_s_padded tokens_per_s_packed curation_removed data_curve_sizes data_curve_accuracy
general_ppl_before general_ppl_after wall_s peak_mem_bytes""".split()


@pytest.fixture(scope="module")
def m():
    return executed("02_instruction_tuning.ipynb").metrics


def test_writes_every_metric(m):
    assert not [k for k in KEYS if k not in m]


def test_sft_beats_the_base_model_by_a_wide_margin(m):
    # measured (seeds 0-3): base 0.0, SFT 0.53-0.59
    assert m["base_accuracy"] <= 0.1
    assert m["sft_accuracy"] >= m["base_accuracy"] + 0.3


def test_heldout_phrasings_improve(m):
    # measured (seeds 0-3): base 0.0, SFT 0.46-0.53
    assert m["heldout_phrasing_accuracy_sft"] >= m["heldout_phrasing_accuracy_base"] + 0.2


def test_facts_are_extracted_above_chance(m):
    # fact questions ask about people no SFT example mentions; chance is 1/8 to 1/10; measured 0.38-0.50
    facts = [m["sft_accuracy_by_task"][t] for t in ("fact_town", "fact_job", "fact_pet")]
    assert sum(facts) / 3 >= 0.2


def test_mask_matches_trl(m):
    assert m["mask_matches_trl"] is True
    assert 0 < m["trained_token_fraction"] < 0.5


def test_packing_removes_padding(m):
    assert m["pad_fraction_padded"] > 0.2
    assert m["pad_fraction_packed"] < 0.05


def test_accuracy_grows_with_data(m):
    sizes, acc = m["data_curve_sizes"], m["data_curve_accuracy"]
    assert len(sizes) >= 4 and sizes == sorted(sizes)
    assert acc[-1] >= acc[0] + 0.1  # measured (seeds 0-3): 0.19-0.25 -> 0.50-0.57


def test_curation_removes_what_was_planted(m):
    planted = json.loads((DATA_DIR / "manifest.json").read_text())["planted_in_instruct_raw"]
    removed = m["curation_removed"]
    assert removed["bad"] == planted["bad"]
    assert removed["eval_leaks"] == planted["eval_leaks"]
    assert (
        removed["exact_duplicates"] + removed["near_duplicates"]
        == planted["exact_duplicates"] + planted["near_duplicates"]
    )


def test_forgetting_shows(m):
    assert m["general_ppl_after"] > m["general_ppl_before"]


def test_memory_budget(m):
    assert m["peak_mem_bytes"] < 3 * 2**30


def test_solutions_notebook():
    s = executed("02_instruction_tuning_solutions.ipynb").metrics
    assert s["near_dup_flagged"] >= 40
    assert s["subtract_acc_after"] > s["subtract_acc_before"]
