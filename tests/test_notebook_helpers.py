"""The functions the lessons define and assert, tested in seconds by importing them from the notebooks' cells."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from course_utils.tokenizer import train_bpe_tokenizer
from notebook_defs import import_definitions

week1 = import_definitions("01_pretraining.ipynb")
week2 = import_definitions("02_instruction_tuning.ipynb")


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(["What is 3 plus 4? 7.", "Alma lives in Dunmere."] * 50, vocab_size=300)


def test_training_flops_is_six_n_d():
    assert week1.training_flops(7e9, 2e12) == 6 * 7e9 * 2e12


def test_mask_for_mlm_predicts_15_percent_and_masks_80_percent_of_those():
    ids = torch.randint(5, 100, (64, 128))
    corrupted, labels = week1.mask_for_mlm(ids, mask_id=1, vocab=100, generator=torch.Generator().manual_seed(0))
    predicted = labels != -100
    assert abs(predicted.float().mean().item() - 0.15) < 0.01
    assert torch.equal(labels[predicted], ids[predicted])  # labels are the original tokens
    assert abs((corrupted[predicted] == 1).float().mean().item() - 0.8) < 0.03
    assert torch.equal(corrupted[~predicted], ids[~predicted])  # the rest is untouched


def test_info_nce_is_cross_entropy_on_the_similarity_matrix():
    za, zb = torch.randn(8, 16), torch.randn(8, 16)
    library = F.cross_entropy(F.normalize(za, dim=-1) @ F.normalize(zb, dim=-1).T / 0.05, torch.arange(8))
    assert torch.allclose(week1.info_nce(za, zb), library, atol=1e-6)
    assert week1.info_nce(za, za).item() < week1.info_nce(za, zb).item()  # matching pairs: lower loss


def test_fit_scaling_law_recovers_a_known_curve():
    params = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    a, alpha, c, identified = week1.fit_scaling_law(params, 20 * params**-0.3 + 0.5)
    assert identified and math.isclose(c, 0.5, abs_tol=0.05)
    assert math.isclose(alpha, 0.3, rel_tol=0.05)
    assert math.isclose(a * 1e4**-alpha + c, 20 * 1e4**-0.3 + 0.5, rel_tol=0.01)


def test_labels_by_hand_train_only_the_answer(tokenizer):
    chat = [{"role": "user", "content": "What is 3 plus 4?"}, {"role": "assistant", "content": "7"}]
    ids, labels = week2.labels_by_hand(chat, tokenizer)
    assert len(ids) == len(labels)
    assert tokenizer.decode([y for y in labels if y != -100]) == " 7<|im_end|>"


def test_curation_filters():
    assert week2.is_bad({"prompt": "Say hi", "response": ""})
    assert week2.is_bad({"prompt": "Say hi", "response": "say hi."})  # echoes the prompt
    assert not week2.is_bad({"prompt": "What is 2 plus 2?", "response": "4"})
    reject = week2.drop_repeats(lambda r: r["prompt"])
    assert [reject({"prompt": p}) for p in ["a", "b", "a"]] == [False, False, True]


def test_pad_fraction_counts_masked_positions():
    batch = {"input_ids": torch.zeros(2, 4), "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])}
    assert week2.pad_fraction([batch]) == 0.25
    assert week2.pad_fraction([{"input_ids": torch.zeros(1, 8)}]) == 0.0  # packed rows: no attention_mask


def test_natural_instruction_prompt_ends_with_the_new_input():
    task = {"definition": "Add.", "things_to_avoid": "Words.", "negative_examples": [],
            "positive_examples": [{"input": "1 plus 1?", "output": "2", "explanation": "sum"}]}  # fmt: skip
    prompt = week2.render_natural_instruction(task, "3 plus 9?")
    assert prompt.startswith("Definition: Add.") and prompt.endswith("Input: 3 plus 9?\nOutput:")


def test_fit_scaling_law_says_when_c_is_not_identified():
    params = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    *_, identified = week1.fit_scaling_law(params, 20 * params**-0.3)  # a pure power law: no floor to find
    assert not identified
