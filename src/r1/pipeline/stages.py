"""The commands a pipeline stage can run: each is one of ``r1``'s commands with its own config schema.

A :class:`StageKind` says how to build the command's config, run it, resume it, and where its output lies: a
training stage's output is its run directory (a model path: ``r1.models`` and the ``reward_model`` reward load a run
directory's newest checkpoint),
``generate``'s is its ``data.jsonl`` (what ``r1 sft`` reads), ``eval``'s is its run directory (``results.json``).
Registered in :data:`STAGES`; the runner (``r1.pipeline.runner``) dispatches through it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from r1.registry import Registry


@dataclass(frozen=True)
class StageKind:
    schema: str
    """``"module:Class"`` of the command's config dataclass (imported when used)."""
    run: Callable[[Any, Optional[Path]], Any]
    """Run the command on a validated config; the second argument is a run directory to resume (or None)."""
    output: Callable[[Path], Path]
    """The stage's output, from its run directory."""
    resumable: Callable[[Path], bool]
    """Whether an interrupted run directory can be continued (else the stage starts over)."""
    irrelevant: tuple[str, ...] = ()
    """``run.*`` fields that do not change what the stage produces (left out of its config hash)."""
    trains: bool = False
    """A training command: an interrupted run continues from its latest checkpoint (``--resume``); otherwise a
    rerun continues from the samples on disk by itself."""
    cache_prefix: str = ""
    """Folder name prefix of a cached output (``<prefix>-<hash>``); "" = the command's name."""
    report: bool = False
    """Build the run's own ``report.html`` (``r1 report``) when the stage finishes."""

    def schema_class(self) -> type:
        import importlib

        module, _, name = self.schema.partition(":")
        return getattr(importlib.import_module(module), name)


def _train_sft(cfg, resume):
    from r1.train.sft import train_sft

    return train_sft(cfg, resume=resume)


def _train_grpo(cfg, resume):
    from r1.train.grpo import train_grpo

    return train_grpo(cfg, resume=resume)


def _train_rm(cfg, resume):
    from r1.train.rm import train_rm

    return train_rm(cfg, resume=resume)


def _generate(cfg, resume):
    from r1.generate_data import run_generate

    return run_generate(cfg)  # a rerun without overwrite continues where the samples stop


def _evaluate(cfg, resume):
    from r1.eval import evaluate

    return evaluate(cfg)  # a rerun without overwrite skips the problems already sampled


def _has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / "latest").is_file()


def _same_dir(run_dir: Path) -> Path:
    return run_dir


def _always(run_dir: Path) -> bool:
    return True


# Fields that change how a run looks, how often it saves or how many CPU threads it uses, not the model or data it
# makes (threads change only the order of float sums). The same list decides
# r1 demo's cache key for its base model (r1.pipeline.demo.pretrain_key), so the two share one cache.
TRAIN_IRRELEVANT = ("name", "out_dir", "progress", "log_every", "overwrite", "save_every", "keep_checkpoints",
                    "threads", "keep_freed_memory", "sample_every", "num_samples_shown", "wandb", "wandb_project")
# generate's workers: batch seeds make the samples the same for any number
_RUN_IRRELEVANT = ("name", "out_dir", "progress", "overwrite", "threads", "workers", "wandb", "wandb_project")

STAGES: Registry[StageKind] = Registry("pipeline stage command")


def _training(schema: str, run, **kw: Any) -> StageKind:
    return StageKind(schema, run, _same_dir, _has_checkpoint, TRAIN_IRRELEVANT, trains=True, **kw)


# a cached base model is base-<hash>: the folder r1 demo has always cached it in
STAGES.register("pretrain", _training("r1.config:SFTConfig", _train_sft, cache_prefix="base"))
STAGES.register("sft", _training("r1.config:SFTConfig", _train_sft))
STAGES.register("grpo", _training("r1.config:GRPOConfig", _train_grpo, report=True))
STAGES.register("rm", _training("r1.config:RMConfig", _train_rm))
STAGES.register("generate", StageKind("r1.config:GenerateConfig", _generate, lambda d: d / "data.jsonl", _always,
                                      _RUN_IRRELEVANT))
STAGES.register("eval", StageKind("r1.config:EvalConfig", _evaluate, _same_dir, _always, _RUN_IRRELEVANT))


def config_key(cfg: Any, irrelevant: tuple[str, ...]) -> dict:
    """The config as a plain dict without the ``run.*`` fields in ``irrelevant`` and without empty values (None,
    "", [], {}): what a stage's hash is made of. Leaving out empty values keeps every hash, and so every cached
    stage, when a new optional field whose default is empty joins a schema (a new field with any other default,
    e.g. False, changes every hash of its schema)."""
    d = dataclasses.asdict(cfg)
    for f in irrelevant:
        d.get("run", {}).pop(f, None)
    return _without_empty(d)


def _without_empty(x: Any) -> Any:
    if isinstance(x, dict):
        out = {k: _without_empty(v) for k, v in x.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(x, list):
        return [_without_empty(v) for v in x]
    return x


__all__ = ["STAGES", "StageKind", "TRAIN_IRRELEVANT", "config_key"]
