"""``r1 generate`` (``r1.generate_data``) and its filters (``r1.generate_filters``).

Run: python -m pytest tests/test_generate_data.py -q   (tiny random model; ~20 s)
"""

import json
from pathlib import Path

import pytest

from r1.cli import main
from r1.config import GenerateConfig, load_config
from r1.errors import R1Error
from r1.generate_data import run_generate
from r1.generate_filters import FILTERS, apply_filters

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "generate" / "smoke.yaml")


def rec(id_, index, completion, score=0.0, num_tokens=1, problem="What is 2+2?"):
    return {"id": id_, "index": index, "completion": completion, "score": score, "num_tokens": num_tokens,
            "problem": problem, "prompt": problem}


def test_correct_keeps_scores_at_or_above_the_threshold():
    recs = [rec("a", 0, "x", 1.0), rec("a", 1, "y", 0.0), rec("b", 0, "z", 0.5)]
    assert FILTERS.get("correct")(recs) == [True, False, False]
    assert FILTERS.get("correct")(recs, threshold=0.5) == [True, False, True]


def test_max_per_prompt_keeps_the_first_n_by_index():
    recs = [rec("a", 2, "x"), rec("a", 0, "y"), rec("b", 0, "z"), rec("a", 1, "w")]
    assert FILTERS.get("max_per_prompt")(recs, n=2) == [False, True, True, True]
    assert FILTERS.get("max_per_prompt")(recs, n=1) == [False, True, True, False]


def test_max_length_in_tokens_and_chars():
    recs = [rec("a", 0, "abc", num_tokens=3), rec("a", 1, "abcdef", num_tokens=6)]
    assert FILTERS.get("max_length")(recs, tokens=4) == [True, False]
    assert FILTERS.get("max_length")(recs, chars=5) == [True, False]
    assert FILTERS.get("max_length")(recs) == [True, True]


def test_dedupe_exact_normalised_and_jaccard():
    recs = [rec("a", 0, "The answer is 4."), rec("a", 1, "the  answer is 4"), rec("a", 2, "The answer is 4."),
            rec("b", 0, "The answer is 4."), rec("a", 3, "so the answer is 4")]
    d = FILTERS.get("dedupe")
    assert d(recs, mode="exact") == [True, True, False, True, True]
    assert d(recs, mode="normalised") == [True, False, False, True, True]
    assert d(recs, mode="normalised", scope="all") == [True, False, False, False, True]
    # "so the answer is 4" shares 2 of its 3 word trigrams with "the answer is 4": Jaccard 2/3
    assert d(recs, mode="jaccard", ngram=3, threshold=0.6) == [True, False, False, True, False]
    assert d(recs, mode="jaccard", ngram=3, threshold=0.7) == [True, False, False, True, True]
    with pytest.raises(R1Error, match="unknown mode"):
        d(recs, mode="fuzzy")


def test_readable_format_paragraphs_code_fences_and_the_language_hook():
    good = " <think>2+2 is 4</think> <answer>4</answer>"
    recs = [rec("a", 0, good), rec("a", 1, "4"), rec("a", 2, f" <think>{'x' * 50}</think> <answer>4</answer>"),
            rec("a", 3, " <think>\n```python\nprint(4)\n```\n</think> <answer>4</answer>")]
    r = FILTERS.get("readable")
    assert r(recs) == [True, False, True, False]
    assert r(recs, max_paragraph_chars=45) == [True, False, False, False]
    assert r(recs, code_fences=True) == [True, False, True, True]
    assert r(recs, format="none") == [True, True, True, False]
    assert r(recs, language=f"{__name__}:_never_consistent") == [False] * 4
    assert r(recs, language=f"{__name__}:_never_consistent", min_language_score=0.0) == [True, False, True, False]


def _never_consistent(text):
    return 0.5


def test_decontaminate_drops_records_whose_problem_overlaps_a_benchmark(shared_data):
    from r1.tasks import build_task

    problem = build_task("math500").load("test")[0].problem
    recs = [rec("a", 0, "x", problem=problem), rec("b", 0, "x", problem="Count the apples in a basket of nine.")]
    assert FILTERS.get("decontaminate")(recs, benchmarks=["math500"]) == [False, True]


def test_apply_filters_counts_add_up_and_records_carry_verdicts():
    recs = [rec("a", i, f"c{i % 2}", score=float(i % 3 == 0)) for i in range(6)]
    kept, counts = apply_filters(recs, [("correct", {}), ("dedupe", {"mode": "exact"}), ("max_per_prompt", {"n": 1})])
    assert [c["in"] for c in counts] == [6, 2, 2] and [c["kept"] for c in counts] == [2, 2, 1]
    assert all(c["in"] == c["kept"] + c["dropped"] for c in counts)
    assert len(kept) == 1 and kept[0]["filters"] == {"correct": True, "dedupe": True, "max_per_prompt": True}
    assert recs[1]["filters"] == {"correct": False}


def _cfg(tmp_path, *overrides):
    return load_config(GenerateConfig, SMOKE, [f"run.out_dir={tmp_path}", "run.progress=false", *overrides])


def _lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def test_generate_writes_sft_data_with_counts_that_add_up(tmp_path):
    summary = run_generate(_cfg(tmp_path, "filters=[{name: max_per_prompt, params: {n: 1}}]"))
    run = tmp_path / "generate_smoke"
    samples, data = _lines(run / "samples.jsonl"), _lines(run / "data.jsonl")
    assert len(samples) == 16 and len(data) == 8 == summary["kept"]
    assert json.loads((run / "summary.json").read_text()) == summary
    c = summary["filters"][0]
    assert (c["in"], c["kept"], c["dropped"]) == (16, 8, 8)
    for d in data:
        assert {"id", "prompt", "completion", "score", "filters", "source_model"} <= set(d)
        assert d["filters"] == {"max_per_prompt": True} and d["source_model"] == "tiny-qwen2" and d["index"] == 0


def test_every_sample_is_kept_or_dropped_by_exactly_one_filter(tmp_path, capsys):
    # chained filters: each one sees what the one before kept, so the drops add up to what is not kept
    summary = run_generate(_cfg(tmp_path, "generate.num_prompts=4", "generate.samples_per_prompt=3",
                                "filters=[{name: max_length, params: {tokens: 6}}, {name: dedupe, params: {mode: "
                                "normalised}}, {name: max_per_prompt, params: {n: 1}}]"))
    counts = summary["filters"]
    assert summary["samples"] == 12 == counts[0]["in"]
    assert summary["samples"] == summary["kept"] + sum(c["dropped"] for c in counts)
    assert [c["in"] for c in counts[1:]] == [c["kept"] for c in counts[:-1]] and counts[-1]["kept"] == summary["kept"]
    assert summary["kept"] == len(_lines(tmp_path / "generate_smoke" / "data.jsonl")) > 0
    assert "0 records kept" not in capsys.readouterr().out


def test_a_run_that_keeps_nothing_says_so_in_one_line(tmp_path, capsys):
    # a random-init model never answers an addition correctly
    summary = run_generate(_cfg(tmp_path, "generate.num_prompts=4", "filters=[{name: dedupe}, {name: correct}]"))
    assert summary["kept"] == 0 and (tmp_path / "generate_smoke" / "data.jsonl").read_text() == ""
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("0 records kept")]
    assert line == ["0 records kept; data.jsonl is empty, so r1 sft has nothing to train on: filter 'correct' dropped "
                    "8 of 8 samples (relax it, or choose filters with filters=[...])"]


def test_a_killed_generate_resumes_without_duplicates(tmp_path):
    run_generate(_cfg(tmp_path / "whole"))
    whole = (tmp_path / "whole" / "generate_smoke" / "samples.jsonl").read_text()
    run_generate(_cfg(tmp_path / "part", "generate.num_prompts=4"))  # the first batch only
    part = tmp_path / "part" / "generate_smoke"
    # sampling.json names num_prompts only through the prompts sampled: a larger rerun continues
    text = (part / "samples.jsonl").read_text()
    (part / "samples.jsonl").write_text(text + text.splitlines()[0][:15])  # a torn line from a kill
    run_generate(_cfg(tmp_path / "part"))
    assert (part / "samples.jsonl").read_text() == whole
    ids = [(r["id"], r["index"]) for r in _lines(part / "data.jsonl")]
    assert len(ids) == len(set(ids)) == 16


def test_generated_data_trains_with_r1_sft(tmp_path):
    from r1.config import SFTConfig
    from r1.train.sft import train_sft

    run_generate(_cfg(tmp_path))
    data = tmp_path / "generate_smoke" / "data.jsonl"
    cfg = load_config(SFTConfig, None, ["data.source=jsonl", f"data.path={data}", "run.steps=2",
                                        f"run.out_dir={tmp_path}", "run.name=sft", "run.progress=false",
                                        "data.examples_per_step=4", "optim.warmup_steps=0"])
    train_sft(cfg)
    assert (tmp_path / "sft" / "metrics.jsonl").read_text().count("\n") >= 2


@pytest.mark.parametrize("override, message", [
    ("model.path=/no/such/model", "model.path='/no/such/model': neither a preset"),
    ("generate.split=nope", "no records (empty dataset)"),  # an empty task file
    ("generate.num_prompts=9", "generate.num_prompts=9 but task 'addition' split 'train' has 8 prompts (0 = all"),
    ("generate.num_prompts=-1", "generate.num_prompts must be >= 0, got -1"),
    ("run.workers=0", "run.workers must be >= 1, got 0"),
    ("model.path=/etc", "/etc is not a Hugging Face model directory (no config.json)"),
    ("filters=[{name: nope}]", "filters.0.name: unknown filter 'nope'"),
    ("filters=[{name: dedupe, params: {n: 3}}]", "filter 'dedupe' has no parameter n"),
    ("filters=[{name: dedupe, params: {mode: fuzzy}}]", "filter dedupe: unknown mode 'fuzzy'"),
    ("filters=[{name: readable, params: {format: xml}}]", "filter readable: unknown format 'xml'"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, override, message):
    task = "task.name=math" if "split" in override else "run.seed=0"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    args = ["generate", "-c", SMOKE, f"run.out_dir={tmp_path / 'runs'}", override]
    if "split" in override:
        args += [task, f"task.data={empty}", "task.params={}"]
    if "num_prompts=9" in override:
        args.append("task.params={digits: 2, num_train: 8, num_test: 8}")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists()
