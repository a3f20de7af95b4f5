"""Model loading: ``load(spec) -> (model, tokenizer)``.

``spec`` is a local Hugging Face causal-LM directory (any architecture ``AutoModelForCausalLM`` knows, with its
tokenizer and chat template) or a tiny preset name (Qwen2 or Llama architecture, random init, the project's byte
tokenizer). Everything saves as an ordinary HF directory (config.json, model.safetensors, tokenizer files), so any
``transformers`` user can load what ``r1`` writes. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from r1.errors import R1Error


@dataclass(frozen=True)
class Preset:
    arch: str  # qwen2 | llama
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    max_position_embeddings: int = 2048


PRESETS: dict[str, Preset] = {
    # unit tests and smoke runs
    "tiny-qwen2": Preset("qwen2", 64, 2, 4, 2, 176),
    "tiny-llama": Preset("llama", 64, 2, 4, 2, 176),
    # the demo's base model size class
    "qwen2-1m": Preset("qwen2", 128, 4, 4, 2, 344),
    # the presets of the speed benchmarks against TRL (benchmarks/grpo_vs_trl.py)
    "qwen2-3m": Preset("qwen2", 256, 4, 4, 2, 688),
    "qwen2-23m": Preset("qwen2", 512, 8, 8, 4, 1376),
}


def build_preset(name: str, seed: int = 0, **overrides):
    """A randomly initialised tiny model + the project's byte tokenizer."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from r1.models.tokenizer import build_byte_tokenizer

    if name not in PRESETS:
        raise R1Error(f"unknown model preset {name!r}; valid: {', '.join(PRESETS)} (or a local HF model directory)")
    p = PRESETS[name]
    tok = build_byte_tokenizer()
    cls = {"qwen2": Qwen2Config, "llama": LlamaConfig}[p.arch]
    kwargs = dict(
        vocab_size=len(tok),
        hidden_size=p.hidden_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        intermediate_size=p.intermediate_size,
        max_position_embeddings=p.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    kwargs.update(overrides)
    config = cls(**kwargs)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, tok


def resolve_run_dir(p: Path) -> Path:
    """A run directory (with ``checkpoints/latest``) stands for its newest checkpoint."""
    marker = p / "checkpoints" / "latest"
    if p.is_dir() and not (p / "config.json").exists() and marker.is_file():
        return p / "checkpoints" / marker.read_text().strip()
    return p


def is_model_dir(path: str | Path) -> bool:
    """A directory :func:`load` reads: a Hugging Face model (``config.json``) or a LoRA checkpoint
    (``adapter_config.json``: ``r1.models.lora``)."""
    p = Path(path)
    return p.is_dir() and ((p / "config.json").is_file() or (p / "adapter_config.json").is_file())


def load(spec: str, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", seed: int = 0):
    """Load ``(model, tokenizer)`` from a local HF directory or a preset name.

    Raises :class:`R1Error` (one line) when ``spec`` is neither a preset nor a loadable model directory.
    """
    if spec in PRESETS:
        model, tok = build_preset(spec, seed=seed)
        return model.to(device=device, dtype=dtype), tok
    p = resolve_run_dir(Path(spec).expanduser())
    if not p.exists():
        raise R1Error(f"model {spec!r} is neither a preset ({', '.join(PRESETS)}) nor an existing path")
    if not is_model_dir(p):
        raise R1Error(f"{p} is not a Hugging Face model directory (no config.json)")
    if not (p / "config.json").is_file():  # a LoRA checkpoint: its merged model, or its base + the adapter
        from r1.models.lora import load_merged

        return load_merged(p, dtype=dtype, device=device, seed=seed)
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    try:
        json.loads((p / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise R1Error(f"{p / 'config.json'} is not valid JSON: {e}") from None
    tok = load_tokenizer(p)
    try:
        model = AutoModelForCausalLM.from_pretrained(p, dtype=dtype)
    except Exception as e:  # noqa: BLE001
        raise R1Error(f"cannot load a causal LM from {p}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    return model.to(device), tok


def load_tokenizer(p: Path):
    """The tokenizer saved in directory ``p``, set up for batched sampling (a pad token, left padding)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(p)
    except Exception as e:  # noqa: BLE001 - many failure types; one line for the user
        raise R1Error(f"cannot load a tokenizer from {p}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def _quiet_transformers() -> None:
    """Our own progress bars cover loading/saving; silence transformers' per-shard bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def save(model, tokenizer, path: str | Path, merge: bool = False) -> Path:
    """Save as a Hugging Face directory (safetensors). Returns the path. A peft model (LoRA) saves its adapter
    instead, and with ``merge`` the merged model in ``path/merged`` (``r1.models.lora.save_adapter``)."""
    _quiet_transformers()
    if hasattr(model, "peft_config"):
        from r1.models.lora import save_adapter

        return save_adapter(model, tokenizer, path, merge=merge)
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(p, safe_serialization=True)
    tokenizer.save_pretrained(p)
    return p


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype:
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise R1Error(f"unknown dtype {name!r}; valid: {', '.join(table)}")
    return table[name]
