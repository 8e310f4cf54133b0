"""Week 8's pieces of course_utils: bytes per parameter, ZeRO's accounting, and the distributed training script."""

import copy

import pytest
import torch
import torch.distributed as dist
from course_utils import dist_train
from course_utils.checkpoints import load_tiny_tokenizer
from course_utils.memory import (
    BYTES_PER_PARAM_METHODS,
    ZERO_STAGES,
    bytes_per_param,
    lora_parameter_count,
    quantized_linear_fraction,
    training_memory,
    zero_communication,
    zero_memory,
)
from course_utils.models import LLAMA_SHAPES, count_llama_parameters, count_parameters, smollm2_135m_config
from transformers import LlamaConfig, LlamaForCausalLM


def test_bytes_per_param_of_full_fine_tuning():
    assert bytes_per_param("fp32_adam").total == bytes_per_param("mixed_adam").total == 16
    assert bytes_per_param("fp32_adam8bit").total == bytes_per_param("mixed_adam8bit").total == 10
    assert bytes_per_param("mixed_adam").master == 4 and bytes_per_param("fp32_adam").master == 0
    assert training_memory(1000, 1000).total == 1000 * bytes_per_param("fp32_adam").total  # the older function agrees


def test_bytes_per_param_of_adapters():
    lora, qlora = bytes_per_param("lora", 0.01), bytes_per_param("qlora", 0.01, quantized_fraction=0.96)
    assert lora.total == pytest.approx(2 + 0.16)
    assert qlora.total == pytest.approx(0.96 * (0.5 + 4 / 64) + 0.04 * 2 + 0.16)  # fp32 absmax per 64 weights
    double = bytes_per_param("qlora", 0.01, quantized_fraction=0.96, double_quant=True)
    assert double.total == pytest.approx(0.96 * (0.5 + 1 / 64 + 4 / 16384) + 0.04 * 2 + 0.16)
    with pytest.raises(ValueError, match="quantized_linear_fraction"):
        bytes_per_param("qlora", 0.01)
    for method in BYTES_PER_PARAM_METHODS[:4]:
        assert bytes_per_param(method).total > lora.total > qlora.total > double.total
    with pytest.raises(ValueError, match="trainable_fraction"):
        bytes_per_param("lora")
    with pytest.raises(ValueError, match="method must be one of"):
        bytes_per_param("sgd")


def test_lora_parameter_count_matches_peft():
    from peft import LoraConfig, get_peft_model

    config = smollm2_135m_config()  # grouped-query attention: k and v narrower than q
    with torch.device("meta"):
        model = get_peft_model(
            LlamaForCausalLM(config), LoraConfig(r=8, target_modules=["q_proj", "v_proj", "up_proj"])
        )
    assert count_parameters(model, trainable_only=True) == lora_parameter_count(
        config, 8, ("q_proj", "v_proj", "up_proj")
    )
    with pytest.raises(ValueError, match="targets must be among"):
        lora_parameter_count(config, 8, ("qkv",))


def test_published_llama_sizes():
    assert round(count_llama_parameters("Llama-2-7B")[1] / 1e9, 2) == 6.74
    assert round(count_llama_parameters("Llama-2-70B")[1] / 1e9, 1) == 69.0
    with pytest.raises(ValueError, match="name must be one of"):
        count_llama_parameters("Llama-3-8B")


def test_zero_memory_follows_the_paper():
    psi = 7.5e9  # the paper's example: 7.5B parameters on 64 GPUs, K = 12
    gb = {stage: zero_memory(psi, 64, stage)["device"] / 1e9 for stage in ZERO_STAGES}
    assert gb["ddp"] == 120 and round(gb["zero1"], 1) == 31.4 and round(gb["zero2"], 1) == 16.6
    assert round(gb["zero3"], 2) == 1.88
    for n in (1, 2, 8, 64):  # stage 3 alone falls as 1/N; with one device every stage is DDP
        assert zero_memory(psi, n, "zero3")["device"] * n == zero_memory(psi, 1, "ddp")["device"]
    for stage in ZERO_STAGES[:4]:
        assert zero_memory(psi, 1, stage)["device"] == zero_memory(psi, 1, "ddp")["device"]
    assert zero_memory(psi, 8, "zero2_offload")["host"] == 14 * psi / 8
    with pytest.raises(ValueError, match="stage must be one of"):
        zero_memory(psi, 8, "zero4")
    with pytest.raises(ValueError, match="n_devices"):
        zero_memory(psi, 0, "zero3")


def test_zero_communication():
    ddp, z2, z3 = (zero_communication(1e9, 8, s)["network"] for s in ("ddp", "zero2", "zero3"))
    assert ddp == z2 == 2 * 7 / 8 * 1e9 * 2 and z3 == pytest.approx(1.5 * ddp)
    assert zero_communication(1e9, 1, "ddp")["network"] == 0  # alone, nothing to send
    assert zero_communication(1e9, 8, "zero3_offload")["pcie"] > 0 == zero_communication(1e9, 8, "zero3")["pcie"]


def test_the_script_refuses_a_world_of_the_wrong_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(SystemExit, match="expected a world of 2 process"):
        dist_train.check_world_size(2)
    monkeypatch.delenv("WORLD_SIZE")
    assert dist_train.check_world_size(1) == 1


def test_ranks_split_each_step_into_its_blocks():
    blocks = torch.arange(40).view(20, 2)
    args = dist_train.parse_args(["--mode", "ddp", "--world-size", "2", "--model", "m", "--out", "o",
                                  "--steps", "3", "--global-batch", "4"])  # fmt: skip
    single = list(dist_train.batches(blocks, args, 0, 1))
    ranks = [list(dist_train.batches(blocks, args, r, 2)) for r in range(2)]
    for step in range(3):
        assert torch.equal(torch.cat([ranks[0][step], ranks[1][step]]), single[step])
    with pytest.raises(SystemExit):
        dist_train.parse_args(["--mode", "ddp", "--world-size", "3", "--model", "m", "--out", "o"])


@pytest.fixture
def world_of_one():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_sharded_adamw_is_adamw(world_of_one):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3))
    reference = copy.deepcopy(model)
    sharded, plain = dist_train.ShardedAdamW(model, 1e-2, 0, 1), torch.optim.AdamW(reference.parameters(), lr=1e-2,
                                                                                    weight_decay=0.0)  # fmt: skip
    for _ in range(3):
        x = torch.randn(4, 5)
        model(x).square().mean().backward()
        reference(x).square().mean().backward()
        sharded.step()
        plain.step()
        plain.zero_grad()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)
    assert sharded.state_bytes() == 8 * sum(p.numel() for p in model.parameters())


def test_single_mode_trains_and_reports(tmp_path):
    tokenizer = load_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    args = ["--mode", "single", "--model", str(tmp_path), "--out", str(tmp_path / "r.json"), "--steps", "3",
            "--global-batch", "4", "--seq", "32"]  # fmt: skip
    result = dist_train.train(dist_train.parse_args(args))
    assert len(result["losses"]) == 3 and result["losses"][-1] < result["losses"][0]
    assert result["world_size"] == 1 and result["by_hand_losses"] == []
    n = count_parameters(LlamaForCausalLM(config))
    assert result["param_bytes_per_rank"] == [4 * n] and result["optimizer_bytes_per_rank"] == [8 * n]


def test_quantized_linear_fraction_counts_what_bitsandbytes_quantizes():
    for name in LLAMA_SHAPES:
        config, n_params = count_llama_parameters(name)
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        linear = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear))
        assert quantized_linear_fraction(config) == pytest.approx(linear / n_params, rel=1e-9)
    config, n_params = count_llama_parameters("Llama-2-7B")
    assert 0.25e9 < (1 - quantized_linear_fraction(config)) * n_params < 0.27e9  # embeddings, head, norms in 16 bits


def test_zero3_offload_brings_the_weight_shard_up_twice():
    z2, z3 = (zero_communication(1e9, 8, s)["pcie"] for s in ("zero2_offload", "zero3_offload"))
    assert z2 == 2 * 1e9 / 8 * 2 and z3 == 1.5 * z2
