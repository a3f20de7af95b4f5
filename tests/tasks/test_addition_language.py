"""The addition task's language mixing (``lang_mix``, ``step_words``) and the readable format's answer.

Run: ``python -m pytest tests/tasks/test_addition_language.py -q``
"""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from r1.data.sample import Sample
from r1.data.templates import READABLE_TOKEN
from r1.errors import R1Error
from r1.rewards.language import STEP_WORDS, language_share
from r1.tasks import build_task
from r1.tasks.addition import STEP_JOINERS, AdditionTask, extract_answer

SAMPLE = Sample("x", "4721+3689", "8410")


def _digest(records) -> str:
    return hashlib.sha256(json.dumps(records).encode()).hexdigest()


def test_default_corpus_is_byte_identical_to_before():
    # digests of the corpus before lang_mix existed: the demo's base-model settings, and a 1..3-digit task with the
    # default mix (the demo's cached base model is a function of these bytes)
    demo = AdditionTask(digits=4, direct_error="no_carry", direct_error_rate=0.7, cot_error_rate=0.5)
    corpus = demo.pretrain_corpus(3000, seed=0, mix={"direct": 0.5, "cot": 0.35, "reflect": 0.15})
    assert _digest(corpus) == "d7d2a6798eb10d181916ead792a6b5d9b653a29e3ae7122ffeb259d1009cca95"
    small = AdditionTask(digits=3, min_digits=1, num_train=100, num_test=50, lang_mix=0.0)
    assert _digest(small.pretrain_corpus(1000, seed=3)) == (
        "42e80f66278d410f0187788d75ec72cb70864c68a5419305442a38a401fcc908")


def test_default_metrics_have_no_mixed_language():
    metrics = AdditionTask(num_train=10, num_test=5).completion_metrics("<think>1+2+0=03</think><answer>3</answer>")
    assert sorted(metrics) == ["mode/cot", "mode/direct", "mode/other", "mode/reflect", "reflection"]


def test_joiners_are_step_words_of_their_language():
    for lang, word in STEP_JOINERS.items():
        assert all(w in STEP_WORDS[lang] for w in ([word] if lang != "zh" else list(word))), (lang, word)


def test_step_words_trace_is_english_and_grades():
    t = AdditionTask(num_train=10, num_test=5, step_words=True, cot_error_rate=0.0)
    c = t.make_completion(SAMPLE, "cot", random.Random(0))
    assert c == "<think>1+9+0=10 then 2+8+1=11 then 7+6+1=14 then 4+3+1=08</think><answer>8410</answer>"
    assert t.grade(c, SAMPLE) == 1.0
    assert t.completion_metrics(c)["mixed_language"] == 0.0  # step_words alone asks for the metric


def test_reflect_trace_keeps_wait_as_its_own_connective():
    t = AdditionTask(num_train=10, num_test=5, step_words=True)
    rng = random.Random(1)
    c = t.make_completion(SAMPLE, "reflect", rng)
    think = c[len("<think>"): c.index("</think>")]
    assert " wait " in think and "wait then" not in think
    assert think.count(" then ") == 3  # four columns, three joins: the wait replaces none of them
    assert t.grade(c, SAMPLE) == 1.0


def test_mixed_trace_switches_mid_trace_and_is_flagged():
    t = AdditionTask(num_train=10, num_test=5, lang_mix=1.0, mix_languages=["de"], cot_error_rate=0.0)
    c = t.make_completion(SAMPLE, "cot", random.Random(0))
    think = c[len("<think>"): c.index("</think>")]
    words = think.split()[1::2]
    assert words[0] == "then" and words[-1] == "dann" and words == sorted(words, key=lambda w: w == "dann")
    assert t.grade(c, SAMPLE) == 1.0
    assert language_share(think, "en", method="vocab") < 0.95
    assert t.completion_metrics(c)["mixed_language"] == 1.0


def test_zh_switch_is_flagged_and_direct_is_never_mixed():
    t = AdditionTask(num_train=10, num_test=5, lang_mix=1.0, mix_languages=["zh"])
    c = t.make_completion(SAMPLE, "cot", random.Random(2))
    assert "然后" in c and t.completion_metrics(c)["mixed_language"] == 1.0
    d = t.make_completion(SAMPLE, "direct", random.Random(2))
    assert t.completion_metrics(d)["mixed_language"] == 0.0
    assert t.completion_metrics("garbage")["mixed_language"] == 0.0


def test_mixed_share_of_corpus_follows_lang_mix():
    t = AdditionTask(num_train=10, num_test=5, lang_mix=0.25)
    corpus = t.pretrain_corpus(2000, seed=0, mix={"cot": 0.8, "reflect": 0.2})
    mixed = sum(t.completion_metrics(r["completion"])["mixed_language"] for r in corpus) / len(corpus)
    assert 0.21 < mixed < 0.29
    assert all(t.grade(r["completion"], Sample("c", r["prompt"], str(eval(r["prompt"])))) in (0.0, 1.0)
               for r in corpus[:50])


def test_language_metrics_param_without_mixing():
    t = AdditionTask(num_train=10, num_test=5, language_metrics=True)
    assert t.completion_metrics("<think>1+2+0=03 dann</think><answer>3</answer>")["mixed_language"] == 1.0


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"lang_mix": 1.5}, "lang_mix"),
        ({"lang_mix": "0.2"}, "lang_mix"),
        ({"lang_mix": 0.2, "mix_languages": []}, "mix_languages"),
        ({"lang_mix": 0.2, "mix_languages": ["en"]}, "mix_languages"),
        ({"lang_mix": 0.2, "mix_languages": ["xx"]}, "mix_languages"),
        ({"lang_mix": 0.2, "mix_languages": "de"}, "mix_languages"),
        ({"lang_mix": 0.2, "step_words": False}, "step_words"),
    ],
)
def test_bad_language_params_are_one_line_errors(params, needle):
    with pytest.raises(R1Error, match=needle) as e:
        build_task("addition", None, num_train=10, num_test=5, **params)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "completion, expected",
    [
        (f"{READABLE_TOKEN}1+9+0=10{READABLE_TOKEN}The answer is 8410.", "8410"),
        (f" {READABLE_TOKEN}r{READABLE_TOKEN} 12 or rather 8410", "8410"),  # the last number of the summary
        (f"{READABLE_TOKEN}r{READABLE_TOKEN}no number", None),
        (f"{READABLE_TOKEN}only one token, The answer is 8410.", None),
        ("The answer is 8410.", None),
        (f"{READABLE_TOKEN}r{READABLE_TOKEN}<answer>8410</answer>", "8410"),
        ("<think>x</think><answer>7</answer>", "7"),  # the R1-Zero format is unchanged
    ],
)
def test_extract_answer_reads_the_readable_summary(completion, expected):
    assert extract_answer(completion) == expected


def test_grade_accepts_both_formats():
    t = AdditionTask(num_train=10, num_test=5)
    assert t.grade(f"{READABLE_TOKEN}1+9+0=10{READABLE_TOKEN}The answer is 8410.", SAMPLE) == 1.0
    assert t.grade(f"{READABLE_TOKEN}1+9+0=10{READABLE_TOKEN}The answer is 8411.", SAMPLE) == 0.0
    assert t.grade("<think></think><answer>8410</answer>", SAMPLE) == 1.0
