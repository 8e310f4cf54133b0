"""course_utils.dpo: the recipe becomes TRL's DPOConfig, bad values are refused, the cache key follows the recipe."""

import dataclasses

import pytest
from course_utils.dpo import DPO_RECIPE, DPORecipe, dpo_config, tiny_dpo_key


def test_the_recipe_becomes_a_dpo_config(tmp_path):
    config = dpo_config(tmp_path, DPO_RECIPE)
    assert (config.beta, config.learning_rate, config.max_length) == (0.1, DPO_RECIPE.lr, DPO_RECIPE.max_length)
    assert config.loss_type == ["sigmoid", "sft"] and config.loss_weights == [1.0, DPO_RECIPE.sft_weight]
    assert not config.activation_checkpointing and not config.bf16 and not config.fp16


def test_without_the_sft_weight_it_is_the_loss_of_the_paper(tmp_path):
    config = dpo_config(tmp_path, dataclasses.replace(DPO_RECIPE, sft_weight=0.0))
    assert config.loss_type == ["sigmoid"]


@pytest.mark.parametrize("changes", [{"beta": 0.0}, {"beta": -1.0}, {"precision": "fp8"}])
def test_bad_recipes_are_refused(changes):
    with pytest.raises(ValueError):
        DPORecipe(**changes)


def test_the_cache_key_follows_the_recipe():
    assert tiny_dpo_key(dataclasses.replace(DPO_RECIPE, beta=0.5)) != tiny_dpo_key()
    assert tiny_dpo_key(dataclasses.replace(DPO_RECIPE, sft_weight=0.0)) != tiny_dpo_key()
