"""Model loading and saving. Run: ``python -m pytest tests/models -q``."""

import json

import pytest
import torch

from r1.errors import R1Error
from r1.models import PRESETS, build_preset, load, save


@pytest.mark.parametrize("preset", ["tiny-qwen2", "tiny-llama"])
def test_saved_preset_loads_with_plain_transformers(tmp_path, preset):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = build_preset(preset, seed=3)
    save(model, tok, tmp_path / "m")
    m2 = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    t2 = AutoTokenizer.from_pretrained(tmp_path / "m")
    text = "User: 12+34. Assistant: <think>46</think> <answer>46</answer> ünïcödé"
    ids = tok(text).input_ids
    assert t2(text).input_ids == ids
    assert t2.decode(ids) == text
    x = torch.tensor([ids])
    assert torch.equal(model(x).logits, m2(x).logits)
    # and through r1's own loader
    m3, t3 = load(str(tmp_path / "m"))
    assert torch.equal(m3(x).logits, model(x).logits)
    assert t3.padding_side == "left" and t3.pad_token_id is not None


def test_byte_tokenizer_roundtrips_and_has_single_token_tags():
    _, tok = build_preset("tiny-qwen2")
    assert len(tok) < 270
    for tag in ["<think>", "</think>", "<answer>", "</answer>"]:
        assert len(tok(tag, add_special_tokens=False).input_ids) == 1
    s = "tab\tnewline\n emoji 🙂 and 中文"
    assert tok.decode(tok(s).input_ids) == s
    assert tok.decode([tok.eos_token_id], skip_special_tokens=True) == ""


def test_presets_are_deterministic_per_seed():
    a, _ = build_preset("tiny-qwen2", seed=1)
    b, _ = build_preset("tiny-qwen2", seed=1)
    c, _ = build_preset("tiny-qwen2", seed=2)
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_chat_template_works_with_tiny_tokenizer():
    _, tok = build_preset("tiny-llama")
    text = tok.apply_chat_template([{"role": "user", "content": "2+2"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("Assistant:") and "2+2" in text


def test_bad_model_specs_are_one_line_errors(tmp_path):
    with pytest.raises(R1Error, match="neither a preset"):
        load("no-such-model-xyz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(R1Error, match="not a Hugging Face model directory"):
        load(str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(R1Error, match="not valid JSON"):
        load(str(bad))
    weird = tmp_path / "weird"
    weird.mkdir()
    (weird / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(R1Error, match="cannot load"):
        load(str(weird))
    assert "tiny-qwen2" in PRESETS


def test_run_directory_stands_for_its_latest_checkpoint(tmp_path):
    model, tok = build_preset("tiny-qwen2", seed=5)
    save(model, tok, tmp_path / "run" / "checkpoints" / "step_000007")
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step_000007\n")
    m2, _ = load(str(tmp_path / "run"))
    assert torch.equal(next(m2.parameters()), next(model.parameters()))


def _word_level_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", "<pad>", "<eos>", "a", "b", "carry", "the", "1", "+", "="])}
    t = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", eos_token="<eos>")


@pytest.mark.parametrize("kind", ["byte", "word_level"])
def test_token_ids_equal_the_tokenizer_call(kind, monkeypatch):
    from r1.models.tokenizer import token_ids

    tok = build_preset("tiny-qwen2")[1] if kind == "byte" else _word_level_tokenizer()
    texts = ["", "1 + 1 = <answer>2</answer>", "<think>wait, carry</think><eos>", "héllo ✓ 日本 <|eos|>", "a b zzz",
             "  spaces  \n"]
    want = tok(texts, add_special_tokens=False).input_ids
    calls = []
    call = type(tok).__call__
    monkeypatch.setattr(type(tok), "__call__", lambda self, *a, **k: calls.append(1) or call(self, *a, **k))
    assert token_ids(tok, texts) == want and not calls  # the backend's batch encoder, not the call
    # where the transformers call would change the backend's state first, it is the call that runs (same ids)
    tok.backend_tokenizer.enable_padding(pad_id=tok.pad_token_id, pad_token=tok.pad_token)
    assert token_ids(tok, texts) == want and len(calls) == 1
    tok.backend_tokenizer.no_padding()
    tok.split_special_tokens = True
    split = token_ids(tok, texts)
    assert len(calls) == 2
    assert split == token_ids(tok, texts) == tok(texts, add_special_tokens=False).input_ids
    assert split != want  # the end-of-sequence token spelled out, not one id
