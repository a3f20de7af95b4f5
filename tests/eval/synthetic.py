"""Synthetic completions for grading tests and the speed check (not a test module)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path


def _perturb(answer: str, rng: random.Random) -> str:
    """A wrong answer of the same kind: one digit changed (or a digit appended), as a model's slip would give."""
    digits = [m.start() for m in re.finditer(r"\d", answer)]
    if not digits:
        return answer + " + 1"
    i = rng.choice(digits)
    return answer[:i] + str((int(answer[i]) + rng.randint(1, 9)) % 10) + answer[i + 1 :]


def synthetic_completions(records: list[dict], k: int, seed: int = 0, wrong: str = "realistic") -> list[dict]:
    """``k`` R1-format completions per problem: a long reasoning (the solution text, repeated three times) and a
    summary whose boxed answer is the gold (45%, spelled three ways), a wrong answer (30%), a random integer (10%), a
    hedge ``\\boxed{wrong} or \\boxed{gold}`` (5%), or nothing (10%, truncated inside the reasoning).

    ``wrong="realistic"``: wrong answers come from a pool of three slips of the gold per problem (same kind of
    answer, repeated across samples, as a model's mistakes are); ``wrong="shuffled"``: other problems' golds (every
    wrong answer distinct and of another kind: the worst case for majority voting).
    """
    rng = random.Random(seed)
    golds = [r["answer"] for r in records]
    out = []
    for r in records:
        reasoning = (r.get("solution") or r["problem"]) * 3
        pool = [_perturb(r["answer"], rng) for _ in range(3)]

        def wrong_answer() -> str:
            return rng.choice(golds) if wrong == "shuffled" else rng.choice(pool)

        for _ in range(k):
            u = rng.random()
            if u < 0.45:
                ans = rng.choice([r["answer"], r["answer"] + " ", f"{{{r['answer']}}}"])
            elif u < 0.75:
                ans = wrong_answer()
            elif u < 0.85:
                ans = str(rng.randint(-50, 1000))
            elif u < 0.9:
                ans = f"{wrong_answer()}}} or \\boxed{{{r['answer']}"  # \boxed{wrong} or \boxed{gold}
            else:
                out.append({"id": r["id"], "completion": f"<think>{reasoning}", "finish_reason": "length"})
                continue
            text = f"<think>{reasoning}</think>\nSo the final answer is $\\boxed{{{ans}}}$."
            out.append({"id": r["id"], "completion": text, "finish_reason": "stop"})
    return out


def write_jsonl(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path
