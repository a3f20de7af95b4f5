"""Any `reasoning-gym <https://github.com/open-thought/reasoning-gym>`_ generator as a task (optional extra).

``task: {name: reasoning_gym, params: {dataset: leg_counting, size: 1000, seed: 0, min_animals: 3}}`` draws
``size`` train problems from the generator ``dataset`` (``reasoning_gym.create_dataset(dataset, size=..., seed=...,
**kwargs)``; every other parameter is the generator's own config field) and ``test_size`` test problems from the
same generator under another seed (derived from ``seed``), with problems whose question is in test dropped from
train. The prompt is the generator's question; the answer is the text of the last ``<answer>…</answer>`` block,
scored by the generator's own ``score_answer`` (a float in [0, 1]: some generators give partial credit).

Needs ``pip install 'r1[reasoning_gym]'`` (or ``pip install reasoning-gym``); without it, building the task is a
one-line R1Error saying so. ``import r1`` never imports it.

Deliberately left out: reasoning-gym's composite datasets and curricula (use one ``dataset`` per task, or several
in a ``mixture``), and its system prompts (the r1 templates frame the question).
"""

from __future__ import annotations

import random
from typing import Any

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.tasks.base import Task, last_answer_block

INSTALL_HINT = "pip install 'r1[reasoning_gym]' (or pip install reasoning-gym)"
"""How to get the optional dependency."""


def import_reasoning_gym():
    """The ``reasoning_gym`` module, or a one-line R1Error saying how to install it."""
    try:
        import reasoning_gym
    except ImportError:
        raise R1Error(f"task reasoning_gym needs the reasoning-gym package: {INSTALL_HINT}") from None
    return reasoning_gym


class ReasoningGymTask(Task):
    """Problems of one reasoning-gym generator, graded by its scorer.

    Args:
        dataset: the generator's name (``reasoning_gym.factory.DATASETS``, e.g. ``leg_counting``, ``basic_arithmetic``).
        size: number of train problems.
        test_size: number of test problems (drawn under another seed; their questions are removed from train).
        seed: seed of the train problems; the test seed is derived from it, so the splits are a pure function of the
            parameters.
        **kwargs: the generator's own config fields (e.g. ``min_animals``); an unknown one is an R1Error.
    """

    name = "reasoning_gym"
    version = "1"

    def __init__(self, dataset: str = "", size: int = 1000, test_size: int = 100, seed: int = 0, **kwargs: Any):
        rg = import_reasoning_gym()
        if not isinstance(dataset, str) or dataset not in rg.factory.DATASETS:
            known = ", ".join(sorted(rg.factory.DATASETS))
            raise R1Error(f"task reasoning_gym: params.dataset must name a generator, got {dataset!r}; valid: {known}")
        for key, value in (("size", size), ("test_size", test_size), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "size" else 0):
                raise R1Error(f"task reasoning_gym: {key} must be an integer >= {int(key == 'size')}, got {value!r}")
        self.dataset, self.size, self.test_size, self.seed, self.kwargs = dataset, size, test_size, seed, kwargs
        test_seed = random.Random(f"reasoning_gym/{dataset}/{seed}/test").getrandbits(31)
        self._datasets = {
            "train": self._create(rg, size, seed),
            "test": self._create(rg, max(test_size, 1), test_seed),
        }
        self._splits: dict[str, list[Sample]] | None = None

    def _create(self, rg, size: int, seed: int):
        try:
            return rg.create_dataset(self.dataset, size=size, seed=seed, **self.kwargs)
        except (TypeError, ValueError, AssertionError) as e:  # an unknown or out-of-range generator parameter
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise R1Error(f"task reasoning_gym: bad parameters for generator {self.dataset!r}: {msg}") from None

    # ---- the Task contract -------------------------------------------------------------------------------------

    def load(self, split: str) -> list[Sample]:
        """Samples of ``"train"`` or ``"test"`` (entries of the generator, in order; train without test questions)."""
        if split not in ("train", "test"):
            raise R1Error(f"task reasoning_gym: unknown split {split!r}; valid: test, train")
        if self._splits is None:
            test = [self._sample("test", i, e) for i, e in enumerate(self._entries("test", self.test_size))]
            held_out = {s.problem for s in test}
            train = [self._sample("train", i, e) for i, e in enumerate(self._entries("train", self.size))
                     if e["question"] not in held_out]
            self._splits = {"train": train, "test": test}
        return list(self._splits[split])

    def grade(self, completion: str, sample: Sample) -> float:
        """The generator's ``score_answer`` of the last ``<answer>`` block's text (0.0 without one)."""
        return self.grade_answer(self.extract_answer(completion, sample), sample)

    def extract_answer(self, completion: str, sample: Sample) -> str | None:
        return last_answer_block(completion)

    def grade_answer(self, answer: str | None, sample: Sample) -> float:
        if answer is None:
            return 0.0
        ds = self._datasets[sample.meta["split"]]
        return float(ds.score_answer(answer, sample.meta["entry"]))

    def same_answer(self, a: str, b: str, sample: Sample) -> bool:
        return a.strip() == b.strip()

    # ---- helpers -----------------------------------------------------------------------------------------------

    def _entries(self, split: str, n: int) -> list[dict]:
        ds = self._datasets[split]
        return [ds[i] for i in range(n)]

    def _sample(self, split: str, i: int, entry: dict) -> Sample:
        return Sample(id=f"{self.dataset}/{split}/{i}", problem=entry["question"], answer=str(entry["answer"]),
                      meta={"split": split, "entry": entry})


TASKS_TABLE = {"reasoning_gym": ReasoningGymTask}

__all__ = ["INSTALL_HINT", "ReasoningGymTask", "TASKS_TABLE", "import_reasoning_gym"]
