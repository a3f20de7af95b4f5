"""Evaluation metrics: unbiased pass@k against brute force, cons@k by hand, standard errors, the summary dict.

Run: python -m pytest tests/eval/test_metrics.py -q
"""

import itertools
import math
import random

import numpy as np
import pytest

from r1.eval.metrics import default_ks, estimate_pass_at_k, majority_vote, mean_and_stderr, summarize


def brute_force_pass_at_k(correct: list[bool], k: int) -> float:
    """Share of the k-subsets of the samples that hold at least one correct sample."""
    subsets = list(itertools.combinations(range(len(correct)), k))
    return sum(any(correct[i] for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_brute_force_on_random_cases():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 10)
        correct = [rng.random() < rng.random() for _ in range(n)]
        for k in range(1, n + 1):
            got = estimate_pass_at_k([n], [sum(correct)], k)[0]
            assert got == pytest.approx(brute_force_pass_at_k(correct, k), abs=1e-12)


def test_pass_at_k_hand_cases_and_vectorised():
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5
    # n=5, c=0: 0; n=3, c=3: 1; n=10, c=2, k=1: c/n = 0.2
    np.testing.assert_allclose(estimate_pass_at_k([4, 5, 3], [1, 0, 3], 2), [0.5, 0.0, 1.0])
    assert estimate_pass_at_k([10], [2], 1)[0] == pytest.approx(0.2)
    # large n does not overflow: n=1000, c=1, k=500 -> 1 - C(999,500)/C(1000,500) = 500/1000
    assert estimate_pass_at_k([1000], [1], 500)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        estimate_pass_at_k([2], [1], 3)


def test_majority_vote_hand_case():
    # answers: "1/2" ~ "0.5" (one cluster of 2), "3" twice (a cluster of 2), None does not vote -> tie, first formed
    same = lambda a, b: {a, b} <= {"1/2", "0.5"}  # noqa: E731
    assert majority_vote(["1/2", "0.5", "3", None, "3"], same) == 0
    assert majority_vote(["3", "1/2", "0.5", "0.5"], same) == 1  # {1/2, 0.5, 0.5} beats {3}
    assert majority_vote([None, None], same) is None
    assert majority_vote(["7"], same) == 0


def test_mean_and_stderr():
    # values 0, 1, 1, 0: mean 0.5, sample std sqrt(1/3), s.e. sqrt(1/3)/2
    m, se = mean_and_stderr([0, 1, 1, 0])
    assert m == 0.5 and se == pytest.approx(math.sqrt(1 / 3) / 2)
    assert mean_and_stderr([0.7]) == (0.7, 0.0)


def test_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(16) == [1, 2, 4, 8, 16]
    assert default_ks(6) == [1, 2, 4, 6]


def test_summarize_hand_case():
    # two problems, k = 4: scores [1,0,0,0] and [1,1,1,1]
    # pass@1 = mean(0.25, 1.0) = 0.625; s.e. = std([0.25, 1.0], ddof=1)/sqrt(2) = 0.53033/1.41421 = 0.375
    # pass@2 = mean(1 - C(3,2)/C(4,2), 1) = mean(0.5, 1) = 0.75
    m = summarize(
        scores=[[1, 0, 0, 0], [1, 1, 1, 1]],
        cons_scores=[0, 1],
        num_tokens=[[10, 20, 30, 40], [5, 5, 5, 5]],
        num_chars=[[1, 1, 1, 1], [2, 2, 2, 2]],
        truncated=[[True, False, False, False], [False] * 4],
        has_answer=[[True, False, True, True], [True] * 4],
    )
    assert m["pass@1"] == pytest.approx(0.625) and m["pass@1_stderr"] == pytest.approx(0.375)
    assert m["pass@2"] == pytest.approx(0.75) and m["pass@4"] == pytest.approx(1.0)
    assert m["cons@4"] == 0.5 and m["length_tokens"] == pytest.approx(15.0)
    assert m["truncated_share"] == pytest.approx(1 / 8) and m["no_answer_share"] == pytest.approx(1 / 8)
    assert (m["num_problems"], m["num_samples"], m["samples_per_problem"]) == (2, 8, 4)


def test_summarize_uneven_samples_and_unknowns():
    m = summarize([[1, 0], [0, 0, 1]], None, [[None, None], [None] * 3], [[3, 3], [3] * 3],
                  [[None, None], [None] * 3], None, pass_ks=[1, 2, 3])
    assert "pass@3" not in m and m["pass@2"] == pytest.approx(np.mean([1.0, 1 - 1 / 3]))
    assert (m["samples_per_problem"], m["samples_per_problem_max"]) == (2, 3)
    assert m["length_tokens"] is None and m["truncated_share"] is None and m["no_answer_share"] is None
    assert not any(k.startswith("cons@") for k in m)


def test_summarize_counts_missing_problems_as_wrong():
    # one problem with [1, 1] and 3 without samples: per-problem values 1, 0, 0, 0 -> pass@1 0.25,
    # s.e. = std([1,0,0,0], ddof=1)/2 = 0.5/2 = 0.25; pass@2 and cons@2 the same; lengths over the 2 samples only
    m = summarize([[1, 1]], [1], [[4, 6]], [[1, 1]], [[False, False]], [[True, True]], num_missing=3)
    assert (m["num_problems"], m["num_problems_missing"], m["num_samples"]) == (4, 3, 2)
    assert m["pass@1"] == 0.25 and m["pass@1_stderr"] == pytest.approx(0.25)
    assert m["pass@2"] == 0.25 and m["cons@2"] == 0.25 and m["length_tokens"] == 5.0
    assert (m["samples_per_problem"], m["samples_per_problem_max"]) == (2, 2)
    with pytest.raises(ValueError):
        summarize([[1], []], None, [[None], []], [[1], []], [[None], []], None)
