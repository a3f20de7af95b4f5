"""Make the tiny addition task's cold-start set: R1's readable format, from the task's own traces (not imported by
``src/``).

DeepSeek-R1's cold start (arXiv 2501.12948, section 2.3.1) fine-tunes the base model on a few thousand long-CoT
examples in a readable format before reasoning RL. For the tiny task, the examples are the task's own ``cot`` and
``reflect`` traces (what a good R1-Zero sample of the tiny base model looks like), kept the paper's way: graded
correct (``cot_error_rate`` makes some wrong), language-consistent (no ``mixed_language``), rewritten by ``r1
generate``'s ``readable`` rewrite into ``<|reasoning|>R<|reasoning|>The answer is A.`` and checked with the
``readable_format`` reward. Prompts are the task's train problems rendered with ``--template`` (``plain``, as the
tiny pipeline's RL prompts). Writes JSONL ``{"prompt", "completion"}`` that ``r1 sft`` reads (``data.source=jsonl``).

The shipped file ``data/cold_start/addition_readable.jsonl`` is exactly::

    python scripts/make_cold_start.py --out data/cold_start/addition_readable.jsonl

The other way of the paper, an R1-Zero checkpoint's correct samples rewritten: ``r1 generate`` with
``rewrite=readable`` and ``filters=[{name: correct}]``; its ``data.jsonl`` is the same kind of file.

``--general`` makes the tiny pipeline's non-reasoning SFT data instead (configs/pipeline/r1.yaml, SFT round 2's
``data.mix``): the train prompts of the procedural ``helpful`` and ``harmless`` preference tasks with their chosen
responses as the summary, after a one-line reasoning of the request's kind (:data:`GENERAL_REASONING`), so the
helpfulness RM's ``span: summary`` finds a summary (the paper's V3 pipeline writes a short CoT before such answers).
``data/cold_start/general_readable.jsonl`` is exactly::

    python scripts/make_cold_start.py --general --num 256 --out data/cold_start/general_readable.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from r1.data.sample import Sample
from r1.data.templates import render_prompt
from r1.generate_rewrite import REWRITES
from r1.rewards.rules import readable_format_reward
from r1.tasks.addition import AdditionTask, is_mixed_language

#: The shipped set's task: the demo's 4-digit problems, steps joined by the English step word (the language-mixing
#: pipeline's traces; a trace with ``lang_mix`` switched would be dropped as mixed anyway).
DEFAULT_PARAMS = {"digits": 4, "step_words": True}

#: The reasoning of a general record, by preference task and pair kind (the way the rejected response fails;
#: harmless ``comply`` = a request about what is someone else's, ``over_refusal`` = a benign one).
GENERAL_REASONING = {
    "helpful": "One answer: state it.",
    "comply": "Not theirs: refuse.",
    "over_refusal": "Harmless: help.",
}


def make_records(params: dict, num: int, seed: int, mix: dict[str, float], template: str, split: str,
                 rewrite: str = "readable") -> tuple[list[dict], Counter]:
    """Up to ``num`` readable records from the task's ``split`` problems in order, and what was drawn and dropped."""
    task = AdditionTask(**params)
    rng = random.Random(f"cold-start/{seed}")
    modes, weights = zip(*mix.items())
    fn = REWRITES.get(rewrite)
    out, counts = [], Counter()
    for s in task.load(split):
        if len(out) == num:
            break
        counts["drawn"] += 1
        completion = task.make_completion(s, rng.choices(modes, weights)[0], rng)
        question = task.question(s)
        rec = fn({"prompt": render_prompt(template, question), "problem": question, "completion": completion})
        if rec is None:
            counts["dropped_unparsable"] += 1
        elif task.grade(rec["completion"], s) != 1.0:
            counts["dropped_wrong"] += 1
        elif is_mixed_language(rec["completion"]):
            counts["dropped_mixed"] += 1
        elif readable_format_reward(rec["completion"], Sample(s.id, s.problem, s.answer)) != 1.0:
            counts["dropped_unreadable"] += 1
        else:
            out.append({"prompt": rec["prompt"], "completion": rec["completion"]})
    counts["kept"] = len(out)
    return out, counts


def make_general_records(num: int, seed: int = 0, template: str = "plain",
                         kinds: tuple[str, ...] = ("helpful", "harmless")) -> list[dict]:
    """``num`` readable records per preference task of ``kinds``: its train pairs' prompts (as the
    ``preference_prompts`` task draws them: 512 train, 64 test, ``seed``; harmless with its default benign share)
    with ``token reasoning token chosen``, every record checked with ``readable_format``."""
    from r1.data.templates import READABLE_TOKEN
    from r1.tasks.preference import make_pairs

    out = []
    for kind in kinds:
        pairs = make_pairs(kind, "train", num_train=512, num_test=64, seed=seed)
        for p in pairs[:num]:
            reasoning = GENERAL_REASONING["helpful" if kind == "helpful" else p["kind"]]
            completion = f"{READABLE_TOKEN}{reasoning}{READABLE_TOKEN}{p['chosen']}"
            assert readable_format_reward(completion, Sample("g", p["prompt"], p["chosen"])) == 1.0, completion
            out.append({"prompt": render_prompt(template, p["prompt"]), "completion": completion})
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the JSONL file to write")
    p.add_argument("--num", type=int, default=500, help="records to keep")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--params", type=json.loads, default=DEFAULT_PARAMS, help="AdditionTask parameters, as JSON")
    p.add_argument("--mix", type=json.loads, default={"cot": 0.85, "reflect": 0.15},
                   help="share of cot and reflect traces, as JSON")
    p.add_argument("--template", default="plain")
    p.add_argument("--split", default="train")
    p.add_argument("--general", action="store_true",
                   help="make the non-reasoning set (helpful + harmless, --num of each, at most 512) instead")
    args = p.parse_args(argv)
    if args.num < 1:
        p.error(f"--num must be at least 1, got {args.num}")
    if args.general:
        records = make_general_records(args.num, args.seed, args.template)
        counts = Counter(kept=len(records))
    else:
        records, counts = make_records(args.params, args.num, args.seed, args.mix, args.template, args.split)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {out}: {len(records)} records, {out.stat().st_size} bytes; {dict(counts)}")


if __name__ == "__main__":
    main()
