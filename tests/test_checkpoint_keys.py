"""Each cached checkpoint's key records what changes it: recipe, data, precision."""

import dataclasses

from course_utils.checkpoints import BASE_RECIPE, tiny_base_key
from course_utils.sft import SFT_RECIPE, tiny_sft_key


def test_changing_a_pretraining_field_changes_the_key():
    base = tiny_base_key()
    assert tiny_base_key(BASE_RECIPE) == base  # deterministic
    for recipe in [
        dataclasses.replace(BASE_RECIPE, init_seed=1),
        dataclasses.replace(BASE_RECIPE, shape="w64"),
        dataclasses.replace(BASE_RECIPE, train=dataclasses.replace(BASE_RECIPE.train, lr=1e-3)),
        dataclasses.replace(BASE_RECIPE, train=dataclasses.replace(BASE_RECIPE.train, precision="bf16")),
    ]:
        assert tiny_base_key(recipe) != base, recipe


def test_changing_an_sft_field_changes_the_key():
    key = tiny_sft_key()
    for field, value in [("lr", 1e-3), ("epochs", 3.0), ("seed", 1), ("precision", "bf16")]:
        assert tiny_sft_key(dataclasses.replace(SFT_RECIPE, **{field: value})) != key, field


def test_the_default_recipes_train_in_fp32():
    assert BASE_RECIPE.train.precision == "fp32" and SFT_RECIPE.precision == "fp32"
