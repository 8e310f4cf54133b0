"""Week 7: the notebooks run, each metric matches its reference, and the scoreboard holds every checkpoint.

Each notebook is executed once (tiny profile, seed 0) and every assertion reads its metrics.json. Thresholds keep a
margin from what seeds 0-3 measured (numbers in the comments). Every checkpoint comes from the cache, so the
scoreboard's model columns are the same on every seed; the seed moves the bootstrap resamples, the leaked rows of
section 7 and the challenge's training order.
"""

import pytest
from conftest import executed

pytestmark = pytest.mark.slow

KEYS = """ppl_matches_loss_abs_diff rougeL_matches_library_abs_diff scoreboard judge_agreement judge_position_bias
contamination_detected contaminated_em clean_em challenge_baseline_score wall_s peak_mem_bytes em_raw em_normalized
ppo_win_rate ppo_ci ci_width_full ci_width_20 int8_win_rate int8_ci forgetting contamination_by_file""".split()
CHECKPOINTS = ["base", "continued-pretrained", "SFT", "PPO", "RLOO", "DPO", "LoRA", "QLoRA", "int8", "nf4"]
ROW_KEYS = """checkpoint ppl exact_match rougeL win_rate_vs_sft win_rate_ci_low win_rate_ci_high general_ppl
size_bytes""".split()


@pytest.fixture(scope="module")
def m():
    return executed("07_evaluation.ipynb").metrics


def board(m):
    return {row["checkpoint"]: row for row in m["scoreboard"]}


def test_writes_every_metric(m):
    assert not [k for k in KEYS if k not in m]
    assert [row["checkpoint"] for row in m["scoreboard"]] == CHECKPOINTS
    assert all(set(ROW_KEYS) <= set(row) for row in m["scoreboard"])


def test_perplexity_and_rouge_match_their_references(m):
    assert m["ppl_matches_loss_abs_diff"] <= 1e-6  # measured 0.0 (seeds 0-3: the same cached model)
    assert m["rougeL_matches_library_abs_diff"] <= 1e-6  # measured 0.0
    assert m["em_normalized"] >= m["em_raw"]  # true by construction
    # "the wrong answer scores the highest ROUGE-L": measured 0.75 against 0.20 for the right paraphrase (seeds 0-3)
    assert m["rougeL_wrong_answer"] > m["rougeL_right_paraphrase"]


def test_scoreboard(m):
    b = board(m)
    # SFT beats base on exact match: measured 0.575 against 0.000 (cached models: the same on every seed)
    assert b["SFT"]["exact_match"] > b["base"]["exact_match"] + 0.2
    assert b["SFT"]["win_rate_vs_sft"] == 0.5  # every prompt a tie with itself
    for row in m["scoreboard"]:
        assert row["win_rate_ci_low"] <= row["win_rate_vs_sft"] <= row["win_rate_ci_high"], row["checkpoint"]
        assert row["size_bytes"] > 0 and row["ppl"] > 1 and row["general_ppl"] > 1
    # quantized copies hold fewer bytes than the fp32 SFT model: measured 0.78 < 1.08 < 2.89 MB
    assert b["int8"]["size_bytes"] < b["SFT"]["size_bytes"] and b["nf4"]["size_bytes"] < b["int8"]["size_bytes"]


def test_confidence_intervals(m):
    low, high = m["ppo_ci"]
    assert low <= m["ppo_win_rate"] <= high and m["ci_contains_estimate"]
    # 20 prompts give a wider interval than 160: measured widths 0.40 and 0.125-0.134 (seeds 0-3)
    assert m["ci_width_20"] > 1.5 * m["ci_width_full"]
    # "int8 is not distinguishable from SFT": measured 160 of 160 answers identical, CI [0.5, 0.5]
    assert m["int8_indistinguishable"]


def test_judge_is_measured_honestly(m):
    assert 0 <= m["judge_agreement"] <= 1 and 0 <= m["judge_position_bias"] <= 1
    # "the tiny judge is close to chance and follows the position": measured agreement 0.500, bias 1.000 (says A always)
    assert abs(m["judge_agreement"] - 0.5) < 0.15
    assert m["judge_position_bias"] > 0.5


def test_contamination_is_detected_and_inflates_exact_match(m):
    assert m["contamination_detected"]
    assert m["contamination_by_file"]["instruct_raw.jsonl"] >= 25  # the 25 planted leaks of data/manifest.json
    # leaked rows against clean rows of the same split, same model: measured 0.60-0.80 vs 0.27-0.40 (seeds 0-3),
    # differences 0.27-0.53
    assert m["contaminated_em"] > m["clean_em"] + 0.15
    assert m["reported_em_with_leak"] > m["sft_em_heldout_task"]


def test_forgetting_and_what_the_scoreboard_says(m):
    b = board(m)
    base = b["base"]
    for name, row in b.items():
        if name != "base":  # "every checkpoint has a general perplexity above the base model's": x1.12 (PPO) to x9.3
            assert row["general_ppl"] > base["general_ppl"], name
            assert row["fact_probe"] <= base["fact_probe"], name  # measured 0.50-0.86 against 0.98
    # "PPO sits closest to the base, below SFT; RLOO and DPO show the largest factors": 3.01, 5.02, 23.7, 25.0
    assert b["PPO"]["general_ppl"] < b["SFT"]["general_ppl"] < min(b["RLOO"]["general_ppl"], b["DPO"]["general_ppl"])
    assert max(m["forgetting"], key=m["forgetting"].get) in ("RLOO", "DPO")
    # "the reward model prefers PPO and RLOO to SFT, intervals above 0.5, while exact match and the labeller fall":
    # measured win rates 0.77 [0.70, 0.84] and 0.90 [0.85, 0.94]; EM 0.20, 0.09 vs 0.575; labeller 5.92 vs 6.70
    for name in ("PPO", "RLOO"):
        assert b[name]["win_rate_ci_low"] > 0.5 and b[name]["exact_match"] < b["SFT"]["exact_match"]
        assert b[name]["labeller"] < b["SFT"]["labeller"]
    # "DPO falls below SFT on exact match, ROUGE-L, the labeller and general perplexity, and the reward model cannot
    # tell it from SFT": measured EM 0.03, ROUGE-L 0.11, labeller 4.98, general ppl 25.0; win 0.48 [0.41, 0.56]
    assert b["DPO"]["exact_match"] < b["SFT"]["exact_match"] and b["DPO"]["rougeL"] < b["SFT"]["rougeL"]
    assert b["DPO"]["labeller"] < b["SFT"]["labeller"] and b["DPO"]["general_ppl"] > b["SFT"]["general_ppl"]
    assert b["DPO"]["win_rate_ci_low"] <= 0.5 <= b["DPO"]["win_rate_ci_high"]
    # "base and continued-pretrained score 0 exact match and almost never win": measured 0.000, win 0.000 and 0.025
    assert b["base"]["exact_match"] == b["continued-pretrained"]["exact_match"] == 0
    assert b["base"]["win_rate_vs_sft"] < 0.1 and b["continued-pretrained"]["win_rate_vs_sft"] < 0.1
    assert base["general_ppl"] == min(r["general_ppl"] for r in b.values())
    # "int8 gives the very same answers": identical exact match; NF4 and QLoRA take the least memory
    assert b["int8"]["exact_match"] == b["SFT"]["exact_match"]
    assert b["SFT"]["exact_match"] == max(r["exact_match"] for r in b.values())  # "SFT leads on exact match"
    assert b["SFT"]["rougeL"] == max(r["rougeL"] for r in b.values())
    assert sorted(b, key=lambda n: b[n]["size_bytes"])[:2] == ["nf4", "QLoRA"]


def test_challenge_and_budget(m):
    # "the baseline scores below the fully trained assistant": measured 0.475-0.508 after 94-108 steps (seeds 0-3,
    # 2 idle cores) against 0.575. A faster machine buys more of week 2's 240 steps and the two scores draw closer
    # (60 CPU seconds bought all 240 on idle cores, hence the 20-second budget): "part-way through the schedule"
    assert 0 <= m["challenge_baseline_score"] <= board(m)["SFT"]["exact_match"] + 0.05
    if m["challenge_baseline_steps"] < 200:
        assert m["challenge_baseline_score"] < board(m)["SFT"]["exact_match"]
    # time is reported by the runner (`make course`), never asserted: measured 43-48 s on 2 idle cores (seeds 0-3),
    # within the 3-minute budget; 273-372 s beside other jobs (load about 4)
    assert m["peak_mem_bytes"] < 4e9  # budget 4 GB; measured 0.83-0.85 GiB (seeds 0-3)


def test_solutions():
    s = executed("07_evaluation_solutions.ipynb").metrics
    assert s["rouge_n_matches_library_abs_diff"] <= 1e-6
    assert s["em_delta_ci"][0] <= s["em_delta_lora_sft"] <= s["em_delta_ci"][1]
    # "about 1.3-1.6 times as many steps": measured 141-160 against 94-112 (seeds 0-3), ratios 1.26-1.60
    assert s["challenge_entry_steps"] > 1.1 * s["challenge_baseline_steps"]
    # "ours won five, tied one and lost two" of eight runs (seeds 0-3, twice): entry 0.475-0.517, baseline
    # 0.442-0.542, entry - baseline from -0.034 to +0.058; the gain is within seed noise, so only a collapse fails
    assert s["challenge_entry_score"] >= s["challenge_baseline_score"] - 0.08
    assert s["peak_mem_bytes"] < 4e9  # measured 0.74-0.75 GiB (seeds 0-3)
