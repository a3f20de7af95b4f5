"""The project's own byte-level tokenizer for tiny models.

256 byte symbols (every UTF-8 string round-trips) + a few special tokens, built with ``tokenizers`` (a BPE model with
no merges and the byte-level pre-tokenizer/decoder), wrapped as a ``PreTrainedTokenizerFast`` so it saves and loads
as an ordinary Hugging Face tokenizer. The R1 tags are single added tokens so tiny models spend no steps spelling them.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]

# A minimal chat template so "template: chat" works with tiny models too.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: ids 0-255 are bytes (via the GPT-2 byte-to-unicode map), then specials and tags."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # 256 printable stand-ins for the bytes
    byte_to_unicode = _bytes_to_unicode()
    vocab = {byte_to_unicode[b]: b for b in range(256)}
    assert set(vocab) == set(alphabet)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.add_tokens(TAGS)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """``tokenizer(texts, add_special_tokens=False).input_ids``, faster for many texts.

    Why: for a corpus (the demo's 64,000 pretraining examples are 128,000 texts) the ``transformers`` call spends
    most of its time wrapping each ``tokenizers.Encoding`` into Python lists with offsets and masks (~3 s of the
    demo's pretraining stage); ``tokenizers``' ``encode_batch_fast`` returns the ids without offsets (~0.3 s). Taken
    only where the call would reach the backend unchanged: a fast tokenizer whose backend has no padding or
    truncation set and the same special-token splitting the call would set; otherwise (and for a slow tokenizer)
    the ``transformers`` call itself. ``tests/models/test_models.py`` checks both give the same ids."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    fast = getattr(backend, "encode_batch_fast", None)
    if (
        fast is None
        or backend.padding is not None
        or backend.truncation is not None
        or backend.encode_special_tokens != bool(getattr(tokenizer, "split_special_tokens", False))
    ):
        return tokenizer(list(texts), add_special_tokens=False).input_ids
    return [e.ids for e in fast(list(texts), add_special_tokens=False)]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode map (the one ``ByteLevel`` uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))
