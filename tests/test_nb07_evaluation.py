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
CHECKPOINTS = [
    "base",
    "continued-pretrained",
    "SFT",
    "chatty SFT",
    "PPO",
    "RLOO",
    "DPO",
    "LoRA",
    "QLoRA",
    "int8",
    "nf4",
]
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
    # SFT beats base on exact match: measured 0.517 against 0.000 (cached models: the same on every seed)
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
    # PPO against its start, 20 random prompts vs all 160: widths 0.400 and 0.150-0.156 (seeds 0-3, win rate 0.438).
    # "usually, not always, contains the 160-prompt win rate": True on seeds 0-2, False on seed 3 (not asserted)
    assert m["ci_width_20"] > 1.5 * m["ci_width_full"]
    # "int8 is not distinguishable from SFT"; "where all 160 answers are identical ... [0.500, 0.500]": 160 of 160
    assert m["int8_indistinguishable"]
    if m["int8_identical_answers"] == m["ci_n_full"]:
        assert m["int8_ci"] == [0.5, 0.5]


def test_judge_is_measured_honestly(m):
    assert 0 <= m["judge_agreement"] <= 1 and 0 <= m["judge_position_bias"] <= 1
    # "agreement near chance, the verdict changes with the order on most pairs, says 'A' far more often, a few pairs
    # survive the swap": chatty judge (cached: every seed) agreement 0.497, bias 0.931, says A 0.934, 11 of 160 pairs
    assert abs(m["judge_agreement"] - 0.5) < 0.15
    assert m["judge_position_bias"] > 0.5 and m["judge_says_a"] > 0.75
    assert 0 < m["judge_consistent_pairs"] < 0.5 * m["judge_pairs"]


def test_contamination_is_detected_and_inflates_exact_match(m):
    assert m["contamination_detected"]
    assert m["contamination_by_file"]["instruct_raw.jsonl"] >= 25  # the 25 planted leaks of data/manifest.json
    # leaked rows against clean rows of the same split, same model: measured 0.63-0.80 vs 0.23-0.40 (seeds 0-3),
    # differences 0.27-0.57
    assert m["contaminated_em"] > m["clean_em"] + 0.15
    assert m["reported_em_with_leak"] > m["sft_em_heldout_task"]


def test_forgetting_and_what_the_scoreboard_says(m):
    b = board(m)
    base = b["base"]
    for name, row in b.items():
        if name != "base":  # "every checkpoint ... higher general perplexity than the base": x1.14 (PPO) to x18.8
            assert row["general_ppl"] > base["general_ppl"], name
            assert row["fact_probe"] <= base["fact_probe"], name  # measured 0.50-0.88 against 1.00
    start = m["forgetting_vs_start"]
    # "the chatty fine-tuning did most of the damage": x8.65 SFT's general perplexity, fact probe 0.804 -> 0.500
    assert start["chatty SFT"] > 3 and b["chatty SFT"]["fact_probe"] < b["SFT"]["fact_probe"] - 0.15
    # "PPO brings the general perplexity far below its start's and raises the fact probe": x0.07, 0.500 -> 0.732
    assert start["PPO"] < 0.5 and b["PPO"]["fact_probe"] > b["chatty SFT"]["fact_probe"]
    # "RLOO and DPO end a little worse than their start (factors just above 1) with about the same fact probe":
    # x1.12 and x1.20, fact probe +0.036 and +0.018
    for name in ("RLOO", "DPO"):
        assert 1 < start[name] < 1.5 and abs(b[name]["fact_probe"] - b["chatty SFT"]["fact_probe"]) < 0.1
        assert b[name]["general_ppl"] > b["SFT"]["general_ppl"]  # "next to SFT they look far worse"
    # "LoRA and QLoRA keep its general perplexity (factors near 1)": x0.93 and x0.93
    assert 0.8 < start["LoRA"] < 1.2 and 0.8 < start["QLoRA"] < 1.2
    # "base and continued-pretrained score 0 exact match and almost never win": measured 0.000, win 0.000 and 0.037
    assert b["base"]["exact_match"] == b["continued-pretrained"]["exact_match"] == 0
    assert b["base"]["win_rate_vs_sft"] < 0.1 and b["continued-pretrained"]["win_rate_vs_sft"] < 0.1
    assert base["general_ppl"] == min(r["general_ppl"] for r in b.values())
    # "SFT leads on exact match and ROUGE-L": 0.517 (nf4 0.508 next); "NF4 and QLoRA take the least memory"
    assert b["SFT"]["exact_match"] == max(r["exact_match"] for r in b.values())
    assert b["SFT"]["rougeL"] == max(r["rougeL"] for r in b.values())
    assert sorted(b, key=lambda n: b[n]["size_bytes"])[:2] == ["nf4", "QLoRA"]
    assert m["int8_identical_answers"] == 160  # "int8 gives the same answers to all 160 preference prompts"
    # "against SFT, PPO, RLOO and DPO have a worse exact match and labeller score (EM 0.033, 0.042, 0.025 vs 0.517;
    # labeller 5.90, 5.83, 5.12 vs 6.67), while the reward model prefers PPO and DPO to SFT": 0.94 [0.89, 0.97] and
    # 0.91 [0.86, 0.95]
    for name in ("PPO", "RLOO", "DPO"):
        assert b[name]["exact_match"] < b["SFT"]["exact_match"] and b[name]["labeller"] < b["SFT"]["labeller"]
        # "against their own start all three raise the labeller's score": 5.90, 5.83, 5.12 vs 4.41
        assert b[name]["labeller"] > b["chatty SFT"]["labeller"]
    assert b["PPO"]["win_rate_ci_low"] > 0.5 and b["DPO"]["win_rate_ci_low"] > 0.5
    # "the reward model does not prefer PPO or RLOO to the start, while it prefers DPO": PPO 0.438 [0.36, 0.52],
    # RLOO 0.144 [0.09, 0.20], DPO 0.697 [0.65, 0.75] (seeds 0-3: PPO's upper end 0.51-0.52, RLOO's 0.20, DPO's lower end 0.64-0.65)
    assert b["PPO"]["win_rate_vs_start_ci"][0] <= 0.5 and b["PPO"]["win_rate_vs_start"] < 0.5
    assert b["RLOO"]["win_rate_vs_start_ci"][1] < 0.5 and b["DPO"]["win_rate_vs_start_ci"][0] > 0.5


def test_answer_perplexity_above_uniform_is_explained(m):
    b = board(m)
    # "the base model's ppl is above 926": 4.45e7 and 2.17e5 (cached models); the end-of-turn token costs 22.6 and 16.4
    # nats against 14.7 and 9.9 for the answers' other tokens, 48% and 49% of the loss; SFT: 0.08 nats, 2%
    for name in ("base", "continued-pretrained"):
        assert b[name]["ppl"] > 926 and b[name]["nll_end"] > b[name]["nll_other"] > 6.83  # ln 926 = 6.83
        assert b[name]["end_loss_share"] > 0.3
    assert b["SFT"]["end_loss_share"] < 0.1


def test_challenge_and_budget(m):
    # "the baseline scores below the fully trained assistant": measured 0.383-0.433 after 49-61 steps (seeds 0-3,
    # a shared 2-core machine, 2026-11-27) against 0.517. A faster machine buys more of week 2's 240 steps and the two scores draw closer
    # (60 CPU seconds bought all 240 on idle cores, hence the 20-second budget): "part-way through the schedule"
    assert 0 <= m["challenge_baseline_score"] <= board(m)["SFT"]["exact_match"] + 0.05
    if m["challenge_baseline_steps"] < 200:
        assert m["challenge_baseline_score"] < board(m)["SFT"]["exact_match"]
    # time is reported by the runner (`make course`), never asserted: measured 60-64 s (seeds 0, 2, 3; 238 s for seed 1
    # beside other jobs), within the 3-minute budget
    assert m["peak_mem_bytes"] < 4e9  # budget 4 GB; measured 0.84-0.85 GiB (seeds 0-3)


def test_solutions():
    s = executed("07_evaluation_solutions.ipynb").metrics
    assert s["rouge_n_matches_library_abs_diff"] <= 1e-6
    assert s["em_delta_ci"][0] <= s["em_delta_lora_sft"] <= s["em_delta_ci"][1]
    # "a verdict on only a few pairs, right about as often as a coin": 11 of 160 pairs, 5 right (cached judge, every seed)
    assert 0 < s["judge_consistent_pairs"] < 0.5 * 160 and 0.2 <= s["judge_consistent_accuracy"] <= 0.8
    # "about 1.3-1.6 times as many steps": measured 141-160 against 94-112 (seeds 0-3), ratios 1.26-1.60
    assert s["challenge_entry_steps"] > 1.1 * s["challenge_baseline_steps"]
    # "ours won five, tied one and lost two" of eight runs (seeds 0-3, twice): entry 0.475-0.517, baseline
    # 0.442-0.542, entry - baseline from -0.034 to +0.058; the gain is within seed noise, so only a collapse fails
    assert s["challenge_entry_score"] >= s["challenge_baseline_score"] - 0.08
    assert s["peak_mem_bytes"] < 4e9  # measured 0.74-0.75 GiB (seeds 0-3)
