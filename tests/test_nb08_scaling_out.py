"""Bonus week: the notebooks run, and the lessons of scaling out show.

Each notebook is executed once (tiny profile, seed 0) and every assertion reads its metrics.json. Thresholds keep
a margin from what seeds 0-3 measured (numbers in the comments). The launched runs are deterministic up to the
order of floating-point sums, so most quantities came out the same on every seed.
"""

import math

import pytest
from conftest import executed

pytestmark = pytest.mark.slow

KEYS = """bytes_per_param predicted_peak_bytes measured_peak_bytes zero_bytes_7b_n8 ddp_world_size
ddp_vs_single_loss_abs_diff fsdp_ran fsdp_vs_ddp_loss_abs_diff total_param_bytes fsdp_param_bytes_per_rank wall_s
peak_mem_bytes launched_peak_bytes model_state_bytes zero_fewest_gpus_7b zero_comm_ratio zero3_bytes_7b_by_n
ddp_by_hand_loss_abs_diff zero2_by_hand_vs_fsdp_loss_abs_diff fsdp_optimizer_bytes_per_rank""".split()
GB = 1e9


@pytest.fixture(scope="module")
def m():
    return executed("08_scaling_out.ipynb").metrics


def test_writes_every_metric(m):
    assert not [k for k in KEYS if k not in m]


def test_bytes_per_parameter_and_the_big_models(m):
    b = m["bytes_per_param"]
    assert b["fp32_adam"] == b["mixed_adam"] == 16 and b["fp32_adam8bit"] == b["mixed_adam8bit"] == 10
    assert 2 < b["lora"] < 2.1 and 0.6 < b["qlora"] < 0.7  # r = 8 on q, k, v, o of Llama-2-7B: 2.02 and 0.64
    assert 2 < m["adam8bit_state_bytes_per_param"] < 2.15  # AdamW8bit as measured on the tiny model: 2.10
    # the prose's numbers: 7B 108 / 67 / 14 / 4 GB; 70B over 1.1 TB, about 14 GPUs of 80 GB
    s7, s70 = m["model_state_bytes"]["Llama-2-7B"], m["model_state_bytes"]["Llama-2-70B"]
    assert round(s7["fp32_adam"] / GB) == 108 and round(s7["mixed_adam8bit"] / GB) == 67
    assert round(s7["lora"] / GB) == 14 and round(s7["qlora"] / GB) == 4 and round(s7["qlora"] / GB, 1) == 4.3
    assert 1100 < s70["mixed_adam"] / GB and round(s70["mixed_adam"] / 80e9) == 14


def test_predicted_peak_matches_the_measured_one(m):
    # the notebook's stated tolerance, 15%; measured 0.93 x on seeds 0-3 (188 MiB against 202 MiB), 0.92-0.97 in other runs
    assert abs(m["measured_peak_bytes"] / m["predicted_peak_bytes"] - 1) <= 0.15


def test_zero_stages(m):
    z = m["zero_bytes_7b_n8"]
    assert z["ddp"] > z["zero1"] > z["zero2"] > z["zero3"] == z["zero2_offload"] > z["zero3_offload"] == 0
    assert round(z["ddp"] / GB) == 108  # "DDP is flat at 108 GB"
    by_n = m["zero3_bytes_7b_by_n"]  # N = 1, 2, 4, ..., 64: ZeRO-3 falls as 1/N
    for i, value in enumerate(by_n):
        assert value * 2**i == pytest.approx(by_n[0])
    assert m["zero_fewest_gpus_7b"]["80 GB"] == {"ddp": None, "zero1": 2, "zero2": 2, "zero3": 2}
    assert m["zero_fewest_gpus_7b"]["24 GB"] == {"ddp": None, "zero1": None, "zero2": 9, "zero3": 5}
    ratio = m["zero_comm_ratio"]  # "stages 1 and 2 send what DDP sends, stage 3 1.5 times as much"
    assert ratio["zero1"] == ratio["zero2"] == 1 and ratio["zero3"] == pytest.approx(1.5)


def test_ddp_on_two_processes_is_one_process_with_twice_the_batch(m):
    assert m["ddp_world_size"] == 2
    assert m["ddp_vs_single_loss_abs_diff"] < 1e-3  # measured 4.8e-07 to 1.9e-06
    assert m["ddp_by_hand_loss_abs_diff"] < 1e-5 and m["ddp_by_hand_max_param_diff"] < 1e-5  # measured 0.0, 0.0
    assert m["ddp_losses"][-1] < 0.5 * m["ddp_losses"][0]  # "falls by more than half": measured x0.27-0.28
    assert len(m["ddp_losses"]) == len(m["single_losses"]) == 20
    # "starts about twice ln 926, higher than a model that knows nothing": measured 14.5 against 6.83 on seed 0
    assert m["uniform_loss"] == pytest.approx(math.log(926), rel=1e-6)
    assert m["single_losses"][0] > 1.6 * m["uniform_loss"] and m["single_losses"][-1] < m["uniform_loss"]


def test_fsdp2_shards_and_matches_ddp(m):
    assert m["fsdp_ran"] and m["fsdp_world_size"] == 2
    total, per_rank = m["total_param_bytes"], m["fsdp_param_bytes_per_rank"]
    assert sum(per_rank) == total and all(0.45 <= b / total <= 0.55 for b in per_rank)  # measured 0.500 exactly
    assert m["ddp_param_bytes_per_rank"] == [total, total]
    half_state = m["ddp_optimizer_bytes_per_rank"][0] / 2  # "half of the AdamW state", by FSDP2 and ZeRO-2 by hand
    assert all(abs(b - half_state) <= 0.05 * half_state for b in m["fsdp_optimizer_bytes_per_rank"])
    assert all(abs(b - half_state) <= 0.05 * half_state for b in m["zero2_by_hand_optimizer_bytes_per_rank"])
    assert m["fsdp_vs_ddp_loss_abs_diff"] < 1e-3  # measured 0.0 on seeds 0-3
    assert m["zero2_by_hand_vs_fsdp_loss_abs_diff"] < 1e-3  # measured 0.0


def test_configs(m):
    assert m["configs"] == ["ddp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp2.yaml", "single_gpu.yaml"]


def test_budget(m):
    # the notebook's kernel and the launched processes (all ranks of one run): measured 0.55 + 1.03 GiB.
    # Wall time 73-92 s on 2 cores (107-108 s beside another notebook); not asserted (make bench times it).
    assert m["peak_mem_bytes"] + m["launched_peak_bytes"] < 4 * 2**30


def test_solutions_notebook():
    s = executed("08_scaling_out_solutions.ipynb").metrics
    assert s["zero3_gpus_70b_8bit"] == 11 and s["zero3_gpus_70b_fp32_moments"] == 18
    assert round(s["state_70b_8bit_bytes"] / GB) == 690 and round(s["offload_host_bytes_7b_machine"] / GB) == 94
    assert s["zero1_max_param_diff"] < 1e-6  # measured 0.0
    assert s["ddp4_world_size"] == 4 and s["ddp4_vs_single_loss_abs_diff"] < 1e-3  # measured 9.5e-07
    assert s["peak_mem_bytes"] + s["launched_peak_bytes"] < 4 * 2**30  # measured 0.72-0.75 + 1.96 GiB
