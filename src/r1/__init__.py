"""r1: an open implementation of the DeepSeek-R1 system (arXiv 2501.12948).

Small public API; everything heavy is imported lazily so ``import r1`` stays cheap and CPU-only.
"""

__version__ = "0.1.0"

from r1.errors import R1Error

__all__ = ["R1Error", "__version__", "load_model", "train_grpo"]


def load_model(spec, **kwargs):
    """Load ``(model, tokenizer)`` from a local HF directory or a tiny preset name. See :func:`r1.models.load`."""
    from r1.models import load

    return load(spec, **kwargs)


def train_grpo(cfg, **kwargs):
    """Run GRPO with a :class:`r1.train.grpo.GRPOConfig`. See :func:`r1.train.grpo.train_grpo`."""
    from r1.train.grpo import train_grpo as _train

    return _train(cfg, **kwargs)
