"""Prompt mixtures for all-scenario RL (DeepSeek-R1 section 2.3.4), and general prompts without a rule grader.

``mixture``: several prompt sources in one GRPO run, each a task of its own, drawn by weight::

    task:
      name: mixture
      params:
        sources:
          - {name: reasoning, task: addition, weight: 0.5, params: {digits: 4}}
          - {name: helpful, task: preference_prompts, weight: 0.25, params: {kind: helpful}}
          - {name: harmless, task: preference_prompts, weight: 0.25, params: {kind: harmless}}
    rewards:
      - {name: accuracy, source: reasoning}                    # rule rewards for reasoning
      - {name: reward_model, label: helpful_rm, source: helpful, params: {path: ..., span: summary}}
      - {name: reward_model, label: harmless_rm, source: harmless, params: {path: ..., span: response}}

Each sample keeps its source in ``sample.meta["source"]``; a reward part with ``source`` scores only that source's
completions (``r1.rewards.base.CompositeReward``), so ``reward/<label>`` is a per-source metric, and the trainer logs
``source/<name>/reward``. ``load(split)`` draws from the sources in proportion to their weights: the split holds
``round(weight / Σ weights × N)`` samples of each source, N the sources' sizes summed, cycling through a source's
(seeded) shuffled samples when it has fewer. Grading and the prompt text are the source task's own.

``preference_prompts``: the prompts of the procedural preference tasks (``r1.tasks.preference``: ``helpful``,
``harmless``) as RL prompts; the gold "answer" is the chosen response, shown in logs only. No rule grades them
(``grade`` is 0.0): their reward comes from a reward model.
Per-completion metrics (``task/<name>``) are the mixture's own, not each source's: ``Task.completion_metrics`` gets
only the completion's text (GRPO, evaluation and the demo call it so), so a mixture cannot tell which source a
completion answers. It counts ``reflection`` with the default words (``r1.tasks.base.REFLECTION_WORDS``, or the
mixture's ``reflection_words``), so a source's own markers (addition's ``REFLECTION_MARKERS``) and extra metrics
(addition's ``mode/*``, ``mixed_language``) are not logged for it; ``source/<name>/reward`` is per source. For a
source's own metrics, train or evaluate that task alone.
Left out: per-source sampling temperatures and lengths.
"""

from __future__ import annotations

import random
from typing import Any

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.tasks.base import Task, build_task

_SOURCE_KEYS = ("name", "task", "weight", "params", "data")


class MixtureTask(Task):
    name = "mixture"
    version = "1"

    def __init__(self, sources: list[dict[str, Any]] | None = None, seed: int = 0):
        if not isinstance(sources, list) or not sources:
            raise R1Error("task mixture: params.sources must list at least one {name, task, weight[, params, data]}")
        self.sources: dict[str, Task] = {}
        self.weights: dict[str, float] = {}
        for i, src in enumerate(sources):
            if not isinstance(src, dict) or not src.get("name") or not src.get("task"):
                raise R1Error(f"task mixture: sources.{i} needs a name and a task, got {src!r}")
            unknown = sorted(set(src) - set(_SOURCE_KEYS))
            if unknown:
                raise R1Error(f"task mixture: sources.{i} has unknown key(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(_SOURCE_KEYS)}")
            name = str(src["name"])
            if name in self.sources:
                raise R1Error(f"task mixture: source name {name!r} is used twice")
            if src["task"] == "mixture":
                raise R1Error(f"task mixture: sources.{i} cannot be a mixture itself")
            weight = src.get("weight", 1.0)
            if not isinstance(weight, (int, float)) or not weight > 0:
                raise R1Error(f"task mixture: sources.{i}.weight must be a number > 0, got {weight!r}")
            self.sources[name] = build_task(str(src["task"]), src.get("data"), **dict(src.get("params") or {}))
            self.weights[name] = float(weight)
        self.seed = seed
        self._inner: dict[str, Sample] = {}

    def load(self, split: str) -> list[Sample]:
        per_source = {name: task.load(split) for name, task in self.sources.items()}
        total = sum(len(v) for v in per_source.values())
        weight_sum = sum(self.weights.values())
        out: list[Sample] = []
        for name, samples in per_source.items():
            if not samples:
                raise R1Error(f"task mixture: source {name!r} has no samples in split {split!r}")
            count = max(1, round(self.weights[name] / weight_sum * total))
            order = list(range(len(samples)))
            random.Random(f"mixture/{self.seed}/{name}/{split}").shuffle(order)
            for k in range(count):
                inner = samples[order[k % len(order)]]
                sid = f"{name}/{inner.id}" + (f"#{k // len(order)}" if k >= len(order) else "")
                self._inner[sid] = inner
                out.append(Sample(sid, inner.problem, inner.answer, {**inner.meta, "source": name}))
        random.Random(f"mixture/{self.seed}/{split}").shuffle(out)
        return out

    def _of(self, sample: Sample) -> tuple[Task, Sample]:
        name = sample.meta.get("source")
        if name not in self.sources:
            raise R1Error(f"task mixture: sample {sample.id!r} has no source of this mixture")
        return self.sources[name], self._inner.get(sample.id, sample)

    def question(self, sample: Sample) -> str:
        task, inner = self._of(sample)
        return task.question(inner)

    def grade(self, completion: str, sample: Sample) -> float:
        task, inner = self._of(sample)
        return task.grade(completion, inner)


class PreferencePromptTask(Task):
    name = "preference_prompts"
    version = "1"

    def __init__(self, kind: str = "helpful", num_train: int = 512, num_test: int = 64, seed: int = 0,
                 **params: Any):
        self.kind, self.num_train, self.num_test, self.seed, self.params = kind, num_train, num_test, seed, params

    def load(self, split: str) -> list[Sample]:
        from r1.tasks.preference import make_pairs

        pairs = make_pairs(self.kind, split, num_train=self.num_train, num_test=self.num_test, seed=self.seed,
                           **self.params)
        return [Sample(f"{self.kind}/{split}/{i}", p["prompt"], p["chosen"], {"kind": p.get("kind", "")})
                for i, p in enumerate(pairs)]

    def grade(self, completion: str, sample: Sample) -> float:
        return 0.0  # no rule grades a general prompt: a reward model does

    def pretrain_corpus(self, n: int, seed: int = 0, template: str = "plain", tokenizer=None) -> list[dict[str, str]]:
        """``n`` SFT records ``{"prompt", "completion"}``: the train prompts (rendered with ``template``) with their
        chosen responses, cycled — the tiny pipeline's non-reasoning SFT data."""
        from r1.data.templates import render_prompt

        samples = self.load("train")
        rng = random.Random(f"preference_prompts/{self.kind}/{seed}")
        order = [i for _ in range(n // len(samples) + 1) for i in rng.sample(range(len(samples)), len(samples))]
        return [{"prompt": render_prompt(template, samples[i].problem, tokenizer), "completion": samples[i].answer}
                for i in order[:n]]


TASKS_TABLE = {"mixture": MixtureTask, "preference_prompts": PreferencePromptTask}

__all__ = ["MixtureTask", "PreferencePromptTask", "TASKS_TABLE"]
