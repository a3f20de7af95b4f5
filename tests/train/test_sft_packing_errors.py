"""``data.packing=true`` on a model the lean forward does not cover is a one-line R1Error naming the real cause
(LoRA dropout, a model type) and what to change, before the run directory is made.

Run: ``python -m pytest tests/train/test_sft_packing_errors.py -q``
"""

from __future__ import annotations

import pytest

from r1.config import SFTConfig, load_config
from r1.errors import R1Error
from r1.train.sft import SFTTrainer


def _cfg(tmp_path, *overrides):
    return load_config(SFTConfig, None, [
        "model.path=tiny-qwen2", "data.task.name=addition", "data.task.template=plain",
        "data.task.params={digits: 2, num_train: 32, num_test: 8}", "data.num_examples=16",
        "data.examples_per_step=8", f"run.out_dir={tmp_path}", "run.name=p", "run.steps=1", "run.progress=false",
        "run.threads=1", "data.packing=true", *overrides])


def test_packing_with_lora_dropout_names_the_dropout_not_the_model(tmp_path):
    with pytest.raises(R1Error) as e:
        SFTTrainer(_cfg(tmp_path, "model.lora={r: 4, dropout: 0.1}"))
    msg = str(e.value)
    assert "LoRA dropout" in msg and "model.lora.dropout=0 or data.packing=false" in msg, msg
    assert "model_type" not in msg and "\n" not in msg
    assert not (tmp_path / "p").exists()  # nothing written
    SFTTrainer(_cfg(tmp_path, "model.lora={r: 4, dropout: 0.0}"))  # without dropout, packing is fine


def test_packing_on_an_uncovered_model_type_names_it(tmp_path):
    import transformers

    from r1.models import build_preset

    _, tok = build_preset("tiny-qwen2")
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2))
    gpt2.save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    with pytest.raises(R1Error, match=r"model_type 'gpt2'.*; use data.packing=false$"):
        SFTTrainer(_cfg(tmp_path, f"model.path={tmp_path / 'gpt2'}"))
    assert not (tmp_path / "p").exists()
