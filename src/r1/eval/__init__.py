"""Evaluation: sample → grade → metrics → report (``r1 eval``, ``r1 grade``, ``r1 decontaminate``).

- ``metrics``: pass@1 ± standard error, unbiased pass@k, cons@k (pure functions).
- ``grade``: the task's grader split into extract/score (cached, optional process pool); completions from files.
- ``report``: ``results.json``, ``samples.jsonl``, the Markdown table.
- ``runner``: ``evaluate(cfg)`` and ``grade_file(...)``.
- ``decontaminate``: n-gram overlap between a training JSONL and the benchmarks.

Heavy modules are imported lazily, so ``import r1.eval`` is cheap.
"""


def evaluate(cfg):
    """``r1 eval``: see :func:`r1.eval.runner.evaluate`."""
    from r1.eval.runner import evaluate as _evaluate

    return _evaluate(cfg)


def grade_file(task_name, completions, **kwargs):
    """``r1 grade``: see :func:`r1.eval.runner.grade_file`."""
    from r1.eval.runner import grade_file as _grade_file

    return _grade_file(task_name, completions, **kwargs)


__all__ = ["evaluate", "grade_file"]
