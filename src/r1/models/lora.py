"""LoRA adapters on a policy, through peft: attach, read the weights a forward applies, save, load.

LoRA (Hu et al., arXiv:2106.09685): each target linear layer ``W`` gets a trainable low-rank update,
``y = W·x + (alpha / r)·B·A·dropout(x)``, with ``A`` (r × in) random and ``B`` (out × r) zero at the start, so the
adapted model starts as its base; the base weights stay frozen. peft's ``LoraConfig`` / ``get_peft_model`` inject
the adapters *into* the ``transformers`` model (its ``q_proj`` … become ``peft.tuners.lora.Linear`` wrappers around
the original ``nn.Linear``), so the trainers keep that model as *the* model: its ``transformers`` forward applies
the adapters, and r1's lean forward (``r1.models.fast``) reads each layer's weight through :func:`linear_weight`,
``W + (alpha / r)·B·A``, differentiable in ``A`` and ``B``. The ``PeftModel`` around it is kept for two things:
``disable_adapter()`` (the reference policy is the base: the same weights with the adapters off, no second copy)
and ``save_pretrained`` (the adapter files).

A checkpoint of a LoRA run (``save_adapter``) is a peft adapter directory: ``adapter_config.json`` +
``adapter_model.safetensors`` + the tokenizer (+ ``trainer_state.pt``, written by the trainer), and, with
``model.lora.merge``, ``merged/``: the merged model as a plain Hugging Face directory. ``adapter_config.json`` names
the base by absolute path (a preset base is saved once as ``<run>/base_model``), so ``PeftModel.from_pretrained(
AutoModelForCausalLM.from_pretrained(base), ckpt)`` and ``AutoPeftModelForCausalLM.from_pretrained(ckpt)`` load
it; ``r1.models.load`` (``r1 eval``, ``r1 generate``, a pipeline stage's output) reads ``merged/`` when present,
else the base + the adapter, merged.

Left out: DoRA, rsLoRA and the other peft variants; adapters on embeddings or the output head (a tied head would
carry its update into the input embeddings when merged); several adapters at once.
"""

from __future__ import annotations

import json
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from r1.errors import R1Error

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MERGED = "merged"
"""A LoRA checkpoint's sub-folder holding the merged model (``model.lora.merge``)."""
BASE_MODEL = "base_model"
"""A LoRA run's copy of its preset base (presets have no directory an adapter could name)."""


def _peft_layer(module) -> bool:
    """Is ``module`` one of peft's tuner layers? (Without peft imported, no module can be one.)"""
    if "peft" not in sys.modules:
        return False
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def _lora_linear(module) -> bool:
    if not _peft_layer(module):
        return False
    from peft.tuners.lora import Linear

    return isinstance(module, Linear)


def has_adapters(model) -> bool:
    """Does ``model`` hold peft layers (a LoRA-wrapped policy)?"""
    return model is not None and any(_peft_layer(m) for m in model.modules())


def linear_weight(module) -> tuple[Tensor, Tensor | None]:
    """The weight and bias ``module``'s forward applies: an ``nn.Linear``'s own; a peft LoRA layer's base weight plus
    ``scaling · B·A`` of each active adapter (differentiable in ``A`` and ``B``), or the base weight alone while its
    adapters are disabled (``disable_adapter()``) or merged into it. LoRA dropout is not applied: exact for a
    forward without dropout (evaluation mode, or ``lora.dropout`` 0); ``lora_reason`` keeps other cases off it."""
    if not _lora_linear(module):
        return module.weight, module.bias
    base = module.get_base_layer()
    w = base.weight
    if not module.disable_adapters and not module.merged:
        for name in module.active_adapters:
            if name in module.lora_A:
                w = w + module.get_delta_weight(name)
    return w, base.bias


def lora_reason(model, training: bool = False) -> str | None:
    """None when :func:`linear_weight` gives what ``model``'s peft layers compute (plain LoRA on linear layers; in a
    ``training`` pass also no LoRA dropout); else why not, for the lean forward's callers to fall back."""
    for name, m in model.named_modules():
        if not _peft_layer(m):
            continue
        if not _lora_linear(m):
            return f"a {type(m).__name__} adapter at {name} (only LoRA on linear layers is covered)"
        adapters = [a for a in m.active_adapters if a in m.lora_A]
        if any(m.use_dora.get(a) for a in adapters):
            return f"DoRA at {name}"
        if training and any(not isinstance(m.lora_dropout[a], torch.nn.Identity) for a in adapters):
            return "LoRA dropout in a training pass"
    return None


def linear_names(model) -> list[str]:
    """The names LoRA may target: the last part of every ``nn.Linear``'s name, the output head left out."""
    head = model.get_output_embeddings()
    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and m is not head})


def attach_lora(model, r: int, alpha: float, dropout: float, target_modules: list[str]):
    """Inject LoRA adapters into ``model`` (in place; its own weights frozen) and return the ``PeftModel`` around it.

    Raises R1Error (one line) when a target names no linear layer of ``model``, listing the valid names."""
    valid = linear_names(model)
    unknown = [t for t in target_modules if t not in valid]
    if unknown:
        raise R1Error(
            f"model.lora.target_modules: {', '.join(map(repr, unknown))} name(s) no linear layer of this "
            f"{model.config.model_type} model; valid: {', '.join(valid)}"
        )
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise R1Error("model.lora needs peft: pip install 'r1[lora]' (or pip install peft)") from None
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        bias="none", task_type="CAUSAL_LM")
    with _quiet_peft():
        return get_peft_model(model, config)


@contextmanager
def _quiet_peft():
    """peft asks transformers a deprecated question (``is_gradient_checkpointing``): nothing for the user to do."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield


def load_policy(spec: str, lora, ckpt: Path | None, *, device, seed: int):
    """The policy a trainer trains: ``(model, tokenizer, peft_model)``. Without ``lora`` (None: adapters off) the model
    at ``spec``, or at ``ckpt`` when resuming, and no peft model. With ``lora`` (``r1.config.LoraConfig``, r > 0)
    the base at ``spec`` with adapters attached (:func:`attach_lora`; ``model`` is the base with peft's layers
    inside), and when resuming the adapter weights of ``ckpt``. R1Error when ``ckpt`` was trained the other way."""
    from r1.models import load

    if ckpt is not None and lora is None and is_adapter_dir(ckpt):
        raise R1Error(f"--resume: {ckpt} holds a LoRA adapter; resume with the run's model.lora settings (r > 0)")
    model, tok = load(str(ckpt) if ckpt is not None and lora is None else spec, device=device, seed=seed)
    if lora is None:
        return model, tok, None
    peft_model = attach_lora(model, lora.r, lora.alpha, lora.dropout, lora.target_modules)
    if ckpt is not None:
        load_adapter_weights(peft_model, ckpt)
    return model, tok, peft_model


def set_base_path(peft_model, tokenizer, model_spec: str, run_dir: Path, save: bool) -> Path:
    """Point the adapter's ``base_model_name_or_path`` at the base's directory, by absolute path: ``model_spec``'s
    own, or for a preset ``<run_dir>/base_model``, written here (adapters off) when ``save``. Returns it."""
    from r1.models import PRESETS, resolve_run_dir

    if model_spec in PRESETS:
        base = (Path(run_dir) / BASE_MODEL).resolve()
        if save and not (base / "config.json").is_file():
            with peft_model.disable_adapter():
                save_merged(peft_model, tokenizer, base)
    else:
        base = resolve_run_dir(Path(model_spec).expanduser()).resolve()
    for cfg in peft_model.peft_config.values():
        cfg.base_model_name_or_path = str(base)
    return base


def merged_state_dict(model) -> dict[str, Tensor]:
    """``model``'s weights under the plain architecture's names, each LoRA layer's adapter merged into its weight
    (:func:`linear_weight`); ``model`` is left as it is (peft's ``merge_and_unload`` would change it in place)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    out: dict[str, Tensor] = {}
    with torch.no_grad():
        for name, m in base.named_modules():
            if _lora_linear(m):
                w, b = linear_weight(m)
                out[f"{name}.weight"] = w.detach()
                if b is not None:
                    out[f"{name}.bias"] = b.detach()
        for key, t in base.state_dict().items():
            if ".lora_" in key or ".base_layer." in key:
                continue
            out[key] = t
    return out


def save_merged(model, tokenizer, path: str | Path) -> Path:
    """The merged model (:func:`merged_state_dict`) as a plain Hugging Face directory at ``path``."""
    from r1.models import save as save_plain

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    sd = merged_state_dict(base)
    return save_plain(_Plain(base, sd), tokenizer, path)


class _Plain:
    """``save_pretrained`` of ``model`` with the given state dict (the merged weights under the plain names)."""

    def __init__(self, model, state_dict: dict[str, Tensor]):
        self.model, self.state_dict = model, state_dict

    def save_pretrained(self, path, **kwargs):
        self.model.save_pretrained(path, state_dict=self.state_dict, **kwargs)


def save_adapter(peft_model, tokenizer, path: str | Path, merge: bool = False) -> Path:
    """A peft adapter directory at ``path`` (adapter config + weights + tokenizer) and, with ``merge``, the merged
    model in ``path/merged``."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(p, safe_serialization=True)
    tokenizer.save_pretrained(p)
    if merge:
        save_merged(peft_model, tokenizer, p / MERGED)
    return p


def is_adapter_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / ADAPTER_CONFIG).is_file()


def load_adapter_weights(peft_model, ckpt: str | Path) -> None:
    """Load a checkpoint's adapter weights into ``peft_model`` (in place: an optimizer over them stays valid).
    R1Error when the checkpoint's adapter does not match this one (another rank or other target layers)."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    f = Path(ckpt) / ADAPTER_WEIGHTS
    if not f.is_file():
        raise R1Error(f"{ckpt} holds no LoRA adapter ({ADAPTER_WEIGHTS}); it was not trained with model.lora.r > 0")
    saved = load_file(f)
    mine = get_peft_model_state_dict(peft_model)
    if {k: tuple(v.shape) for k, v in saved.items()} != {k: tuple(v.shape) for k, v in mine.items()}:
        raise R1Error(f"the LoRA adapter in {ckpt} does not match model.lora (its rank or target_modules differ)")
    set_peft_model_state_dict(peft_model, saved)


def load_merged(path: Path, *, dtype: torch.dtype, device, seed: int):
    """``(model, tokenizer)`` of a LoRA checkpoint: its ``merged/`` when present, else its base (the directory, or
    preset, that ``adapter_config.json`` names) with the adapter merged in; a plain ``transformers`` model."""
    from r1.models import is_model_dir, load

    if is_model_dir(path / MERGED):
        return load(str(path / MERGED), dtype=dtype, device=device, seed=seed)
    try:
        base_spec = json.loads((path / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise R1Error(f"{path / ADAPTER_CONFIG}: no base_model_name_or_path ({type(e).__name__})") from None
    if not base_spec:
        raise R1Error(f"{path / ADAPTER_CONFIG}: base_model_name_or_path is empty; load the base yourself")
    base_spec = _moved_base(path, str(base_spec))
    model, _ = load(base_spec, dtype=dtype, device=device, seed=seed)
    try:
        from peft import PeftModel
    except ImportError:
        raise R1Error(f"{path} is a LoRA adapter: loading it needs peft (pip install 'r1[lora]')") from None
    with _quiet_peft():
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    from r1.models import load_tokenizer

    return model, load_tokenizer(path)


def _moved_base(ckpt: Path, base_spec: str) -> str:
    """The base a checkpoint's adapter names, or where it went: a run directory moved (or copied) as a whole takes its
    preset base along (``<run>/base_model``, the checkpoint being ``<run>/checkpoints/step_N``). R1Error (one line)
    when the named base is gone."""
    from r1.models import PRESETS

    if base_spec in PRESETS or Path(base_spec).expanduser().exists():
        return base_spec
    own = ckpt.resolve().parent.parent / BASE_MODEL
    if Path(base_spec).name == BASE_MODEL and (own / "config.json").is_file():
        return str(own)
    raise R1Error(f"{ckpt / ADAPTER_CONFIG}: its base {base_spec} does not exist (moved or deleted?); put it back "
                  f"there, or set base_model_name_or_path to where it is now")


__all__ = [
    "attach_lora",
    "load_policy",
    "has_adapters",
    "is_adapter_dir",
    "linear_names",
    "linear_weight",
    "load_adapter_weights",
    "load_merged",
    "lora_reason",
    "merged_state_dict",
    "save_adapter",
    "save_merged",
    "set_base_path",
]
