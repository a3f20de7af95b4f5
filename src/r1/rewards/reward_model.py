"""The ``reward_model`` reward: a trained reward model's score of a completion (DeepSeek-R1, arXiv 2501.12948,
section 2.3.4: all-scenario RL judges general data with reward models).

A reward model (RM) is a Hugging Face sequence-classification model with one label (``r1 rm`` trains one; any
``AutoModelForSequenceClassification`` directory with ``num_labels=1`` works). Its input is the prompt and a response
joined by the RM's separator (:func:`rm_text`), tokenized as one text and cut to its last ``max_length`` tokens; the
score is the head's output at the last token. ``r1 rm`` stores the separator and length in the model's
``config.json`` (``r1_reward_model``), so training and scoring read the same text.

``span`` picks what the RM sees, as the paper does:

- ``summary`` (helpfulness): only the part after the reasoning, i.e. after the last ``separator`` (``</think>`` by
  default; the readable format's special token). A completion without it has no summary and is scored as an empty
  response (the RM sees the prompt alone), never as its reasoning.
- ``response`` (harmlessness): the whole completion, reasoning and summary.

The reward is ``scale * score + shift``. Each RM directory is loaded once per process (keyed by its path, its weights'
modification time and the device) and scored without gradients. Left out: batched scoring through the reward
interface (``fn(completion, sample)`` is called per completion; :func:`score_texts` scores a batch for callers that
have one). :func:`check_params` (also ``reward_model_reward.check_params``) says what is wrong with the params on this
machine, for config validation; until the config calls it, a bad path is a one-line error at the first call.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Optional

import torch

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.rewards.rules import DEFAULT_EOS_TEXTS

SPANS = ("summary", "response")

#: Joins prompt and response when a model's config holds no ``r1_reward_model`` settings.
DEFAULT_SEPARATOR = "\n"
#: Token limit when a model's config holds no ``r1_reward_model`` settings.
DEFAULT_MAX_LENGTH = 512


def rm_text(prompt: str, response: str, separator: str = DEFAULT_SEPARATOR) -> str:
    """The text a reward model scores: ``prompt + separator + response``."""
    return f"{prompt}{separator}{response}"


def encode_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, keeping the last ``max_length`` (the score is read at the last token); an empty text
    becomes one EOS token (the model needs a position to read)."""
    from r1.models.tokenizer import token_ids

    ids = token_ids(tokenizer, texts)
    fallback = [tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id]
    return [(row[-max_length:] if row else fallback) for row in ids]


def rm_settings(model) -> tuple[str, int]:
    """``(separator, max_length)`` stored in a reward model's config by ``r1 rm`` (defaults for other models)."""
    s = getattr(model.config, "r1_reward_model", None) or {}
    return s.get("separator", DEFAULT_SEPARATOR), int(s.get("max_length", DEFAULT_MAX_LENGTH))


def load_sequence_classifier(spec: str, *, device: str | torch.device = "cpu", seed: int = 0):
    """``(model, tokenizer)``: a one-score sequence-classification model on the backbone ``spec``.

    ``spec`` is a tiny preset (``r1.models.PRESETS``: built from its config, random init), a causal-LM directory
    (its body's weights, a new score head) or a reward-model directory (loaded as is); a run directory stands for
    its latest checkpoint. The model's ``pad_token_id`` is set (the head reads the last non-pad token of each row).
    Raises R1Error (one line) when ``spec`` is none of these.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from r1.models import PRESETS, build_preset, is_model_dir, resolve_run_dir

    if spec in PRESETS:
        lm, tok = build_preset(spec, seed=seed)
        config = lm.config
        config.num_labels = 1
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
        getattr(model, model.base_model_prefix).load_state_dict(getattr(lm, lm.base_model_prefix).state_dict())
    else:
        p = resolve_run_dir(Path(spec).expanduser())
        if not p.exists():
            raise R1Error(f"model {spec!r} is neither a preset ({', '.join(PRESETS)}) nor an existing path")
        if not is_model_dir(p):
            raise R1Error(f"{p} is not a Hugging Face model directory (no config.json)")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "score.weight newly initialized" is the point of loading a causal LM here
        try:
            tok = AutoTokenizer.from_pretrained(p)
            model = AutoModelForSequenceClassification.from_pretrained(p, num_labels=1, dtype=torch.float32)
        except Exception as e:  # noqa: BLE001 - many failure types (bad JSON, unknown architecture); one line
            raise R1Error(
                f"cannot load {p} as a sequence-classification model: {type(e).__name__}: {str(e).splitlines()[0]}"
            ) from None
        finally:
            hf_logging.set_verbosity(verbosity)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    return model.to(device), tok


@torch.no_grad()
def score_ids(model, rows: list[list[int]], pad_id: int, rows_per_batch: int = 64) -> torch.Tensor:
    """(N,) float32 scores of token rows (right-padded in batches of ``rows_per_batch``)."""
    from r1.data.batching import right_pad

    device = next(model.parameters()).device
    out = []
    for s in range(0, len(rows), rows_per_batch):
        chunk = rows[s : s + rows_per_batch]
        input_ids = right_pad(chunk, pad_id, torch.long).to(device)  # (b, L)
        attn = right_pad([[1] * len(r) for r in chunk], 0, torch.long).to(device)  # (b, L)
        out.append(model(input_ids=input_ids, attention_mask=attn, use_cache=False).logits[:, 0].float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, device: str):
    model, tok = load_sequence_classifier(path, device=device)
    return model.eval(), tok


def load_reward_model(path: str | Path, device: str = "cpu"):
    """``(model, tokenizer)`` of the RM at ``path``, loaded once per process (reloaded when its weights change)."""
    from r1.models import is_model_dir, resolve_device, resolve_run_dir

    p = resolve_run_dir(Path(path).expanduser())
    if not is_model_dir(p):
        raise R1Error(f"reward_model: path {str(path)!r} is not a reward-model directory (no config.json)")
    try:
        archs = json.loads((p / "config.json").read_text()).get("architectures") or []
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        archs = []  # the loader says what is wrong with the file
    if archs and not all(a.endswith("ForSequenceClassification") for a in archs):
        # a causal LM would load with a fresh, random score head: a reward of noise
        raise R1Error(f"reward_model: {p} holds a {', '.join(archs)}, not a reward model (a sequence classifier); "
                      "train one with r1 rm")
    weights = [w for w in (p / "model.safetensors", p / "config.json") if w.is_file()]
    return _load_cached(str(p.resolve()), weights[0].stat().st_mtime_ns, str(resolve_device(device)))


def score_texts(path: str | Path, prompts: list[str], responses: list[str], *, device: str = "cpu") -> list[float]:
    """The RM at ``path``'s scores of ``(prompt, response)`` pairs, in batches."""
    model, tok = load_reward_model(path, device)
    separator, max_length = rm_settings(model)
    rows = encode_texts(tok, [rm_text(p, r, separator) for p, r in zip(prompts, responses)], max_length)
    return score_ids(model, rows, tok.pad_token_id).tolist()


def select_span(completion: str, span: str, separator: str = "</think>") -> str:
    """The part of ``completion`` an RM judges: ``response`` = all of it, ``summary`` = what follows the last
    ``separator`` ("" when there is none); a trailing EOS text and surrounding whitespace are dropped.

    Examples: ``select_span("<think>2+2=4</think> It is 4.", "summary")`` → ``"It is 4."``;
    ``select_span("<think>unfinished", "summary")`` → ``""``; with ``"response"`` → ``"<think>unfinished"``.
    """
    if span not in SPANS:
        raise R1Error(f"reward_model: unknown span {span!r}; valid: {', '.join(SPANS)}")
    text = completion.strip()
    for eos in DEFAULT_EOS_TEXTS:
        if text.endswith(eos):
            text = text[: -len(eos)].rstrip()
            break
    if span == "response":
        return text
    if not separator:
        raise R1Error("reward_model: span=summary needs a non-empty separator")
    at = text.rfind(separator)
    return "" if at < 0 else text[at + len(separator) :].strip()


def reward_model_reward(
    completion: str, sample: Sample, *, task=None, path: Optional[str] = None, span: str = "summary",
    separator: str = "</think>", scale: float = 1.0, shift: float = 0.0, device: str = "cpu",
) -> float:
    """``scale * RM(sample.problem, span of completion) + shift``.

    Args:
        path: the RM directory (``r1 rm``'s run directory or one of its checkpoints; any one-label
            ``AutoModelForSequenceClassification`` directory).
        span: ``summary`` (helpfulness: after the reasoning) | ``response`` (harmlessness: everything).
        separator: ends the reasoning (``</think>``, or the readable format's special token).
        scale, shift: affine map of the raw score (e.g. ``1/std`` and ``-mean/std`` of the RM's scores).
        device: where the RM runs (cpu | auto | cuda | cuda:N).
    """
    if not path:
        raise R1Error("reward 'reward_model' needs params.path: the reward-model directory (r1 rm's run directory)")
    text = select_span(completion, span, separator)
    (score,) = score_texts(path, [sample.problem], [text], device=device)
    return scale * score + shift


def check_params(params: dict, environment: bool = False):
    """What is wrong with a ``reward_model`` reward's params, as ``(param, value, what)`` triples, for config
    validation (so a bad RM fails before a GRPO or eval run directory is made): in the values alone (an unknown
    ``span``, a blank ``separator``), or with ``environment`` on this machine (a missing or unloadable ``path``; a
    shipped config may leave the path to its user)."""
    if not environment:
        span = params.get("span", "summary")
        if span not in SPANS:
            yield "span", span, f"unknown span; valid: {', '.join(SPANS)}"
        sep = params.get("separator", "</think>")
        if not isinstance(sep, str) or not sep.strip():
            yield "separator", sep, "must be a non-blank string (the text that ends the reasoning)"
        return
    path = params.get("path")
    if not path:
        yield "path", path, "needs the reward-model directory (r1 rm's run directory)"
        return
    try:
        load_reward_model(path, params.get("device", "cpu"))
    except R1Error as e:
        yield "path", path, str(e).removeprefix("reward_model: ")


reward_model_reward.check_params = check_params  # type: ignore[attr-defined]


__all__ = [
    "SPANS", "check_params", "encode_texts", "load_reward_model", "load_sequence_classifier", "reward_model_reward", "rm_settings",
    "rm_text", "score_ids", "score_texts", "select_span",
]
