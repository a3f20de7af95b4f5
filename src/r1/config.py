"""Typed configs: dataclass schemas (the schema) + YAML files (the instance) + dotted overrides ``a.b=c``.

Built on OmegaConf structured configs. Unknown keys and mistyped values are :class:`R1Error` with one line that names
the key and, for unknown keys, the valid ones. Every field has a type, a default and a docstring line below it.

A field's allowed values sit next to it (``lr: float = checked(1e-6, gt=0)``: a range, a list of choices, a registry
whose names are valid, a file or device that must exist). :func:`validate` walks a whole config and raises the first
bad value as one line naming the key, the value and what is allowed; :func:`load_config` runs it on the schema, and
every command runs it again with the machine's files and devices before it writes or deletes anything. Left out:
checks that need the model or the data loaded (a task's split, a tokenizer's chat template): the commands make them
before the run directory is touched.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Type, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from r1.errors import R1Error

C = TypeVar("C")


# ----------------------------------------------------------------------------------------------- allowed values
@dataclass(frozen=True)
class Check:
    """What a field's value must be; kept in the field's metadata by :func:`checked`, enforced by :func:`validate`.

    Ranges (``ge``/``gt``/``le``/``lt``) apply to a number or to each item of a list; a float must also be finite
    unless ``finite=False`` (NaN is never allowed). ``test`` and ``env`` return what is wrong with a value (or None): ``test`` looks at the value alone,
    ``env`` at this machine (files, devices) and is skipped when a config is only parsed (a shipped YAML may name a
    model that a previous stage makes)."""

    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    length: Optional[int] = None
    """Lists: the exact number of items."""
    finite: bool = True
    choices: tuple = ()
    registry: str = ""
    """``"module:NAME"`` of an :class:`r1.registry.Registry` whose names are the valid values (imported lazily)."""
    test: Optional[Callable[[Any], Optional[str]]] = None
    env: Optional[Callable[[Any], Optional[str]]] = None

    def bounds(self) -> str:
        limits = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        return " and ".join(f"{op} {v:g}" if isinstance(v, float) else f"{op} {v}" for op, v in limits if v is not None)

    def in_range(self, x: Any) -> bool:
        # written as "not (x >= ge)" so that NaN, which compares False with everything, is out of range
        return not (
            (self.ge is not None and not x >= self.ge) or (self.gt is not None and not x > self.gt)
            or (self.le is not None and not x <= self.le) or (self.lt is not None and not x < self.lt)
        )


def checked(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **check: Any) -> Any:
    """A dataclass field with a default (or default ``factory``) and the :class:`Check` its values must pass."""
    return field(default=default, default_factory=factory, metadata={"check": Check(**check)})


def _run_name(name: str) -> Optional[str]:
    # the run directory is <out_dir>/<name>; "", "." or ".." would make it out_dir itself or a folder above it
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or re.search(r"[\x00-\x1f]", name):
        return "must be a relative folder name without '.', '..', empty parts or control characters"
    return None


def _device_name(name: str) -> Optional[str]:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        return "unknown device; valid: auto, cpu, cuda, cuda:N"
    return None


def _device_here(name: str) -> Optional[str]:
    if not name.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return "CUDA is not available on this machine; use auto or cpu"
    index = int(name.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        return f"this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


def _model_here(spec: str) -> Optional[str]:
    from r1.models import PRESETS, is_model_dir, resolve_run_dir

    if spec in PRESETS:
        return None
    p = resolve_run_dir(Path(spec).expanduser())
    if not p.exists():
        return f"neither a preset ({', '.join(PRESETS)}) nor an existing path"
    if not is_model_dir(p):
        return f"{p} is not a Hugging Face model directory (no config.json)"
    return None


def _file_here(path: Optional[str]) -> Optional[str]:
    # a data path: a JSONL or Parquet file, or a Hugging Face datasets directory (r1.data.readers)
    from r1.data.readers import data_path_problem

    return data_path_problem(path)


# ----------------------------------------------------------------------------------------------- shared components
@dataclass
class ModelConfig:
    path: str = checked("tiny-qwen2", env=_model_here)
    """A local Hugging Face causal-LM directory, or a tiny preset name (see ``r1.models.PRESETS``)."""
    dtype: str = checked("fp32", choices=("fp32", "bf16", "fp16"))
    """Compute dtype: fp32 | bf16 (bf16 = autocast; master weights and optimizer state stay fp32)."""
    device: str = checked("auto", test=_device_name, env=_device_here)
    """auto (cuda if available, else cpu) | cpu | cuda | cuda:N; cuda must be available on this machine."""


def _module_names(names: List[str]) -> Optional[str]:
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        return "give a non-empty list of linear layer names (e.g. [q_proj, v_proj])"
    return None


@dataclass
class LoraConfig:
    """LoRA adapters (Hu et al., arXiv:2106.09685, through peft): only low-rank updates ``(alpha / r)·B·A`` of the
    target layers train; the reference policy is the base (adapters off). See ``docs/lora.md``."""

    r: int = checked(0, ge=0)
    """Rank of the adapters; 0 = off (every weight trains)."""
    alpha: float = checked(16.0, gt=0)
    """Scale numerator: a layer computes ``W·x + (alpha / r)·B·A·x``."""
    dropout: float = checked(0.0, ge=0, lt=1)
    """Dropout on the adapters' input while training; > 0 makes the GRPO train pass take the transformers forward."""
    target_modules: List[str] = checked(
        factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        test=_module_names,
    )
    """Names of the linear layers that get adapters (the last part of a module's name; checked against the model)."""
    merge: bool = False
    """Checkpoints also hold the merged model as a plain Hugging Face directory (``<checkpoint>/merged``)."""


@dataclass
class TrainModelConfig(ModelConfig):
    lora: Optional[LoraConfig] = None
    """LoRA adapters instead of full fine-tuning (r1 grpo and r1 sft): ``model.lora.r=8`` turns them on, the other
    fields keep their defaults; None (absent) or r=0 = off. Absent leaves the config's hash as it was."""

    def lora_on(self) -> Optional[LoraConfig]:
        """The LoRA settings when adapters are on (r > 0), else None."""
        return self.lora if self.lora is not None and self.lora.r > 0 else None


def _word_list(words: Optional[List[str]]) -> Optional[str]:
    if words is not None and (not words or not all(isinstance(w, str) and w.strip() for w in words)):
        return "give a non-empty list of words or phrases (e.g. [wait, verify]), or leave it unset"
    return None


@dataclass
class TaskConfig:
    name: str = checked("addition", registry="r1.tasks:TASKS")
    """Task registry name (``r1.tasks.TASKS``): addition, gsm8k, math500, math (any JSONL in the benchmark schema)."""
    data: Optional[str] = checked(None, env=_file_here)
    """Data of file-backed tasks: JSONL, Parquet or a datasets directory (columns renamed by ``params.fields``, e.g.
    ``{problem: question}``); None = the task's default location."""
    template: str = checked("r1_zero", registry="r1.data.templates:TEMPLATES")
    """Prompt template: r1_zero (the paper's Table 1) | chat (the tokenizer's chat template) | plain (question as is)."""
    train_split: str = "train"
    """Split the trainer draws prompts from."""
    params: Dict[str, Any] = field(default_factory=dict)
    """Task-specific parameters (e.g. ``digits`` for addition)."""
    reflection_words: Optional[List[str]] = checked(None, test=_word_list)
    """Words whose presence (whole word, any case) makes a completion count in the ``task/reflection`` rate of
    training and its evaluations; None = the task's own list (``r1.tasks.base.REFLECTION_WORDS``: wait, recheck,
    verify, let me check, double-check, mistake, ...; addition: its corpus markers)."""

    def _cross_check(self):
        yield from _task_params("params", self.name, self.params)


@dataclass
class RewardConfig:
    name: str = checked("accuracy", registry="r1.rewards:REWARDS")
    """Reward registry name (``r1.rewards.REWARDS``): accuracy | format | ..."""
    weight: float = 1.0
    """Weight of this part in the composite reward (any finite number; negative = a penalty)."""
    params: Dict[str, Any] = field(default_factory=dict)
    """Reward-specific parameters: the reward function's keyword arguments (e.g. ``partial`` for code)."""
    label: str = ""
    """This part's name in the composite and the logs (``reward/<label>``); "" = ``name``. Tells apart two parts
    with one reward (a helpfulness and a harmlessness ``reward_model``)."""
    source: str = ""
    """With the ``mixture`` task: the prompt source whose completions this part scores (the others get no value from
    it, as a reward returning None); "" = every source."""

    def _cross_check(self):
        yield from self._checked_params(environment=False)

    def _env_check(self):
        yield from self._checked_params(environment=True)

    def _checked_params(self, environment: bool):
        """The reward's own ``check_params(params, environment)`` (a reward function may carry one: with
        ``environment=False`` the problems in the values alone, e.g. a blank special token; with ``True`` those on
        this machine, e.g. an RM path that does not load), found before a run directory is made."""
        from r1.rewards import REWARDS

        check = getattr(REWARDS.get(self.name), "check_params", None) if self.name in REWARDS else None
        for param, value, what in check(dict(self.params), environment) if check else ():
            yield f"params.{param}", value, what


@dataclass
class RolloutConfig:
    engine: str = checked("native", registry="r1.rollout:ENGINES")
    """Rollout engine: native (the project's KV-cache sampler) | hf (``model.generate``, the reference)."""
    temperature: float = checked(1.0, ge=0)
    """Sampling temperature; logprobs are those of softmax(logits / temperature). 0 = greedy."""
    top_p: float = checked(1.0, gt=0, le=1)
    """Nucleus sampling mass (1.0 = off)."""
    top_k: int = checked(0, ge=0)
    """Top-k truncation (0 = off)."""
    max_new_tokens: int = checked(64, ge=1)
    """Completion length limit; a completion that hits it finishes with reason 'length'."""
    stop: List[str] = field(default_factory=list)
    """Stop strings; generation of a row ends once its text contains one (the stop string is kept)."""


@dataclass
class OptimConfig:
    lr: float = checked(1e-6, gt=0)
    """Peak learning rate (AdamW). A finite rate that is far too high (1e3) passes validation: the divergence guard
    stops that run (``run.max_nonfinite_steps``)."""
    weight_decay: float = checked(0.0, ge=0)
    """AdamW decoupled weight decay."""
    betas: List[float] = checked(factory=lambda: [0.9, 0.99], length=2, ge=0, lt=1)
    """AdamW betas (β1, β2), each in [0, 1)."""
    eps: float = checked(1e-8, gt=0)
    """AdamW epsilon."""
    warmup_steps: int = checked(0, ge=0)
    """Linear warm-up steps (optimizer steps)."""
    schedule: str = checked("cosine", choices=("cosine", "constant"))
    """LR schedule after warm-up: cosine | constant."""
    min_lr_ratio: float = checked(0.0, ge=0, le=1)
    """Cosine floor as a fraction of ``lr``."""
    grad_clip: float = checked(1.0, ge=0, finite=False)
    """Max global grad norm (0 or inf = off)."""
    tokens_per_micro_batch: int = checked(8192, ge=1)
    """Gradient accumulation by token budget: a micro-batch holds at most this many (padded) tokens."""


@dataclass
class RunConfig:
    name: str = checked("grpo", test=_run_name)
    """Run name; the run directory is ``<out_dir>/<name>``."""
    out_dir: str = "runs"
    """Parent folder of run directories."""
    steps: int = checked(100, ge=1)
    """Number of training steps."""
    seed: int = checked(0, ge=0, lt=2**32)
    """Seed for python, numpy, torch and the sampler."""
    threads: int = checked(0, ge=0)
    """torch CPU threads (0 = torch default); with several workers, the threads are split between them."""
    keep_freed_memory: bool = True
    """CPU runs on Linux/glibc: keep memory freed by a step for the next one instead of returning it to the OS (no
    page faults on every step's activations; resident memory stays at its peak). ``r1.train.common``."""
    workers: int = checked(1, ge=1)
    """Data-parallel worker processes (``r1 grpo`` only): each samples and trains on 1/workers of the batch, and
    gradients are summed (torch.distributed). Under ``torchrun`` the process group comes from torchrun instead."""
    log_every: int = checked(1, ge=0)
    """Print a metrics line every N steps (metrics.jsonl gets every step; 0 = never)."""
    sample_every: int = checked(10, ge=0)
    """Write (and print) a table of sample completions every N steps (0 = never)."""
    num_samples_shown: int = checked(4, ge=0)
    """Rows in the sample-completions table."""
    save_every: int = checked(0, ge=0)
    """Checkpoint every N steps (0 = only at the end)."""
    keep_checkpoints: int = checked(2, ge=0)
    """Keep the newest N step checkpoints (the final one is always kept; 0 = keep all)."""
    max_nonfinite_steps: int = checked(3, ge=0)
    """An optimizer step whose loss or gradient norm is NaN/inf is skipped (``nonfinite_steps`` in the metrics);
    this many in a row stop the run with an error (0 = never stop). ``r1.train.optim.NonFiniteGuard``."""
    overwrite: bool = False
    """Allow a fresh run where the run directory holds an earlier run: that run is moved aside to
    ``<name>.old-<time>`` (never deleted; one line says where) once the config, model and data are known to be good.
    What a failed start leaves (no checkpoint, no metrics line) never blocks a new run, with or without this."""
    progress: bool = True
    """Show a rich progress bar."""
    wandb: bool = checked(False, env=lambda on: _package_missing("wandb", "r1[wandb]") if on else None)
    """Also log each step's metrics to Weights & Biases (``r1.train.metrics``): offline, files under
    ``<run dir>/wandb`` (``wandb sync`` uploads them), unless WANDB_MODE says otherwise. Needs the wandb package."""
    wandb_project: str = checked("r1", test=lambda v: None if v.strip() else "give a project name")
    """run.wandb: the W&B project; the W&B run is named ``run.name``."""


def _package_missing(module: str, extra: str) -> Optional[str]:
    import importlib.util
    import sys

    try:
        found = importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec: imported already, or None (imports of it fail)
        found = sys.modules.get(module) is not None
    if not found:
        return f"the {module} package is not installed: pip install '{extra}' (or pip install {module})"
    return None


# ------------------------------------------------------------------------------------------------------------ GRPO
@dataclass
class GRPOAlgoConfig:
    prompts_per_step: int = checked(8, ge=1)
    """P: prompts per step."""
    samples_per_prompt: int = checked(8, ge=1)
    """G: completions per prompt (the group)."""
    mu: int = checked(1, ge=1)
    """μ: optimisation passes over each rollout batch (GRPO's μ). μ = 1 needs no old-logprob pass."""
    num_minibatches: int = checked(1, ge=1)
    """Optimizer steps per pass: the batch is split into this many minibatches of whole groups."""
    replay_rollout: bool = True
    """μ = 1, one minibatch, native engine, fp32 or bf16: the train pass runs only the backward, over the activations the
    rollout's forward recorded while sampling (the policy has not changed since; ``r1.models.replay``). Used when
    sampling took one round and the rollout holds at most ``replay_max_tokens`` tokens."""
    replay_max_tokens: int = checked(0, ge=0)
    """Largest rollout (rows × (longest prompt + max_new_tokens)) whose forward is recorded: the record holds about
    what a train forward over that many tokens keeps for its backward. 0 = ``optim.tokens_per_micro_batch``."""
    activation_checkpointing: bool = False
    """The lean train forward keeps each decoder layer's input only and recomputes the layer in the backward (one
    more forward of the layers): a micro-batch's backward then holds ~hidden-size floats a token a layer plus one
    layer's activations (``r1.models.fast.FastLM.checkpoint_layers``). With ``optim.tokens_per_micro_batch`` it keeps
    long completions' memory flat in length (docs/performance.md, section 4). The replay is unaffected."""
    adv_norm: str = checked("group_std", registry="r1.algo.advantages:ADV_NORMS")
    """Advantage normalisation: group_std (GRPO) | batch_std | none (Dr. GRPO, arXiv:2503.20783)."""
    adv_eps: float = checked(1e-4, gt=0)
    """Added to the std before dividing."""
    loss_agg: str = checked("seq_mean_token_mean", registry="r1.algo.losses:LOSS_AGGS")
    """Loss aggregation: seq_mean_token_mean (GRPO) | token_mean (DAPO, arXiv:2503.14476) | constant (Dr. GRPO)."""
    clip_low: float = checked(0.2, ge=0, le=1)
    """ε_low: ratio lower bound 1 - ε_low."""
    clip_high: float = checked(0.2, ge=0, finite=False)
    """ε_high: ratio upper bound 1 + ε_high (DAPO clip-higher uses 0.28; inf = no upper bound)."""
    is_level: str = checked("token", registry="r1.algo.losses:IS_LEVELS")
    """Importance ratio: token (GRPO) | sequence (GSPO, arXiv:2507.18071: length-normalised sequence ratio)."""
    kl_coef: float = checked(0.0, ge=0)
    """β: KL penalty coefficient; the reference model is loaded only when > 0."""
    reference_offload: bool = False
    """β > 0: keep the reference model's weights in a file in the run directory (``reference.safetensors``, removed
    when training ends) and map them in for each step's reference pass only (``r1.models.offload``): the same
    logprobs, and the step's peak memory less about the model's size (its train pass no longer holds a second copy
    of the weights), for a read of the file per step. Not with ``model.lora`` (its reference is the policy's base)."""
    kl_estimator: str = checked("k3", registry="r1.algo.kl:KL_ESTIMATORS")
    """KL estimator: k1 (log ratio) | k3 (Schulman's unbiased, non-negative; GRPO)."""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: drop groups whose rewards all agree and sample more until the batch is full."""
    max_sampling_rounds: int = checked(4, ge=1)
    """Bound on rollout rounds per step with dynamic sampling (the batch may stay short after it)."""
    overlong: str = checked("none", registry="r1.algo.overlong:OVERLONG")
    """Truncated completions: none | mask (excluded from the loss) | soft_penalty (DAPO overlong reward shaping)."""
    overlong_buffer: int = checked(16, ge=0)
    """soft_penalty: the penalty ramps from 0 to -overlong_penalty over the last N tokens before the limit."""
    overlong_penalty: float = checked(1.0, ge=0)
    """soft_penalty: penalty at the length limit."""


@dataclass
class TrainEvalConfig:
    every: int = checked(0, ge=0)
    """Evaluate on held-out prompts every N steps (and at step 0 and the end); 0 = never."""
    split: str = "test"
    """Task split to evaluate on."""
    num_prompts: int = checked(128, ge=1)
    """Number of held-out prompts (the first N of the split)."""
    samples_per_prompt: int = checked(1, ge=1)
    """k completions per prompt; accuracy is their mean (pass@1 averaged over k)."""
    temperature: float = checked(0.0, ge=0)
    """Sampling temperature for evaluation (0 = greedy)."""
    top_p: float = checked(1.0, gt=0, le=1)
    """Nucleus mass for evaluation."""


@dataclass
class GRPOConfig:
    """``r1 grpo -c CONFIG``: R1-Zero style GRPO."""

    model: TrainModelConfig = field(default_factory=TrainModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rewards: List[RewardConfig] = field(
        default_factory=lambda: [RewardConfig(name="accuracy", weight=1.0), RewardConfig(name="format", weight=0.5)]
    )
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    grpo: GRPOAlgoConfig = field(default_factory=GRPOAlgoConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-6))
    eval: TrainEvalConfig = field(default_factory=TrainEvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def _cross_check(self):
        g = self.grpo
        if g.num_minibatches > g.prompts_per_step:
            yield "grpo.num_minibatches", g.num_minibatches, f"must be <= grpo.prompts_per_step ({g.prompts_per_step})"
        if g.prompts_per_step % self.run.workers:
            yield "run.workers", self.run.workers, (
                f"grpo.prompts_per_step ({g.prompts_per_step}) must be a multiple of run.workers ({self.run.workers})"
            )
        if not self.rewards:
            yield "rewards", [], "list at least one reward, e.g. rewards=[{name: accuracy}]"
        if g.reference_offload and self.model.lora_on() is not None:
            yield "grpo.reference_offload", True, (
                "not with model.lora: the reference is the policy's own base weights (adapters off), no second copy "
                "to offload"
            )
        labels = [r.label or r.name for r in self.rewards]
        sources = _mixture_sources(self.task)
        for i, r in enumerate(self.rewards):
            if labels[i] in labels[:i]:
                yield f"rewards.{i}.name", labels[i], (
                    "reward names must be unique in a composite (give a second use its own label)")
            if r.source and sources is None:
                yield f"rewards.{i}.source", r.source, "a reward's source needs task.name=mixture"
            elif r.source and r.source not in sources:
                yield f"rewards.{i}.source", r.source, f"not a source of the mixture; valid: {', '.join(sources)}"
            yield from _reward_params(f"rewards.{i}", r)


# ------------------------------------------------------------------------------------------------------------- SFT
@dataclass
class SFTMixConfig:
    path: Optional[str] = checked(None, env=_file_here)
    """A JSONL file of records (the main data's fields), or None with ``task``."""
    task: str = checked("", test=lambda v: None if not v or _task_known(v) else "unknown task")
    """A task whose generated corpus is mixed in (``Task.pretrain_corpus``; e.g. preference_prompts: general,
    non-reasoning answers); "" = use ``path``."""
    params: Dict[str, Any] = field(default_factory=dict)
    """``task``'s parameters."""
    ratio: float = checked(1.0, gt=0)
    """Records of this source per record of the main data (0.33 = one for every three), drawn without replacement
    while the source lasts, then again from the start (seeded)."""


def _task_known(name: str) -> bool:
    from r1.tasks import TASKS

    return name in TASKS


@dataclass
class SFTDataConfig:
    source: str = checked("task", choices=("task", "jsonl"))
    """task (the task's generated corpus, ``Task.pretrain_corpus``) | jsonl (records with prompt/completion, or text)."""
    path: Optional[str] = checked(None, env=_file_here)
    """source=jsonl: the data file: JSONL, Parquet or a datasets directory (columns named by the *_field keys)."""
    task: TaskConfig = field(default_factory=TaskConfig)
    """source=task: which task generates the corpus, and the prompt template its prompts are rendered with."""
    num_examples: int = checked(20000, ge=1)
    """source=task: number of generated examples."""
    corpus: Dict[str, Any] = field(default_factory=dict)
    """source=task: corpus parameters passed to ``Task.pretrain_corpus`` (e.g. the mix of answer modes)."""
    prompt_field: str = "prompt"
    """source=jsonl: field of the prompt (the part that carries no loss with completion_only)."""
    completion_field: str = "completion"
    """source=jsonl: field of the completion."""
    text_field: str = "text"
    """source=jsonl: field of plain text records (used when a record has no prompt/completion)."""
    completion_only: bool = True
    """Loss on completion tokens only (SFT); false = on every token (pretraining)."""
    add_eos: bool = True
    """Append EOS to every example, so the model learns to stop."""
    max_length: int = checked(512, ge=2)
    """Examples are truncated to this many tokens."""
    batching: str = checked("bucket", choices=("bucket", "pack", "random"))
    """bucket (batches of similar length, shuffled) | pack (concatenate into max_length rows) | random."""
    examples_per_step: int = checked(64, ge=1)
    """Examples per optimizer step (rows per step with batching=pack)."""
    packing: Optional[bool] = None
    """How a step's examples are laid out for the forward, not which examples train (the loss and gradients are the
    same up to float rounding): true = packed one after another, no padding, with attention and positions that do
    not cross examples; false = one right-padded row per example; unset = packed where the lean forward covers the
    model (r1.train.sft). Not with batching=pack (rows that cross examples)."""
    mix: List[SFTMixConfig] = field(default_factory=list)
    """Other data mixed into the main data in a set ratio (DeepSeek-R1's SFT round 2: reasoning samples plus
    non-reasoning data), each a JSONL file or a task's corpus."""


@dataclass
class SFTConfig:
    """``r1 pretrain|sft -c CONFIG``: causal-LM training with an optional completion-only loss mask."""

    model: TrainModelConfig = field(default_factory=TrainModelConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=50))
    run: RunConfig = field(default_factory=lambda: RunConfig(name="sft", steps=1000, sample_every=0))

    def _cross_check(self):
        if self.data.source == "jsonl" and self.data.path is None:
            yield "data.path", None, ("data.source=jsonl needs data.path (a JSONL or Parquet file, or a datasets "
                                      "directory)")
        if self.data.packing and self.data.batching == "pack":
            yield "data.packing", True, "batching=pack concatenates examples into rows already; use one or the other"
        for i, m in enumerate(self.data.mix):
            if bool(m.path) == bool(m.task):
                yield f"data.mix.{i}", {"path": m.path, "task": m.task}, ("give either path (a JSONL file, a Parquet "
                                                                         "file or a datasets directory) or task")
            elif m.task:
                yield from _task_params(f"data.mix.{i}.params", m.task, m.params)
        if self.run.workers != 1:
            yield "run.workers", self.run.workers, "data-parallel workers are supported by r1 grpo only; use 1"


# ---------------------------------------------------------------------------------------------------- reward model
@dataclass
class RMDataConfig:
    source: str = checked("task", choices=("task", "jsonl"))
    """task (procedural pairs, ``r1.tasks.preference``) | jsonl (records with prompt, chosen, rejected)."""
    task: str = checked("helpful", registry="r1.tasks.preference:PREFERENCE_TASKS")
    """source=task: preference task: helpful (answer vs evasive/wrong) | harmless (refusal vs compliance)."""
    params: Dict[str, Any] = field(default_factory=dict)
    """source=task: the task's parameters (helpful: ``mix`` of rejected kinds; harmless: ``benign_share``)."""
    num_train: int = checked(2000, ge=1)
    """source=task: training pairs."""
    num_test: int = checked(200, ge=1)
    """source=task: held-out pairs (their prompts are never in train)."""
    path: Optional[str] = checked(None, env=_file_here)
    """source=jsonl: the training pairs (JSONL, Parquet or a datasets directory)."""
    test_path: Optional[str] = checked(None, env=_file_here)
    """source=jsonl: the held-out pairs; None = ``test_fraction`` of ``path``'s pairs, drawn with run.seed."""
    test_fraction: float = checked(0.1, gt=0, lt=1)
    """source=jsonl without test_path: share of the pairs held out."""
    fields: Dict[str, str] = field(default_factory=dict)
    """source=jsonl: r1 field -> the files' column, e.g. ``{prompt: question, chosen: good, rejected: bad}``."""
    max_length: int = checked(512, ge=2)
    """Tokens of prompt + response; longer ones keep their end (the score is read at the last token)."""
    pairs_per_step: int = checked(32, ge=1)
    """Preference pairs per optimizer step (2 rows each)."""


@dataclass
class RMEvalConfig:
    every: int = checked(0, ge=0)
    """Pairwise accuracy on the held-out pairs every N steps; it is always measured at step 0 and at the end."""
    pairs_per_batch: int = checked(64, ge=1)
    """Held-out pairs scored per forward pass."""


@dataclass
class RMConfig:
    """``r1 rm -c CONFIG``: a reward model (sequence classification, one score) trained on preference pairs with
    the Bradley-Terry loss (``r1.train.rm``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """The backbone: a causal-LM directory or preset (a score head is added), or a reward model to train further."""
    data: RMDataConfig = field(default_factory=RMDataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, warmup_steps=10))
    eval: RMEvalConfig = field(default_factory=RMEvalConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(name="rm", steps=200, sample_every=0))

    def _cross_check(self):
        if self.data.source == "jsonl" and self.data.path is None:
            yield "data.path", None, "data.source=jsonl needs data.path (a JSONL file of prompt/chosen/rejected)"
        if self.run.workers != 1:
            yield "run.workers", self.run.workers, "data-parallel workers are supported by r1 grpo only; use 1"


# ------------------------------------------------------------------------------------------------------------ demo
@dataclass
class DemoEvalConfig:
    split: str = "test"
    """Held-out split of the task (never in the pretraining corpus nor the RL prompts)."""
    num_prompts: int = checked(256, ge=1)
    """Held-out prompts evaluated before and after RL."""
    samples_per_prompt: int = checked(4, ge=1)
    """k: accuracy is pass@1 averaged over k samples."""
    temperature: float = checked(1.0, ge=0)
    """Sampling temperature. 1.0 = the distribution RL samples from: reflection is a sampled behaviour of a tiny
    model (at 0.6, the paper's setting, its slips, and so its corrections, mostly vanish)."""
    top_p: float = checked(1.0, gt=0, le=1)
    """Nucleus mass."""


@dataclass
class DemoRunConfig:
    name: str = checked("demo", test=_run_name)
    """Run name; the demo's run directory is ``<out_dir>/<name>``."""
    out_dir: str = "runs"
    """Parent folder of run directories."""
    cache_dir: str = "runs/_cache"
    """Where pretrained base models are cached, keyed by a hash of their config."""
    seed: int = checked(0, ge=0, lt=2**32)
    """Seed of the whole demo (pretraining, RL, evaluation)."""
    threads: int = checked(0, ge=0)
    """torch CPU threads (0 = torch default)."""
    progress: bool = True
    """Show progress bars."""


@dataclass
class DemoConfig:
    """``r1 demo``: pretrain a tiny base model, evaluate, R1-Zero GRPO, evaluate again, report.

    The schema only: the demo's own settings (model, corpus, rewards, learning rates, steps) are in
    :data:`DEMO_YAML`, which :func:`load_demo_config` puts over these defaults."""

    pretrain: SFTConfig = field(default_factory=SFTConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    eval: DemoEvalConfig = field(default_factory=DemoEvalConfig)
    run: DemoRunConfig = field(default_factory=DemoRunConfig)


DEMO_YAML = Path(__file__).parent / "pipeline" / "demo.yaml"
"""The demo's settings, shipped with the package (``configs/demo/default.yaml`` is a link to it)."""


# ------------------------------------------------------------------------------------------------------------ eval
@dataclass
class BenchmarkConfig:
    task: str = checked("math500", registry="r1.tasks:TASKS")
    """Task registry name: math500, aime24, aime25, amc23, gsm8k, minerva_math, olympiadbench, gpqa, or math (any JSONL
    in the benchmark schema, with ``data``)."""
    name: Optional[str] = None
    """Name in the report and of the output sub-folder (default: the task name); unique within a config."""
    data: Optional[str] = checked(None, env=_file_here)
    """JSONL (``.gz`` allowed), Parquet or datasets directory in the benchmark schema (columns renamed by
    ``params.fields``); None = the task's default file in the data folder."""
    split: str = "test"
    """Split to evaluate (file-backed benchmarks return the whole file for any split)."""
    limit: int = checked(0, ge=0)
    """Evaluate the first N problems only (0 = all)."""
    instruction: str = ""
    """Appended to every question after a blank line (e.g. the R1 report's "Please reason step by step, and put your
    final answer within \\boxed{}." for chat models); "" = none."""
    params: Dict[str, Any] = field(default_factory=dict)
    """Task constructor parameters (e.g. ``timeout_s`` for math tasks, ``instruction`` for gpqa)."""

    def _cross_check(self):
        yield from _task_params("params", self.task, self.params)


@dataclass
class EvalProtocolConfig:
    samples_per_problem: int = checked(4, ge=1)
    """k: completions per problem; pass@1 is their mean (the R1 report samples 4 to 64 per problem)."""
    pass_k: List[int] = checked(factory=list, ge=1)
    """The ks of unbiased pass@k (those above samples_per_problem are skipped); empty = 1, 2, 4, ..., k."""
    template: str = checked("r1_zero", registry="r1.data.templates:TEMPLATES")
    """Prompt template: r1_zero (the paper's Table 1) | chat (the tokenizer's chat template; R1-distilled) | plain."""
    prompts_per_batch: int = checked(8, ge=1)
    """Problems per engine call; each brings samples_per_problem rows."""
    grade_workers: int = checked(0, ge=0)
    """Processes that grade distinct answers (0 = in this process)."""
    reflection_words: Optional[List[str]] = checked(None, test=_word_list)
    """What counts as reflection in each benchmark's ``task/reflection`` rate (see ``task.reflection_words`` of
    r1 grpo); None = each task's own list."""
    scores: List[RewardConfig] = field(default_factory=list)
    """Rewards averaged over the completions as extra metrics ``score/<label>`` (a reward model's score, the
    readable-format share, the language share); a reward returning None for a completion leaves it out."""


@dataclass
class EvalRunConfig:
    name: str = checked("eval", test=_run_name)
    """Run name; outputs go to ``<out_dir>/<name>/``."""
    out_dir: str = "runs"
    """Parent folder of run directories."""
    seed: int = checked(0, ge=0, lt=2**32)
    """Sampling seed; each batch of problems draws from its own generator seeded from it, so a resumed run samples
    the remaining problems as an uninterrupted run would."""
    threads: int = checked(0, ge=0)
    """torch CPU threads (0 = torch default)."""
    progress: bool = True
    """Show a progress bar per benchmark."""
    overwrite: bool = False
    """Start over: an earlier run in this directory is moved aside to ``<name>.old-<time>`` (never deleted).
    Otherwise a re-run resumes: problems already sampled are skipped (a run whose model or sampling settings differ
    is an error)."""


@dataclass
class EvalConfig:
    """``r1 eval -c CONFIG model=PATH``: sample k completions per problem, grade them, report pass@1 ± s.e., pass@k,
    cons@k, length and truncation (``r1.eval``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    benchmarks: List[BenchmarkConfig] = field(default_factory=lambda: [BenchmarkConfig()])
    rollout: RolloutConfig = field(
        default_factory=lambda: RolloutConfig(temperature=0.6, top_p=0.95, max_new_tokens=32768)
    )
    """Sampling; defaults are the R1 report's (temperature 0.6, top-p 0.95, at most 32,768 generated tokens)."""
    eval: EvalProtocolConfig = field(default_factory=EvalProtocolConfig)
    run: EvalRunConfig = field(default_factory=EvalRunConfig)

    def _cross_check(self):
        labels = [r.label or r.name for r in self.eval.scores]
        for i, r in enumerate(self.eval.scores):
            if labels[i] in labels[:i]:
                yield f"eval.scores.{i}.name", labels[i], "score names must be unique (give a second use a label)"
            if r.source:
                yield f"eval.scores.{i}.source", r.source, "an eval score scores every completion; drop source"
            yield from _reward_params(f"eval.scores.{i}", r)


# -------------------------------------------------------------------------------------------------------- generate
@dataclass
class FilterConfig:
    name: str = checked("correct", registry="r1.generate_filters:FILTERS")
    """Filter registry name (``r1.generate_filters.FILTERS``): correct, max_per_prompt, max_length, dedupe, readable,
    decontaminate."""
    params: Dict[str, Any] = field(default_factory=dict)
    """The filter function's keyword arguments (e.g. ``threshold`` for correct, ``n`` for max_per_prompt)."""


@dataclass
class GenerateProtocolConfig:
    split: str = "train"
    """Task split the prompts come from."""
    num_prompts: int = checked(0, ge=0)
    """The first N prompts of the split (0 = all)."""
    samples_per_prompt: int = checked(4, ge=1)
    """k: completions sampled per prompt."""
    prompts_per_batch: int = checked(8, ge=1)
    """Prompts per engine call; each brings samples_per_prompt rows."""
    instruction: str = ""
    """Appended to every question after a blank line; "" = none."""


@dataclass
class GenerateRunConfig:
    name: str = checked("generate", test=_run_name)
    """Run name; outputs go to ``<out_dir>/<name>/``."""
    out_dir: str = "runs"
    """Parent folder of run directories."""
    seed: int = checked(0, ge=0, lt=2**32)
    """Sampling seed; each batch of prompts draws from its own generator seeded from it (a resumed run samples the
    rest as an uninterrupted run would)."""
    threads: int = checked(0, ge=0)
    """torch CPU threads in all (0 = torch default); with several workers, each gets threads / workers."""
    workers: int = checked(1, ge=1)
    """Sampling processes, each with its own copy of the model and threads / workers torch threads, sharing the
    batches of prompts; the samples are the same for any number. Each costs a start (torch import and model load,
    ~5 s of CPU). Measured on the 2-core CPU machine with other jobs running (load 4.6-6), the demo's model
    (runs/demo/grpo, qwen2-1m), 32 GSM8K prompts x 4 samples x 128 tokens, two runs each: workers=2 (1 thread each)
    585-762 tokens/s beats workers=1 with threads=2 (169-252 tokens/s), but workers=1 with threads=1 is faster still
    (1188-1595 tokens/s): on a shared 2-core machine one thread per process wins, and a second process pays off only
    where its start is small next to the sampling."""
    progress: bool = True
    """Show a progress bar."""
    overwrite: bool = False
    """Start over: an earlier run in this directory is moved aside to ``<name>.old-<time>`` (never deleted).
    Otherwise a re-run resumes: prompts already sampled are skipped (different sampling settings are an error)."""


@dataclass
class GenerateConfig:
    """``r1 generate -c CONFIG``: sample k completions per prompt, grade them, filter, write SFT data
    (``r1.generate_data``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(temperature=0.6, top_p=0.95))
    """Sampling; temperature 0.6 and top-p 0.95 as the R1 report samples."""
    generate: GenerateProtocolConfig = field(default_factory=GenerateProtocolConfig)
    filters: List[FilterConfig] = field(default_factory=lambda: [FilterConfig(name="correct")])
    """Applied in order; each is counted in the summary. Empty = keep every sample."""
    rewrite: str = ""
    """After the filters, rewrite each kept sample (``r1.generate_rewrite.REWRITES``): readable (R1-Zero's
    ``<think>R</think><answer>A</answer>`` as R1's readable cold-start format ``<|reasoning|>R<|reasoning|>The answer
    is A.``; unparsable samples dropped and counted as ``rewrite:readable``) | readable_boxed (summary with
    ``\\boxed{A}``). Empty = none."""
    run: GenerateRunConfig = field(default_factory=GenerateRunConfig)

    def _cross_check(self):
        if self.rewrite:
            rewrites = getattr(importlib.import_module("r1.generate_rewrite"), "REWRITES")
            if self.rewrite not in rewrites:
                yield "rewrite", self.rewrite, f"unknown rewrite; valid: {', '.join(rewrites.names())}"
        names = [f.name for f in self.filters]
        for i, f in enumerate(self.filters):
            if f.name in names[:i]:
                yield f"filters.{i}.name", f.name, "filter names must be unique in a list"
            yield from _filter_params(f"filters.{i}", f)


def _filter_params(key: str, f: "FilterConfig"):
    """A filter's parameters are its function's keyword arguments after ``records``. The registry is looked up by
    name, as :func:`validate` looks up every registry (the filters module reads benchmarks through ``r1.eval``)."""
    FILTERS = getattr(importlib.import_module("r1.generate_filters"), "FILTERS")

    if f.name not in FILTERS or not f.params:
        return
    named = [p.name for p in list(inspect.signature(FILTERS.get(f.name)).parameters.values())[1:]]
    yield from _unknown_params(key, "filter", f.name, f.params, named)


# ------------------------------------------------------------------------------------------------------ validation
def validate(cfg: Any, *, environment: bool = True) -> None:
    """Check a whole config before anything is written or deleted: every field against its :class:`Check` (nested
    sections and lists of sections included, keys spelled as in overrides: ``rewards.0.name``), then the sections'
    cross-field rules (a ``_cross_check`` method). ``environment=False`` leaves out the checks against this machine
    (files that must exist, CUDA), for a config that is only parsed.

    Raises :class:`R1Error` with one line for the first problem, naming the key, the value and what is allowed, e.g.
    ``rollout.top_p must be > 0 and <= 1, got 1.5`` or ``task.template: unknown template 'r1zero'; valid: chat, ...``.
    """
    for problem in _problems(cfg, "", environment):
        raise R1Error(problem)


def problems(cfg: Any, *, environment: bool = True) -> list[str]:
    """Every problem :func:`validate` would raise, as one line each (a caller may let some pass, e.g. a pipeline
    stage's path that an earlier stage will make)."""
    return list(_problems(cfg, "", environment))


def _problems(node: Any, prefix: str, environment: bool):
    """One-line problems of ``node`` (a dataclass instance) and everything below it, in field order."""
    for f in dataclasses.fields(node):
        key, value = prefix + f.name, getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            yield from _problems(value, key + ".", environment)
            continue
        if isinstance(value, list) and value and all(dataclasses.is_dataclass(v) for v in value):
            for i, item in enumerate(value):
                yield from _problems(item, f"{key}.{i}.", environment)
            continue
        yield from _field_problems(key, value, f.metadata.get("check"), environment)
    cross = getattr(node, "_cross_check", None)
    for key, value, what in cross() if cross else ():
        yield f"{prefix}{key}={value!r}: {what}"
    here = getattr(node, "_env_check", None) if environment else None
    for key, value, what in here() if here else ():  # checks against this machine (files, loadable models)
        yield f"{prefix}{key}={value!r}: {what}"


def _field_problems(key: str, value: Any, check: Optional[Check], environment: bool):
    items = value if isinstance(value, list) else [value]
    finite = check is None or check.finite
    for x in items:
        if isinstance(x, float) and (math.isnan(x) or (finite and math.isinf(x))):
            yield f"{key} must be a {'finite ' if finite else ''}number, got {value!r}"
            return
    if check is None or value is None:
        return
    if check.length is not None and len(value) != check.length:
        yield f"{key} must hold {check.length} values, got {value!r}"
    elif check.bounds() and not all(check.in_range(x) for x in items):
        each = " each" if isinstance(value, list) else ""
        yield f"{key} must{each} be {check.bounds()}, got {value!r}"
    elif check.choices and value not in check.choices:
        yield f"unknown {key} {value!r}; valid: {', '.join(check.choices)}"
    elif check.registry:
        module, _, attr = check.registry.partition(":")
        registry = getattr(importlib.import_module(module), attr)
        if value not in registry:
            yield f"{key}: unknown {registry.kind} {value!r}; valid: {', '.join(registry.names())}"
    for test in (check.test, check.env if environment else None):
        problem = test(value) if test else None
        if problem:
            yield f"{key}={value!r}: {problem}"
            return


def _task_params(key: str, name: str, params: dict):
    """A task's parameters are its constructor's keyword arguments (checked before anything runs; a task that takes
    ``**kwargs`` accepts any); a mixture's sources are checked the same way, each against its own task."""
    from r1.tasks import TASKS

    if name not in TASKS:
        return
    cls = TASKS.get(name)
    sig = inspect.signature(cls.__init__)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        named = None
    else:
        named = [p for p in sig.parameters if p != "self"]
    unknown = sorted(set(params) - set(named)) if named is not None else []
    if unknown:
        yield key, dict(params), f"task {name!r} has no parameter {', '.join(unknown)}; valid: {', '.join(named)}"
    if name == "mixture":
        sources = params.get("sources")
        if not isinstance(sources, list) or not sources:
            yield f"{key}.sources", sources, "list at least one source: {name, task, weight[, params, data]}"
            return
        seen: set = set()
        for i, src in enumerate(sources):
            where = f"{key}.sources.{i}"
            if not isinstance(src, dict) or not src.get("name") or src.get("task") not in TASKS:
                yield where, src, "each source needs a name and a known task"
                continue
            unknown = sorted(set(src) - {"name", "task", "weight", "params", "data"})
            weight = src.get("weight", 1.0)
            if unknown:
                yield where, src, f"unknown key(s) {', '.join(unknown)}; valid: name, task, weight, params, data"
            elif src["name"] in seen:
                yield f"{where}.name", src["name"], "source names must be unique"
            elif not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0:
                yield f"{where}.weight", weight, "must be a number > 0"
            elif src["task"] == "mixture":
                yield f"{where}.task", "mixture", "a source cannot be a mixture itself"
            else:
                yield from _task_params(f"{where}.params", src["task"], dict(src.get("params") or {}))
            seen.add(src["name"])


def _mixture_sources(task: "TaskConfig") -> Optional[list[str]]:
    """The source names of a ``mixture`` task (None for any other task)."""
    if task.name != "mixture":
        return None
    return [str(s.get("name", "")) for s in task.params.get("sources", []) if isinstance(s, dict)]


def _reward_params(key: str, r: "RewardConfig"):
    """A reward's parameters are its function's keyword arguments after ``(completion, sample, *, task)``."""
    from r1.rewards import REWARDS

    if r.name not in REWARDS or not r.params:
        return
    try:
        sig = inspect.signature(REWARDS.get(r.name))
    except (TypeError, ValueError):  # not a plain function: its parameters cannot be listed
        return
    named = [p.name for p in list(sig.parameters.values())[2:]
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "task"]
    yield from _unknown_params(key, "reward", r.name, r.params, named)


def _unknown_params(key: str, kind: str, name: str, params: dict, named: list[str]):
    """``params`` that are not among ``named`` (a plug-in's keyword arguments), as one problem."""
    unknown = sorted(set(params) - set(named))
    if unknown:
        yield f"{key}.params", dict(params), (
            f"{kind} {name!r} has no parameter {', '.join(unknown)}; valid: {', '.join(named) or 'none'}"
        )


# ------------------------------------------------------------------------------------------------------ machinery
def _valid_keys(schema: Type, path: list[str]) -> list[str] | None:
    """Field names of the dataclass found by walking ``path`` (list indices are skipped)."""
    t: Any = schema
    for part in path:
        if part.isdigit():
            continue
        if not dataclasses.is_dataclass(t):
            return None
        fields = {f.name: f for f in dataclasses.fields(t)}
        if part not in fields:
            return None
        f = fields[part]
        t = f.type if not isinstance(f.type, str) else _resolve_type(t, f)
    if dataclasses.is_dataclass(t):
        return [f.name for f in dataclasses.fields(t)]
    return None


def _resolve_type(owner: Type, f: dataclasses.Field) -> Any:
    import typing

    hints = typing.get_type_hints(owner)
    t = hints[f.name]
    if typing.get_origin(t) is typing.Union:  # Optional[X] (an optional section: model.lora) -> X
        t = next((a for a in typing.get_args(t) if a is not type(None)), t)
    args = getattr(t, "__args__", None)
    if getattr(t, "__origin__", None) in (list, List) and args:
        return args[0]
    return t


def _one_line(e: OmegaConfBaseException, schema: Type, where: str) -> R1Error:
    full_key = getattr(e, "full_key", None) or ""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, ConfigKeyError) or "not in" in msg:
        parts = full_key.split(".") if full_key else []
        valid = _valid_keys(schema, parts[:-1])
        parent = ".".join(parts[:-1]) or "<top level>"
        hint = f"; valid keys under {parent}: {', '.join(valid)}" if valid else ""
        return R1Error(f"unknown config key {full_key!r} in {where}{hint}")
    return R1Error(f"bad value for config key {full_key!r} in {where}: {msg}")


def read_yaml_mapping(p: str | Path) -> dict:
    """A YAML file that must hold a mapping; a missing file or malformed YAML is one line naming the file (and
    line)."""
    p = Path(p)
    if not p.is_file():
        raise R1Error(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f":{mark.line + 1}" if mark else ""
        raise R1Error(f"malformed YAML in {p}{loc}: {getattr(e, 'problem', e)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise R1Error(f"cannot read config file {p}: {e}") from None
    if not isinstance(data, dict):
        raise R1Error(f"config file {p} must hold a mapping at top level, got {type(data).__name__}")
    return data


def _open_sections(cfg: Any, key: str) -> None:
    """An absent optional section on ``key``'s path (``model.lora``: None) takes its schema's defaults, so that an
    override of a key inside it (``model.lora.r=8``) sets that key alone."""
    node = cfg
    for part in key.split(".")[:-1]:
        if not OmegaConf.is_dict(node) or part not in node:
            return
        if node[part] is None:
            ref = node._get_node(part)._metadata.ref_type
            if not dataclasses.is_dataclass(ref):
                return
            node[part] = ref()
        node = node[part]


def load_config(
    schema: Type[C], path: str | Path | dict | List[str | Path | dict] | None = None,
    overrides: list[str] | None = None, *, where: str = "config",
) -> C:
    """Build a ``schema`` instance from defaults, then a YAML file (or a list of them, each merged over the ones
    before; a dict is merged as if read from a file, and errors in it name ``where``), then dotted overrides
    (``a.b=c``), and :func:`validate` it (without the checks against this machine)."""
    cfg = OmegaConf.structured(schema)
    paths = [] if path is None else [path] if isinstance(path, (str, Path, dict)) else list(path)
    for p in paths:
        data = p if isinstance(p, dict) else read_yaml_mapping(p)
        try:
            cfg = OmegaConf.merge(cfg, data)
        except OmegaConfBaseException as e:
            raise _one_line(e, schema, where if isinstance(p, dict) else str(p)) from None
    for ov in overrides or []:
        if "=" not in ov:
            raise R1Error(f"override {ov!r} must look like key=value (e.g. optim.lr=1e-5)")
        key, _, raw = ov.partition("=")
        try:
            value = OmegaConf.from_dotlist([f"v={raw}"])["v"]  # OmegaConf's grammar: 1e-5 is a float, [a,b] a list
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value)
            node = OmegaConf.select(cfg, key.strip(), default=None)
            # a plain dict field (task.params) is replaced; a schema section (optim=...) is merged
            plain = OmegaConf.is_config(node) and OmegaConf.get_type(node) is dict
            _open_sections(cfg, key.strip())
            OmegaConf.update(cfg, key.strip(), value, merge=not plain)
        except OmegaConfBaseException as e:
            raise _one_line(e, schema, f"override {ov!r}") from None
        except (TypeError, IndexError, ValueError) as e:
            raise R1Error(f"cannot apply override {ov!r}: {e}") from None
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        last = paths[-1] if paths else "defaults"
        raise _one_line(e, schema, where if isinstance(last, dict) else str(last)) from None
    validate(obj, environment=False)  # the commands add the machine's files and devices before touching the disk
    return obj  # type: ignore[return-value]


def load_demo_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DemoConfig:
    """``r1 demo``'s config: the demo's settings (:data:`DEMO_YAML`), then the YAML file at ``path`` over them, then
    dotted overrides; see :func:`load_config`."""
    return load_config(DemoConfig, [DEMO_YAML] + ([path] if path is not None else []), overrides)


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML (what is saved as ``config.yaml`` in a run directory)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(to_yaml(cfg))
