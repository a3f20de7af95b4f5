"""Evaluation metrics over k graded samples per problem: pass@1 (mean over k) with its standard error, unbiased
pass@k, cons@k (majority vote), response length and the share truncated.

Pure functions of numbers and answer lists; no task, model or file in here.

- **pass@1** is DeepSeek-R1's metric (arXiv 2501.12948, section 3.1): sample k completions per problem at
  temperature 0.6 / top-p 0.95 and average their correctness. Its standard error is the *clustered* one (Miller 2024,
  "Adding Error Bars to Evals", arXiv 2411.00640): the sample standard deviation of the per-problem means divided by
  sqrt(number of problems); it counts both the spread of problem difficulty and the sampling noise of k draws.
- **pass@k** is the unbiased estimator of Chen et al. 2021 (arXiv 2107.03374, HumanEval, section 2.1):
  ``1 - C(n-c, k) / C(n, k)`` per problem with n samples of which c are correct, averaged over problems; computed as
  a product so large n does not overflow (openai/human-eval ``estimate_pass_at_k``).
- **cons@k** is majority voting (the R1 report's cons@64; self-consistency, Wang et al. 2022): the most frequent
  extracted answer, equivalent answers clustered by the task's equivalence test, decides the problem. Samples with no
  answer do not vote; a problem with no answer at all scores 0. Ties go to the cluster whose first member came first.

A sample is *correct* when its score is 1 (graders score 0/1; a partial score counts as wrong for pass@k and cons@k).

Left out: bootstrap intervals, paired tests between two models (the per-problem means in ``samples.jsonl`` allow
them), and per-difficulty breakdowns.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def estimate_pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], k: int) -> np.ndarray:
    """Unbiased pass@k for each problem (HumanEval estimator).

    Args:
        num_samples: (N,) n_i, samples drawn for problem i (each >= k).
        num_correct: (N,) c_i, how many of them are correct.
        k: the k of pass@k.
    Returns:
        (N,) float64: ``1 - C(n_i - c_i, k) / C(n_i, k)``.

    Example: n=4, c=1, k=2 → 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5.
    """
    n = np.asarray(num_samples, dtype=np.int64)
    c = np.asarray(num_correct, dtype=np.int64)
    if k < 1 or (n < k).any():
        raise ValueError(f"pass@{k} needs at least k samples per problem (got min n = {n.min() if n.size else 0})")
    out = np.ones(n.shape, dtype=np.float64)
    for i, (ni, ci) in enumerate(zip(n.tolist(), c.tolist())):
        if ni - ci >= k:
            # C(n-c, k) / C(n, k) = prod_{j=n-c+1}^{n} (1 - k/j)
            out[i] = 1.0 - np.prod(1.0 - k / np.arange(ni - ci + 1, ni + 1))
    return out


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std with ddof=1 over sqrt(N); 0 for a single value)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), 0.0
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def majority_vote(answers: Sequence[str | None], same: Callable[[str, str], bool]) -> int | None:
    """Index of a sample whose answer wins the majority vote, or None if no sample has an answer.

    Answers are clustered greedily: each joins the first cluster whose first answer it is ``same`` as (identical
    strings always join without calling ``same``). The biggest cluster wins; ties go to the cluster formed first.

    Example: ``["1/2", "0.5", "3", None, "3"]`` with numeric equivalence → clusters {0, 1} and {2, 4}, a tie → 0.
    """
    clusters: list[list[int]] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for cl in clusters:
            rep = answers[cl[0]]
            if a == rep or same(rep, a):
                cl.append(i)
                break
        else:
            clusters.append([i])
    if not clusters:
        return None
    best = max(range(len(clusters)), key=lambda j: (len(clusters[j]), -j))
    return clusters[best][0]


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself: the ks of pass@k reported when none are configured."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def summarize(
    scores: Sequence[Sequence[float]],
    cons_scores: Sequence[float] | None,
    num_tokens: Sequence[Sequence[int | None]],
    num_chars: Sequence[Sequence[int]],
    truncated: Sequence[Sequence[bool | None]],
    has_answer: Sequence[Sequence[bool]] | None,
    pass_ks: Sequence[int] | None = None,
    num_missing: int = 0,
) -> dict[str, float | int | None]:
    """The metrics of one benchmark from per-problem lists (problem i has n_i samples).

    Args:
        scores: per problem, the score of each sample.
        cons_scores: per problem, the majority-vote score (0/1); None when the task has no answer extraction.
        num_tokens: per problem, each sample's length in tokens (None if unknown, e.g. completions graded from file).
        num_chars: per problem, each sample's length in characters.
        truncated: per problem, whether each sample hit the length limit (None if unknown).
        has_answer: per problem, whether an answer was extracted from each sample (None: the task grades whole
            completions and extracts nothing).
        pass_ks: the ks of pass@k; those above the smallest n_i are skipped (default :func:`default_ks`).
        num_missing: problems of the benchmark without any sample, counted as wrong: each adds a per-problem value
            of 0 to pass@1, pass@k and cons@k (and to their standard errors), so a partial run cannot report the
            accuracy of the problems it happened to finish. Sample statistics (lengths, shares) are over the samples.
    Returns:
        A flat dict: ``num_problems`` (with the missing ones), ``num_problems_missing``, ``num_samples``,
        ``samples_per_problem`` (min n_i) and ``samples_per_problem_max``, ``pass@1``, ``pass@1_stderr``,
        ``pass@<k>`` ..., ``cons@<n>`` and ``cons@<n>_stderr`` (n = samples per problem, or ``cons@all`` when
        problems have different n), ``length_tokens``, ``length_chars``, ``truncated_share``, ``no_answer_share``.

    Example: one problem with samples [1, 1] and ``num_missing=1`` → pass@1 = mean(1.0, 0.0) = 0.5.
    """
    n = np.array([len(s) for s in scores], dtype=np.int64)
    if n.size == 0 or (n == 0).any():
        raise ValueError("every problem needs at least one sample (count problems without any as num_missing)")
    if num_missing < 0:
        raise ValueError(f"num_missing must be >= 0, got {num_missing}")
    zeros = np.zeros(num_missing)  # the per-problem values of the missing problems
    correct = np.array([sum(1 for x in s if x >= 1.0) for s in scores], dtype=np.int64)
    out: dict[str, float | int | None] = {
        "num_problems": int(n.size) + num_missing,
        "num_problems_missing": num_missing,
        "num_samples": int(n.sum()),
        "samples_per_problem": int(n.min()),
        "samples_per_problem_max": int(n.max()),
    }
    out["pass@1"], out["pass@1_stderr"] = mean_and_stderr(np.concatenate([correct / n, zeros]))
    ks = sorted(set(default_ks(int(n.min())) if pass_ks is None else pass_ks))
    for k in ks:
        if 1 < k <= n.min():
            out[f"pass@{k}"] = float(np.concatenate([estimate_pass_at_k(n, correct, k), zeros]).mean())
    if cons_scores is not None:
        label = f"cons@{int(n.min())}" if (n == n.min()).all() else "cons@all"
        votes = [1.0 if x >= 1.0 else 0.0 for x in cons_scores] + [0.0] * num_missing
        out[label], out[f"{label}_stderr"] = mean_and_stderr(votes)
    tokens = [t for ts in num_tokens for t in ts if t is not None]
    out["length_tokens"] = float(np.mean(tokens)) if tokens else None
    out["length_chars"] = float(np.mean([c for cs in num_chars for c in cs]))
    trunc = [t for ts in truncated for t in ts if t is not None]
    out["truncated_share"] = float(np.mean(trunc)) if trunc else None
    out["no_answer_share"] = None if has_answer is None else float(1.0 - np.mean([a for hs in has_answer for a in hs]))
    return out


__all__ = ["default_ks", "estimate_pass_at_k", "majority_vote", "mean_and_stderr", "summarize"]
