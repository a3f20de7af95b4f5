"""``r1 eval``, ``r1 grade``, ``r1 decontaminate`` end to end on CPU: outputs, resume, errors, shipped configs.

Run: python -m pytest tests/eval/test_cli.py -q   (tiny random model; ~25 s on a busy 2-core machine)
"""

import json
from pathlib import Path

import pytest

from r1.cli import main
from r1.config import EvalConfig, load_config
from tests.eval.synthetic import write_jsonl

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "configs" / "eval" / "smoke.yaml")


def _eval(tmp_path, *overrides, name="ev"):
    return main(["eval", "-c", SMOKE, "model=tiny-qwen2", f"run.out_dir={tmp_path}", f"run.name={name}",
                 "run.progress=false", "rollout.max_new_tokens=4", "eval.prompts_per_batch=2", *overrides])


def _lines(path):
    return path.read_text().splitlines()


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "eval").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_eval_configs_validate(path):
    cfg = load_config(EvalConfig, path)
    assert cfg.benchmarks and cfg.rollout.temperature == 0.6 and cfg.rollout.top_p == 0.95


def test_eval_writes_the_outputs_and_resumes(tmp_path, shared_data, monkeypatch, capsys):
    assert _eval(tmp_path, "benchmarks=[{task: math500, limit: 2}]") == 0
    run = tmp_path / "ev"
    out = capsys.readouterr().out
    assert "| math500 | 2 | 2 |" in out  # the printed table: 2 problems, k = 2
    res = json.loads((run / "results.json").read_text())
    m = res["benchmarks"]["math500"]["metrics"]
    assert res["source"]["model"] == "tiny-qwen2" and res["source"]["temperature"] == 0.6
    for key in ("pass@1", "pass@1_stderr", "pass@2", "cons@2", "length_tokens", "truncated_share"):
        assert key in m
    assert (run / "results.md").read_text().startswith("| benchmark |")
    samples = [json.loads(x) for x in _lines(run / "math500" / "samples.jsonl")]
    assert len(samples) == 4 and {"id", "index", "answer", "score", "completion"} <= set(samples[0])
    first = _lines(run / "math500" / "completions.jsonl")

    # a re-run samples nothing: the model is never loaded
    def no_model(self):
        raise AssertionError("the model was loaded although every problem was sampled")

    monkeypatch.setattr("r1.eval.runner._Sampler.load", no_model)
    assert _eval(tmp_path, "benchmarks=[{task: math500, limit: 2}]") == 0
    assert _lines(run / "math500" / "completions.jsonl") == first
    monkeypatch.undo()

    # more problems (as after an interruption): only the new batch is sampled, and equals an uninterrupted run's
    assert _eval(tmp_path, "benchmarks=[{task: math500, limit: 4}]") == 0
    resumed = _lines(run / "math500" / "completions.jsonl")
    assert resumed[:4] == first and len(resumed) == 8
    assert _eval(tmp_path, "benchmarks=[{task: math500, limit: 4}]", name="fresh") == 0
    assert _lines(tmp_path / "fresh" / "math500" / "completions.jsonl") == resumed

    # other sampling settings in the same directory: a one-line error, nothing overwritten
    assert _eval(tmp_path, "benchmarks=[{task: math500, limit: 4}]", "rollout.temperature=1.0") == 2
    assert "temperature=0.6, not 1.0" in capsys.readouterr().err
    assert "temperature: 0.6" in (run / "config.yaml").read_text()


def test_eval_two_benchmarks_and_a_torn_line(tmp_path, shared_data):
    bench = "benchmarks=[{task: aime24, limit: 2}, {task: gpqa, limit: 2}]"
    assert _eval(tmp_path, bench, "eval.samples_per_problem=1") == 0
    comp = tmp_path / "ev" / "gpqa" / "completions.jsonl"
    comp.write_text(comp.read_text()[:-20])  # a killed run's last line
    assert _eval(tmp_path, bench, "eval.samples_per_problem=1") == 0
    assert len(_lines(comp)) == 2
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(res["benchmarks"]) == {"aime24", "gpqa"}


def test_grade_math_and_multiple_choice_from_paths(tmp_path, capsys):
    problems = write_jsonl(tmp_path / "problems.jsonl", [
        {"id": "a", "problem": "1/2 as a decimal?", "answer": "0.5"},
        {"id": "b", "problem": "3+4?", "answer": "7"},
    ])
    comps = write_jsonl(tmp_path / "other_tool.jsonl", [
        {"id": "a", "completion": "<think>…</think> \\boxed{\\frac{1}{2}}"},
        {"id": "a", "completion": "<think>…</think> \\boxed{2}"},
        {"id": "b", "completion": "<think>…</think> The answer is 7."},
        {"id": "b", "completion": "<think>…</think> The answer is 7."},
    ])
    out = tmp_path / "graded"
    assert main(["grade", "--task", "math", "--data", str(problems), "--completions", str(comps), "--out", str(out),
                 "--no-progress"]) == 0
    assert "| math | 2 | 2 | 75.0 ± 25.0 |" in capsys.readouterr().out
    lines = [json.loads(x) for x in _lines(out / "samples.jsonl")]
    assert [(x["id"], x["index"], x["answer"], x["score"]) for x in lines] == [
        ("a", 0, "\\frac{1}{2}", 1.0), ("a", 1, "2", 0.0), ("b", 0, "7", 1.0), ("b", 1, "7", 1.0)]
    m = json.loads((out / "results.json").read_text())["benchmarks"]["math"]["metrics"]
    assert m["pass@2"] == 1.0 and m["cons@2"] == 1.0  # problem a: a 1-1 tie goes to the first answer, 1/2

    mc = write_jsonl(tmp_path / "mc.jsonl", [{"id": "q", "problem": "Noble gas?", "choices": ["Fe", "Ne"],
                                              "answer": "B"}])
    mc_comps = write_jsonl(tmp_path / "mc_comps.jsonl", [{"id": "q", "completion": "Answer: (B)"}])
    assert main(["grade", "--task", "gpqa", "--data", str(mc), "--completions", str(mc_comps), "--out",
                 str(tmp_path / "mc_out"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "mc_out" / "results.json").read_text())["benchmarks"]["gpqa"]["metrics"][
        "pass@1"] == 1.0


def test_grade_headline_counts_missing_problems(tmp_path, capsys):
    """1 of 4 problems answered (right): the headline is 25 %, not the subset's 100 %; --only-given asks for the
    subset and says so; unequal samples per problem are shown as they are."""
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "problem": "?", "answer": str(i)} for i in range(4)])
    one = write_jsonl(tmp_path / "one.jsonl", [{"id": "q1", "completion": "\\boxed{1}"}])
    grade = ["grade", "--task", "math", "--data", str(problems), "--no-progress"]
    assert main([*grade, "--completions", str(one), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "| math | 4 | 1 | 25.0 ± 25.0 |" in out
    assert "math: 3 of 4 problems have no completions (counted as wrong)" in out
    assert "counted as wrong" in (tmp_path / "a" / "results.md").read_text()
    m = json.loads((tmp_path / "a" / "results.json").read_text())["benchmarks"]["math"]["metrics"]
    assert (m["pass@1"], m["num_problems"], m["num_problems_missing"]) == (0.25, 4, 3)

    assert main([*grade, "--completions", str(one), "--out", str(tmp_path / "b"), "--only-given"]) == 0
    out = capsys.readouterr().out
    assert "| math | 1 | 1 | 100.0 ± 0.0 |" in out and "the metrics are over the 1 graded problems only" in out

    uneven = write_jsonl(tmp_path / "uneven.jsonl", [{"id": "q1", "completion": "\\boxed{1}"}] * 3
                         + [{"id": f"q{i}", "completion": "\\boxed{0}"} for i in (0, 2, 3)])
    assert main([*grade, "--completions", str(uneven), "--out", str(tmp_path / "c"), "--pass-k", "1,2"]) == 0
    out = capsys.readouterr().out
    # q0 right, q1 right 3 of 3, q2 and q3 wrong -> pass@1 0.5; pass@2 needs 2 samples of every problem: not reported
    assert "| math | 4 | 1–3 | 50.0 ± 28.9 |" in out and "1 to 3 samples per problem" in out
    assert "no completions" not in out
    m = json.loads((tmp_path / "c" / "results.json").read_text())["benchmarks"]["math"]["metrics"]
    assert "pass@2" not in m and "cons@all" in m and (m["samples_per_problem"], m["samples_per_problem_max"]) == (1, 3)


def test_one_line_errors(tmp_path, capsys):
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "problem": "?", "answer": "1"}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "completion": "x"}\n{"id": "a", "completion": \n')
    unknown = write_jsonl(tmp_path / "u.jsonl", [{"id": "zzz", "completion": "x"}])
    cases = [
        (["grade", "--task", "nope", "--completions", str(bad)], "unknown task 'nope'; valid:"),
        (["grade", "--task", "math", "--data", str(tmp_path / "missing.jsonl"), "--completions", str(bad)],
         "not found"),
        (["grade", "--task", "math", "--data", str(problems), "--completions", str(bad)], "bad.jsonl:2: malformed"),
        (["grade", "--task", "math", "--data", str(problems), "--completions", str(unknown)], "unknown id 'zzz'"),
        (["grade", "--task", "math", "--data", str(problems), "--completions", str(bad), "--pass-k", "x"],
         "--pass-k takes"),
        (["eval", "-c", SMOKE, "benchmarks=[{task: nope}]"], "unknown task 'nope'"),
        (["eval", "-c", SMOKE, "benchmarks=[{task: math, data: " + str(tmp_path / "none.jsonl") + "}]"],
         "not found"),
        (["eval", "-c", SMOKE, "eval.samples_per_problem=0"], "samples_per_problem must be >= 1"),
        (["decontaminate", "--train", str(tmp_path / "none.jsonl")], "not found"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, (argv, err)


def test_decontaminate(tmp_path, shared_data, capsys):
    math500 = [json.loads(x) for x in _lines(shared_data / "math500.jsonl")]
    train = write_jsonl(tmp_path / "train.jsonl", [
        {"problem": "Unrelated: how many legs do three spiders have?", "answer": "24"},
        {"problem": "Reworded. " + math500[7]["problem"].upper(), "answer": "x"},  # a copy, in other case
        {"problem": "Another fresh question about the number 17 and its digits.", "answer": "8"},
    ])
    out, report = tmp_path / "clean.jsonl", tmp_path / "report.json"
    assert main(["decontaminate", "--train", str(train), "--benchmarks", "math500,aime24", "--out", str(out),
                 "--report", str(report)]) == 0
    assert "1 of 3 training records share a 8-gram" in capsys.readouterr().out
    rep = json.loads(report.read_text())
    assert rep["train"]["contaminated_lines"] == [2] and rep["benchmarks"]["math500"]["ids"] == [math500[7]["id"]]
    assert rep["benchmarks"]["aime24"]["contaminated_problems"] == 0
    assert [json.loads(x)["answer"] for x in _lines(out)] == ["24", "8"]
