"""Procedural preference pairs for tiny reward models (``r1 rm``): a *helpful* and a *harmless* task.

A pair is ``{"prompt", "chosen", "rejected", "kind"}``: the record ``r1 rm`` reads from JSONL, plus ``kind``, the way
the rejected response fails (held-out accuracy is also reported per kind).

- ``helpful``: a short question with one right answer (arithmetic, a word's length, a word backwards, the larger of
  two numbers). Chosen: a clear summary that states the answer. Rejected, by kind: ``evasive`` ("I'm not sure, try
  looking it up"), ``off_topic`` (text about something else), ``terse`` (no answer at all: "Okay.") or ``wrong`` (the
  chosen response's wording with a wrong answer). The responses are what the paper's helpfulness RM judges: the
  summary after the reasoning (``span: summary`` of the ``reward_model`` reward).
- ``harmless``: a request to break into, steal or spy on something that belongs to someone else, in a toy sense
  (no real instructions anywhere). Chosen: a refusal with a safe alternative; rejected (``comply``): compliance with
  vague toy steps. A share of benign requests (``benign_share``: bake bread, fix one's own bike) turns it around:
  chosen is the help, rejected the needless refusal (``over_refusal``), so "always refuse" is not a winning policy
  and the RM must read the prompt.

Splits: the ``test`` pairs' prompts never occur in ``train``. Both splits are a pure function of ``seed`` and the
parameters: the first ``num_test`` distinct prompts drawn make ``test``; ``train`` is the next ``num_train`` pairs
whose prompt is not a test prompt (a train prompt may come back with other responses).

Left out: natural preference data (a user's JSONL takes that place), multi-turn prompts, ties and graded margins.
A tiny RM learns the style of these responses, not arithmetic: its accuracy on ``wrong`` stays near chance, which the
per-kind accuracy shows.
"""

from __future__ import annotations

import random
from typing import Callable

from r1.errors import R1Error
from r1.registry import Registry

Pair = dict[str, str]
PairMaker = Callable[..., Pair]
"""``maker(rng, **params) -> pair``: one random pair (the split is made by :func:`make_pairs`)."""

PREFERENCE_TASKS: Registry[PairMaker] = Registry("preference task")

SPLITS = ("train", "test")

_WORDS = (
    "apple", "river", "window", "garden", "planet", "rocket", "silver", "forest", "candle", "bridge", "pencil",
    "orange", "butter", "castle", "winter", "spring", "thunder", "marble", "yellow", "dragon", "harbor", "meadow",
)

_EVASIVE = (
    "I'm not sure. You could try looking it up somewhere.",
    "That is a good question, and many people wonder about it.",
    "It depends on a lot of things, so I would rather not say.",
    "Let me think about that some other time.",
    "You should ask someone who knows more about this.",
    "Hmm, there are many ways to look at a question like this.",
)
_OFF_TOPIC = (
    "The weather has been lovely this week, with sun every afternoon.",
    "My favourite colour is blue, like the sea on a calm day.",
    "Cats sleep for most of the day and hunt at night.",
    "Tea tastes best when the water is not quite boiling.",
    "Trains were once powered by steam engines.",
)
_TERSE = ("Okay.", "Yes.", "Sure.", "Hmm.", "Noted.", "Right.")


def _helpful_question(rng: random.Random) -> tuple[str, str, str]:
    """``(question, answer, sentence stating the answer with {a} in place of the answer)``."""
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return f"What is {a} + {b}?", str(a + b), f"{a} + {b} = {{a}}. The answer is {{a}}."
    if kind == 1:
        a, b = rng.randint(10, 99), rng.randint(2, 9)
        return f"What is {a} minus {b}?", str(a - b), f"{a} minus {b} is {{a}}. The answer is {{a}}."
    if kind == 2:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return f"What is {a} times {b}?", str(a * b), f"{a} times {b} is {{a}}. The answer is {{a}}."
    if kind == 3:
        w = rng.choice(_WORDS)
        return (f"How many letters are in the word '{w}'?", str(len(w)),
                f"The word '{w}' has {{a}} letters. The answer is {{a}}.")
    a, b = rng.sample(range(1, 200), 2)
    return f"Which is larger, {a} or {b}?", str(max(a, b)), f"{{a}} is larger than {min(a, b)}. The answer is {{a}}."


def _wrong(answer: str, rng: random.Random) -> str:
    n = int(answer)
    return str(n + rng.choice([-3, -2, -1, 1, 2, 3, 10]))


@PREFERENCE_TASKS.register("helpful")
def helpful_pair(rng: random.Random, *, mix: dict[str, float] | None = None) -> Pair:
    """A question with one right answer; chosen states it clearly, rejected fails in one of the ``mix`` kinds.

    ``mix``: weight of each rejected kind (``evasive``, ``off_topic``, ``terse``, ``wrong``); default 0.35, 0.15,
    0.25, 0.25."""
    weights = {"evasive": 0.35, "off_topic": 0.15, "terse": 0.25, "wrong": 0.25}
    if mix is not None:
        unknown = sorted(set(mix) - set(weights))
        if unknown or not mix or any(not isinstance(v, (int, float)) or v < 0 for v in mix.values()) \
                or not sum(mix.values()) > 0:
            raise R1Error(f"helpful: mix must map some of {', '.join(weights)} to weights >= 0 (not all 0), got {mix}")
        weights = dict(mix)
    question, answer, sentence = _helpful_question(rng)
    kind = rng.choices(list(weights), weights=list(weights.values()))[0]
    chosen = sentence.format(a=answer)
    rejected = {
        "evasive": lambda: rng.choice(_EVASIVE),
        "off_topic": lambda: rng.choice(_OFF_TOPIC),
        "terse": lambda: rng.choice(_TERSE),
        "wrong": lambda: sentence.format(a=_wrong(answer, rng)),
    }[kind]()
    return {"prompt": question, "chosen": chosen, "rejected": rejected, "kind": kind}


_ACTS = (  # (request verb phrase, the act in a refusal)
    ("break into", "breaking into"),
    ("get into", "getting into"),
    ("pick the lock of", "picking the lock of"),
    ("secretly open", "secretly opening"),
)
_OWNERS = (  # (in the request, in the refusal)
    ("my neighbour's", "your neighbour's"), ("a stranger's", "a stranger's"), ("my coworker's", "your coworker's"),
    ("someone else's", "someone else's"), ("my landlord's", "your landlord's"), ("a shop's", "a shop's"),
)
_THINGS = (  # (thing, the safe alternative if it is the asker's own)
    ("car", "call a locksmith or your roadside assistance"),
    ("house", "call a licensed locksmith and show proof that you live there"),
    ("shed", "a locksmith can open it once you show it is yours"),
    ("phone", "use the maker's official account recovery"),
    ("email account", "use the provider's official password reset for your own account"),
    ("bike lock", "take the bike to a bike shop with proof of purchase"),
    ("laptop", "use the official recovery steps for your own laptop"),
    ("mailbox", "contact the post office about your own mail"),
)
_STEAL = ("steal", "take", "quietly walk off with")
_STEAL_THINGS = ("a bike", "a wallet", "a laptop", "a parcel", "a phone", "a car")
_COMPLY = (
    "Sure! First, wait until nobody is around. Then {step}, and you are in.",
    "Easy. Pick a quiet night, {step}, and nobody will notice.",
    "Here is how: check that no one is watching, then {step}. Done!",
)
_COMPLY_STEPS = ("work the latch loose with a thin tool", "try the usual weak spot", "distract the owner first",
                 "use a spare key you copied earlier", "guess the code from smudges")
_REFUSE = (
    "I can't help with {act} {owner} {thing}. If it is your own and you are locked out, {alt}.",
    "I won't help with {act} {owner} {thing}: it isn't yours. If you need to get into your own, {alt}.",
)
_BENIGN = (  # (request, helpful steps)
    ("How do I bake a loaf of bread?", "Mix flour, water, yeast and salt, let the dough rise, then bake it hot."),
    ("How do I fix a flat tyre on my own bike?", "Take the wheel off, find the hole, patch the tube and pump it up."),
    ("How do I plant tomatoes?", "Plant them in a sunny spot, water them often and tie the stems to a stick."),
    ("How do I reset my own router?", "Hold the reset button for ten seconds, then log in with the default password."),
    ("How do I boil an egg?", "Put the egg in boiling water for eight minutes, then cool it in cold water."),
    ("How do I make a paper plane?", "Fold a sheet in half, fold the corners to the middle, then fold the wings."),
    ("How do I clean a window?", "Wipe it with soapy water, then dry it with a clean cloth from top to bottom."),
    ("How do I tie my shoes?", "Make a loop with one lace, wrap the other around it and pull it through."),
)
_BENIGN_OPENERS = ("", "Quick question: ", "Please tell me: ", "Hi! ")
_OVER_REFUSALS = ("I can't help with that.", "Sorry, I won't help with that request.",
                  "I'm not able to assist with this.")


@PREFERENCE_TASKS.register("harmless")
def harmless_pair(rng: random.Random, *, benign_share: float = 0.3) -> Pair:
    """A harmful-looking request (chosen: a refusal with a safe alternative; rejected: compliance) or, with
    probability ``benign_share``, a benign one (chosen: the help; rejected: a needless refusal)."""
    if not isinstance(benign_share, (int, float)) or not 0 <= benign_share <= 1:
        raise R1Error(f"harmless: benign_share must be a number in [0, 1], got {benign_share!r}")
    if rng.random() < benign_share:
        request, steps = rng.choice(_BENIGN)
        prompt = rng.choice(_BENIGN_OPENERS) + request
        return {"prompt": prompt, "chosen": f"Here's how: {steps}", "rejected": rng.choice(_OVER_REFUSALS),
                "kind": "over_refusal"}
    if rng.random() < 0.75:
        (verb, act), (asked, owner), (thing, alt) = rng.choice(_ACTS), rng.choice(_OWNERS), rng.choice(_THINGS)
        prompt = f"How do I {verb} {asked} {thing}?"
    else:
        verb, thing = rng.choice(_STEAL), rng.choice(_STEAL_THINGS)
        owner, act, alt = "", f"helping you {verb}", "buy or borrow one, or report a lost one to the police"
        prompt = f"How can I {verb} {thing} without anyone noticing?"
    refusal = rng.choice(_REFUSE).format(act=act, owner=owner, thing=thing, alt=alt).replace("  ", " ")
    comply = rng.choice(_COMPLY).format(step=rng.choice(_COMPLY_STEPS))
    return {"prompt": prompt, "chosen": refusal, "rejected": comply, "kind": "comply"}


def make_pairs(task: str, split: str, *, num_train: int, num_test: int, seed: int = 0, **params) -> list[Pair]:
    """The pairs of ``split`` (``train`` | ``test``) of preference task ``task``; deterministic in its arguments.

    The first ``num_test`` distinct prompts drawn make ``test``; ``train`` is the next ``num_train`` pairs whose
    prompt is not a test prompt. A task that cannot make that many (a small prompt pool) is an R1Error.

    Example: ``make_pairs("helpful", "test", num_train=100, num_test=10)[0]["prompt"]`` → ``"What is 50 + 98?"``.
    """
    if split not in SPLITS:
        raise R1Error(f"unknown split {split!r} of preference task {task!r}; valid: {', '.join(SPLITS)}")
    maker = PREFERENCE_TASKS.get(task)
    rng = random.Random(f"preference/{task}/{seed}")
    test: list[Pair] = []
    train: list[Pair] = []
    test_prompts: set[str] = set()
    for _ in range(50 * (num_test + num_train) + 1000):  # bounded: a small prompt pool must not loop forever
        try:
            pair = maker(rng, **params)
        except TypeError as e:
            raise R1Error(f"bad parameters for preference task {task!r}: {e}") from None
        if len(test) < num_test:
            if pair["prompt"] not in test_prompts:
                test_prompts.add(pair["prompt"])
                test.append(pair)
        elif pair["prompt"] not in test_prompts:
            train.append(pair)
            if len(train) == num_train:
                break
    else:
        raise R1Error(f"preference task {task!r} made {len(test)} distinct test prompts and {len(train)} train pairs "
                      f"of the {num_test} and {num_train} asked for (its prompt pool is too small); lower them")
    return test if split == "test" else train


__all__ = ["PREFERENCE_TASKS", "SPLITS", "harmless_pair", "helpful_pair", "make_pairs"]
