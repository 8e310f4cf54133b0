"""course_utils.adapters: the new-task rows stay out of the evaluation, the recipes and keys, and the memory count."""

import dataclasses

import pytest
import torch
from course_utils.adapters import (
    LORA_RECIPE,
    NEW_TASKS,
    TASK_ADAPTER_RECIPES,
    LoraRecipe,
    files_bytes,
    lora_config,
    new_task_eval_rows,
    new_task_rows,
    tiny_lora_key,
    tiny_qlora_key,
)
from course_utils.data import people
from course_utils.memory import optimizer_state_bytes, saved_activation_bytes, training_memory


def test_new_task_rows_never_ask_an_evaluation_question():
    rows, evals = new_task_rows(), new_task_eval_rows()
    assert {r["task"] for r in evals} == set(NEW_TASKS) and len(evals) == 60
    assert not {r["prompt"] for r in rows} & {r["prompt"] for r in evals}
    asked_about = {p["name"] for p in people(("core", "probe")) for r in evals if p["name"] in r["prompt"]}
    colour_rows = [r for r in rows if r["task"] == "fact_colour"]
    assert colour_rows and not any(name in r["prompt"] for r in colour_rows for name in asked_about)


def test_new_task_rows_are_correct_and_fixed():
    rows = new_task_rows()
    assert rows == new_task_rows()  # same rows, same order, every call
    counts = {t: sum(r["task"] == t for r in rows) for t in NEW_TASKS}
    assert counts == {"subtract": 231 - 30, "fact_colour": 20 * 3}
    colour = {p["name"]: p["colour"] for p in people(("core", "probe"))}
    for r in rows:
        if r["task"] == "subtract":
            a, b = (int(w) for w in r["prompt"].rstrip("?").split() if w.isdigit())
            assert r["response"] == str(a - b) and a >= b
        else:
            assert r["response"] == next(c for name, c in colour.items() if name in r["prompt"])
    assert {r["task"] for r in new_task_rows(("subtract",))} == {"subtract"}


def test_unknown_tasks_and_bad_recipes_are_refused():
    with pytest.raises(ValueError, match="tasks must be among"):
        new_task_rows(("add",))
    with pytest.raises(ValueError):
        LoraRecipe(r=0)
    with pytest.raises(ValueError):
        LoraRecipe(tasks=("repeat",))


def test_lora_config_follows_the_recipe():
    config = lora_config(dataclasses.replace(LORA_RECIPE, r=4, alpha=8))
    assert config.r == 4 and config.lora_alpha == 8 and config.lora_dropout == 0.0
    assert set(config.target_modules) == set(LORA_RECIPE.targets)


def test_changing_a_lora_field_changes_the_key():
    key = tiny_lora_key()
    assert tiny_lora_key(LORA_RECIPE) == key
    for field, value in [("r", 4), ("lr", 1e-3), ("seed", 1), ("tasks", ("subtract",)), ("precision", "bf16")]:
        assert tiny_lora_key(dataclasses.replace(LORA_RECIPE, **{field: value})) != key, field
    assert len({tiny_lora_key(r) for r in TASK_ADAPTER_RECIPES.values()} | {key}) == 1 + len(NEW_TASKS)


def test_the_qlora_adapter_has_its_own_key():
    assert tiny_qlora_key() != tiny_lora_key()
    assert tiny_qlora_key(dataclasses.replace(LORA_RECIPE, r=4)) != tiny_qlora_key()


def test_activation_checkpointing_keeps_fewer_bytes_for_backward():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4)  # fmt: skip
    model = LlamaForCausalLM(config).train()
    batch = {"input_ids": torch.randint(0, 64, (2, 16))}
    kept = saved_activation_bytes(model, batch)
    model.activation_checkpointing_enable()
    assert 0 < saved_activation_bytes(model, batch) < kept / 2
    assert all(p.grad is None for p in model.parameters())  # the count leaves no gradients behind


def test_adamw_keeps_eight_bytes_per_trainable_parameter():
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 3))
    model[0].requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    model(torch.randn(4, 6)).sum().backward()
    optimizer.step()
    trainable = 5 * 3 + 3
    assert optimizer_state_bytes(optimizer) == 8 * trainable == training_memory(0, trainable).optimizer


def test_files_bytes_counts_only_matching_files(tmp_path):
    (tmp_path / "adapter_model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "adapter_config.json").write_text("{}")
    assert files_bytes(tmp_path) == 100


def test_train_adapter_moves_only_the_adapter_and_repeats_itself():
    from course_utils.adapters import train_adapter
    from course_utils.checkpoints import load_tiny_tokenizer
    from course_utils.models import build_tiny_model

    tokenizer = load_tiny_tokenizer()
    recipe = dataclasses.replace(LORA_RECIPE, steps=2, batch_size=4)
    rows = new_task_rows()[:8]
    runs = []
    for _ in range(2):
        model = build_tiny_model(tokenizer, "w16", seed=0)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        trainer = train_adapter(model, tokenizer, rows, recipe, lora_config(recipe), quiet=True)
        after = trainer.model.state_dict()
        frozen = {k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in after.items()}
        assert all(torch.equal(before[k], frozen[k]) for k in before), "the base weights must not move"
        lora = {k: v for k, v in after.items() if "lora_B" in k}
        assert lora and all(v.abs().sum() > 0 for v in lora.values()), "B starts at zero and must have moved"
        runs.append(after)
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0]), "same recipe, same adapter"
    from course_utils.adapters import StepTimer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    kinds = {type(c) for c in trainer.callback_handler.callbacks}
    assert not kinds & {PrinterCallback, ProgressCallback}, "quiet: neither a progress bar nor log lines"
    timer = next(c for c in trainer.callback_handler.callbacks if isinstance(c, StepTimer))
    assert len(timer.ends) == 1 + recipe.steps  # the start, then one mark per optimizer step


def test_step_timer_leaves_out_the_first_steps_and_takes_the_median():
    from types import SimpleNamespace

    from course_utils.adapters import StepTimer, seconds_per_step

    timer = StepTimer()
    timer.ends = [0.0, 5.0, 5.1, 5.3, 5.4, 5.5, 9.5]  # a slow first step, then 0.1, 0.2, 0.1, 0.1 and one outlier
    assert timer.seconds_per_step(skip=1) == pytest.approx(0.1)
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[object(), timer]))
    assert seconds_per_step(trainer, skip=1) == timer.seconds_per_step(skip=1)
    with pytest.raises(ValueError, match="more than 6 timed steps"):
        timer.seconds_per_step(skip=6)
    with pytest.raises(ValueError, match="without a StepTimer"):
        seconds_per_step(SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[])))
