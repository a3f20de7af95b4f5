"""The language-consistency reward: words, the script / identifier / vocab methods on hand cases, the identifier on
real sentences (tests/rewards/language_samples.py), the reward's span and target, the ``readable`` filter's hook, and
bad parameters.

Run: python -m pytest tests/rewards/test_language.py -q -p no:cacheprovider
"""

import logging

import pytest

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.generate_filters import FILTERS, language_consistency
from r1.rewards import REWARDS, CompositeReward
from r1.rewards import language as L
from r1.rewards.language import (
    count_words,
    detect_language,
    language_reward,
    language_share,
    mixed_language,
    select_span,
    split_spans,
    split_words,
)

from .language_samples import FRAGMENTS, SENTENCES, STEP_PHRASES

EN = Sample(id="e", problem="What is seven plus five?", answer="12")
DE = Sample(id="d", problem="Wie viel ist sieben plus fünf?", answer="12")
ZH = Sample(id="z", problem="七加五等于多少？", answer="12")
DIGITS = Sample(id="n", problem="4721+3689", answer="8410")


# ------------------------------------------------------------------------------------------------------ words
def test_words_cjk_characters_each_count_and_tags_latex_variables_are_no_words():
    words = split_words("<think>设 x = 2, 所以 \\frac{x}{2} carry sin θ</think><|im_end|>")
    # 设, 所, 以: one word per Han character; x, θ (variables), sin (math), \frac, think, im_end (markup): none
    assert words == [("设", "Han", 0), ("所", "Han", 1), ("以", "Han", 1), ("carry", "Latin", 1)]
    # Hindi vowel signs are combining marks: they stay inside the word; full-width Latin is Latin (NFKC)
    assert [w for w, _, _ in split_words("हिन्दी भाषा ｆｕｌｌ")] == ["हिन्दी", "भाषा", "full"]
    # kana: one word a character, as Han
    assert [(w, s) for w, s, _ in split_words("ひらがな")] == [(c, "Kana") for c in "ひらがな"]


def test_spans_break_at_clauses_and_script_changes():
    assert split_spans("7 + 5 = 12, schreibe 2, carry 1; acht plus vier") == [
        ("Latin", ["schreibe"]), ("Latin", ["carry"]), ("Latin", ["acht", "plus", "vier"])]
    assert split_spans("so 所以 the answer is 12") == [
        ("Latin", ["so"]), ("Han", ["所", "以"]), ("Latin", ["the", "answer", "is"])]


# --------------------------------------------------------------------------------------------- script method
@pytest.mark.parametrize("text, target, share", [
    ("所以答案是 twelve", "zh", 5 / 6),  # 5 Han words, 1 Latin word
    ("所以答案是 twelve", "en", 1 / 6),
    ("First 我们 add the ones", "en", 4 / 6),
    ("Итак, ответ twelve", "ru", 2 / 3),  # Cyrillic vs Latin
    ("答えは十二です", "ja", 1.0),  # Japanese writes Han and kana
    ("答案是十二", "ko", 0.0),  # Korean is Hangul (and Han): here ko's second script; see below
    ("1+9+0=10 2+8+1=11", "en", 1.0),  # no words: nothing mixed
    ("<think></think><answer>4</answer>", "zh", 1.0),  # tags are no words
    ("设 x = 2, 则 \\sqrt{x} > 1", "zh", 1.0),  # variables and LaTeX are no words
])
def test_script_shares_on_hand_strings(text, target, share):
    if target == "ko":
        share = 1.0  # Han is one of Korean's scripts: by script alone a Han word may be Korean
    assert language_share(text, target, method="script") == pytest.approx(share)


def test_script_cannot_tell_latin_languages_apart():
    # German in an English CoT: same script, so the script method sees no mixing (the identifier and vocab do)
    assert language_share("First add the ones. Dann schreiben wir das Ergebnis auf.", "en", method="script") == 1.0
    assert count_words("所以 the answer", "zh", method="script") == {"zh": 2, "Latin": 2}


# ---------------------------------------------------------------------------------------------- identifier
@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_identifier_on_real_sentences(lang):
    # 20 hand-written sentences per language: every one identified, and scored fully in its language
    for s in SENTENCES[lang]:
        assert detect_language(s, method="identifier") == lang, s
        assert language_share(s, lang, method="identifier") == 1.0, s


def test_identifier_on_fragments_and_the_paragraph_level():
    pairs = [(lang, f) for lang, fs in FRAGMENTS.items() for f in fs]
    right = sum(detect_language(f, method="identifier") == lang for lang, f in pairs)
    assert right / len(pairs) >= 0.95  # measured 0.99 (docs/language-id.md)
    for lang, ss in SENTENCES.items():
        assert language_share(" ".join(ss), lang) == 1.0  # a 20-sentence CoT in one language: no false mixing
        assert language_share(" ".join(ss)) == 1.0  # no target: its dominant language


@pytest.mark.parametrize("other", ["de", "fr", "es", "zh", "ru"])
def test_a_sentence_in_another_language_is_caught_in_an_english_cot(other):
    # 5 English sentences with one of another language in the middle: share = English words / all words
    for i in (0, 7, 13):
        sents = SENTENCES["en"][:5]
        text = " ".join(sents[:2] + [SENTENCES[other][i]] + sents[2:])
        en_words = sum(len(split_words(s)) for s in sents)
        # a 1-word clause of the intruder ("D'abord,": "D" is a variable-like letter, "abord" alone) is the target's
        assert language_share(text, "en") == pytest.approx(en_words / len(split_words(text)), abs=0.02)
        assert mixed_language(text, "en")
        assert not mixed_language(" ".join(sents), "en")


def test_auto_uses_script_where_it_decides_and_the_identifier_for_latin_vs_latin():
    text = "First we add the ones. Dann addieren wir die Zehner und schreiben das Ergebnis auf."
    assert language_share(text, "en", method="script") == 1.0
    assert language_share(text, "en") == pytest.approx(5 / 15)  # 5 English words, 10 German
    assert language_share("所以答案是 twelve", "zh") == pytest.approx(5 / 6)


def test_low_confidence_verdicts_count_for_the_target():
    # "plus" alone is English, German and French; the identifier's guess against the target is not trusted
    assert language_share("plus", "en") == 1.0
    assert language_share("plus", "en", min_confidence=0.0) == 0.0  # trusting every verdict: "plus" goes to fr


def test_without_the_identifier_auto_falls_back_to_script(monkeypatch, caplog):
    monkeypatch.setattr(L, "_identifier", lambda languages: None)
    L._warn_no_identifier.cache_clear()
    text = "First we add the ones. Dann addieren wir die Zehner."
    with caplog.at_level(logging.WARNING, logger="r1.rewards.language"):
        assert language_share(text, "en") == 1.0
    assert "py3langid is not installed" in caplog.text
    with pytest.raises(R1Error, match="needs py3langid"):
        language_share(text, "en", method="identifier")


# -------------------------------------------------------------------------------------------- tiny traces
def test_vocab_measures_a_tiny_models_mixed_trace():
    trace = "<think> 7 + 5 = 12, schreibe 2, carry 1; acht plus vier </think>"
    # words: schreibe(de) carry(en) acht(de) plus(en and de: the target's) vier(de) -> 2 of 5 English
    assert language_share(trace, "en", method="vocab") == pytest.approx(2 / 5)
    assert language_share(trace, "de", method="vocab") == pytest.approx(4 / 5)
    assert language_share("<think> seven plus five equals twelve, write two, carry one </think>", "en",
                          method="vocab") == 1.0
    assert language_share("sept plus cinq égale douze, écris deux", "en", method="vocab") == pytest.approx(1 / 7)
    # a word of no list is decided by script: Latin garbage is the English target's, Han is not
    assert language_share("carry qqq 进", "en", method="vocab") == pytest.approx(2 / 3)
    # the lists can come from the config
    assert language_share("eins zwei one", "en", method="vocab", vocab={"en": ["one"], "de": ["eins", "zwei"]}) == \
        pytest.approx(1 / 3)


def test_every_step_word_is_in_its_language_list():
    for lang, phrases in STEP_PHRASES.items():
        for p in phrases:
            for w, _, _ in split_words(p):
                assert w.lower() in L.STEP_WORDS[lang], (lang, w)


# ---------------------------------------------------------------------------------------------- the reward
def test_reward_is_registered_and_scores_the_think_span():
    fn = REWARDS.get("language")
    assert fn is language_reward
    c = " <think>所以答案是 twelve</think> <answer>12 twelve twelve</answer>"
    assert fn(c, ZH, task=None, target="zh") == pytest.approx(5 / 6)  # the answer's Latin words are not the CoT
    assert fn(c, ZH, task=None, target="zh", span="response") == pytest.approx(5 / 8)
    assert fn(" 12", ZH, task=None, target="zh") is None  # no CoT to score
    assert fn(" 12", ZH, task=None, target="zh", span="response") == 1.0
    # the readable format's special token opens and closes the reasoning
    c = "|special|所以答案是 twelve|special| The answer is 12."
    assert fn(c, ZH, task=None, target="zh", separator="|special|") == pytest.approx(5 / 6)


def test_reward_target_defaults_to_the_prompts_language():
    c = " <think>Sieben plus fünf ist zwölf, also ist die Antwort zwölf.</think> <answer>12</answer>"
    assert language_reward(c, DE) == 1.0
    assert language_reward(c, EN) == 0.0
    assert language_reward(" <think>七加五等于十二</think> <answer>12</answer>", ZH) == 1.0
    # a prompt without words: the CoT's own dominant language, so the share measures consistency
    c = " <think>We add the ones and write the last digit. 所以</think> <answer>12</answer>"
    assert language_reward(c, DIGITS) == pytest.approx(9 / 11)
    # the identifier on short number phrases: "seven plus five" reads as French to it (hence the vocab method)
    assert language_reward(" <think>seven plus five</think> <answer>12</answer>", DIGITS, target="en") == 0.0
    assert language_reward(" <think>seven plus five</think> <answer>12</answer>", DIGITS, target="en",
                           method="vocab") == 1.0


def test_reward_in_a_composite_is_weighted():
    reward = CompositeReward([("language", 0.5, {"target": "zh", "method": "script"})], task=None)
    total, parts = reward(" <think>所以答案是 twelve</think> <answer>12</answer>", ZH)
    assert parts == {"language": pytest.approx(5 / 6)} and total == pytest.approx(0.5 * 5 / 6)


def test_select_span():
    assert select_span("<think>a</think> b</think> c", "think") == "<think>a  b"  # up to the last separator
    assert select_span("a</think> b", "response") == "a  b"
    assert select_span("no cot", "think") is None


# ------------------------------------------------------------------------------------------ the filter hook
def test_filter_hook_scores_the_dominant_language_share():
    assert language_consistency(" <think>7 plus 5 is 12</think> <answer>12</answer>") == 1.0
    assert language_consistency(" <think>所以答案是 twelve</think> <answer>12</answer>") == pytest.approx(5 / 6)
    text = (" <think>First we add the ones. Dann addieren wir die Zehner und schreiben das Ergebnis.</think>"
            " <answer>12</answer>")
    assert language_consistency(text) == pytest.approx(9 / 14)  # German is the dominant language here
    recs = [{"id": "a", "index": i, "completion": c} for i, c in enumerate(
        [" <think>Seven plus five is twelve.</think> <answer>12</answer>", text])]
    assert FILTERS.get("readable")(recs) == [True, False]
    assert FILTERS.get("readable")(recs, min_language_score=0.5) == [True, True]


def test_mixed_language_threshold():
    assert mixed_language("所以答案是 twelve", "zh")  # 5/6 < 0.95
    assert not mixed_language("所以答案是 twelve", "zh", threshold=0.8)
    assert not mixed_language("所以答案是十二", "zh")


# --------------------------------------------------------------------------------------------- bad params
@pytest.mark.parametrize("kwargs, match", [
    ({"method": "fasttext"}, "unknown method 'fasttext'; valid: auto, script, identifier, vocab"),
    ({"target": "klingon"}, "unknown language 'klingon'"),
    ({"target": "EN"}, "unknown language 'EN'"),
    ({"languages": ["en", "xx"]}, "unknown language 'xx'"),
    ({"languages": "en"}, "must be a list of codes"),
    ({"min_confidence": 2}, "min_confidence must be a number in"),
    ({"min_confidence": "high"}, "min_confidence must be a number in"),
    ({"min_confidence": float("nan")}, "min_confidence must be a number in"),
    ({"target": 5}, "target must be a language code"),
    ({"target": ["en"]}, "target must be a language code"),
    ({"languages": [["en"]]}, "must be a list of codes"),
    ({"method": "vocab", "vocab": {"en": [1, 2]}}, "vocab must map a language code to a list of words"),
    ({"method": "vocab", "vocab": {"en": "one two"}}, "vocab must map a language code to a list of words"),
    ({"method": "vocab", "vocab": {"xx": ["one"]}}, "unknown language 'xx' in vocab"),
])
def test_bad_params_are_one_line_errors(kwargs, match):
    with pytest.raises(R1Error, match=match) as e:
        language_share("some words here", **kwargs)
    assert "\n" not in str(e.value)


def test_bad_reward_params_are_errors_even_without_a_cot():
    with pytest.raises(R1Error, match="unknown span 'cot'"):
        language_reward(" <think>x</think>", EN, span="cot")
    with pytest.raises(R1Error, match="unknown method"):
        language_reward(" 12", EN, method="nope")  # no </think>: the reward is None, the bad method still an error
    with pytest.raises(R1Error, match="threshold must be a number in"):
        mixed_language("x", "en", threshold=1.5)
    with pytest.raises(R1Error, match="threshold must be a number in"):
        mixed_language("x", "en", threshold="high")


def test_a_misspelled_param_is_caught_when_the_config_is_validated():
    from r1.config import GRPOConfig, load_config

    with pytest.raises(R1Error, match="reward 'language' has no parameter tgt; valid: target, method, span"):
        load_config(GRPOConfig, None, ["rewards=[{name: accuracy}, {name: language, params: {tgt: en}}]"])


@pytest.mark.parametrize("text", ["\ud800 lone surrogate", "\x00\x01", "<" * 5000, "所" * 20000 + " x" * 20000])
def test_hostile_texts_score_in_the_unit_interval(text):
    for method in ("auto", "script", "vocab"):
        assert 0.0 <= language_share(text, "en", method=method) <= 1.0


def test_every_supported_language_is_known_to_the_identifier():
    model = L._langid_model()
    assert set(L.LANGUAGE_SCRIPTS) <= set(model.labels)
