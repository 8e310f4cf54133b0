"""The tiny model and tokenizer, the profile checks and the measurement helpers."""

import math

import pytest
import torch
from course_utils.data import pack_texts
from course_utils.env import check_profile
from course_utils.measure import measure, write_metrics
from course_utils.metrics import evaluate_loss, exact_match, normalize_answer, pick_choice
from course_utils.models import build_tiny_model, load_model, load_tokenizer, tiny_llama_config
from course_utils.tokenizer import train_bpe_tokenizer
from course_utils.training import TrainConfig, train_causal_lm

TEXTS = ["Alma lives in Dunmere.", "3 + 4 = 7.", "town,day,apples\nDunmere,3,12"] * 50


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXTS, vocab_size=300)


def test_bad_profile_lists_the_choices():
    assert check_profile("tiny") == "tiny"
    with pytest.raises(ValueError, match=r"one of \('tiny', 'small'\), found 'huge'"):
        check_profile("huge")


def test_tokenizer_round_trips_text_numbers_and_tables(tokenizer):
    for text in TEXTS[:3]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_chat_template_marks_only_the_assistant(tokenizer):
    chat = [{"role": "user", "content": "What is 3 plus 4?"}, {"role": "assistant", "content": "7"}]
    out = tokenizer.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tokenizer.decode(trained) == " 7<|im_end|>"


def test_tiny_model_is_a_real_llama_that_saves_and_reloads(tokenizer, tmp_path):
    model = build_tiny_model(tokenizer, "w32")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tiny_llama_config(tokenizer).vocab_size == len(tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    again = load_model(tmp_path)
    assert load_tokenizer(tmp_path)("Alma")["input_ids"] == tokenizer("Alma")["input_ids"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="tiny shape must be one of"):
        build_tiny_model(tokenizer, "huge")


def test_training_changes_parameters_and_lowers_loss(tokenizer):
    model = build_tiny_model(tokenizer, "w32")
    blocks = pack_texts(TEXTS, tokenizer, block_size=16)
    before = evaluate_loss(model, blocks)
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    history = train_causal_lm(model, blocks, TrainConfig(steps=30, batch_size=8, eval_every=0), progress=False)
    assert all(not torch.equal(snapshot[n], p) for n, p in model.named_parameters())
    assert evaluate_loss(model, blocks) < before - 1.0
    assert history["tokens_per_s"] > 0 and len(history["train_loss"]) == 30


def test_pick_choice_and_exact_match(tokenizer):
    model = build_tiny_model(tokenizer, "w32")
    assert pick_choice(model, tokenizer, "Alma lives in", ["Dunmere", "Ashford"]) in ("Dunmere", "Ashford")
    assert normalize_answer("  The Cat. ") == "the cat"
    assert exact_match(["7", "8 "], ["7.", "9"]) == 0.5
    with pytest.raises(ValueError, match="as many predictions as references"):
        exact_match(["7"], [])


def test_measure_and_metrics_file(tmp_path):
    with measure("block", show=False) as m:
        torch.zeros(2_000_000).sum()
    assert m.wall_s > 0 and m.peak_mem_bytes > 0
    path = write_metrics(tmp_path, {"loss": torch.tensor(1.5), "ok": True, "xs": [1, 2]})
    import json

    assert json.loads(path.read_text()) == {"loss": 1.5, "ok": True, "xs": [1, 2]}
    assert math.isfinite(m.wall_s)
