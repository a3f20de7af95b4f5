"""``r1 report RUN1 RUN2 ...``: one report whose curves overlay several runs, with their final numbers and mean ± sd,
on small hand-made run directories (the files the report reads: metrics.jsonl, config.yaml, summary.json).

Run: ``python -m pytest tests/report -q``.
"""

import json

import pytest

from r1.cli import main
from r1.errors import R1Error
from r1.report import format_mean_sd, make_report, make_runs_report


def _metrics(acc: list[float], refl: list[float] | None = None) -> list[dict]:
    """Training rows at steps 1..20 and a held-out evaluation every 10 steps (steps 0, 10, 20)."""
    rows = []
    for step in range(21):
        row = {"step": step} if step == 0 else {"step": step, "reward/total": 0.5, "accuracy": 0.5, "kl": 0.0,
                                                "entropy": 0.1, "response_length/mean": 30.0}
        if step % 10 == 0:
            row["eval/accuracy"] = acc[step // 10]
            row["eval/response_length/mean"] = 30.0 + 10 * step // 10
            if refl is not None:
                row["eval/task/reflection"] = refl[step // 10]
        rows.append(row)
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def fake_demo(root, name, seed, acc, refl, final):
    """A demo run directory: grpo/{metrics.jsonl,config.yaml}, summary.json with the final evaluation."""
    run = root / name
    (run / "grpo").mkdir(parents=True)
    _write(run / "grpo" / "metrics.jsonl", _metrics(acc, refl))
    (run / "grpo" / "config.yaml").write_text(f"run:\n  name: grpo\n  seed: {seed}\n")
    base = {"accuracy": 0.25, "response_length/mean": 28.0, "task/reflection": 0.2, "truncated_share": 0.0}
    summary = {"base": base, "final": final, "eval_prompts": 8, "eval_samples_per_prompt": 2,
               "eval_temperature": 1.0, "eval_top_p": 1.0}
    (run / "summary.json").write_text(json.dumps(summary))
    _write(run / "eval_final.jsonl", [{"question": "1+1", "answer": "2", "completion": "2", "score": 1.0}])
    return run


@pytest.fixture
def three_seeds(tmp_path):
    finals = [{"accuracy": a, "response_length/mean": n, "task/reflection": r, "truncated_share": 0.0}
              for a, n, r in ((0.8, 45.0, 0.3), (0.9, 50.0, 0.1), (0.7, 40.0, 0.2))]
    return [
        fake_demo(tmp_path / "runs", "demo", 0, [0.3, 0.8, 0.7], [0.2, 0.6, 0.3], finals[0]),
        fake_demo(tmp_path / "runs", "demo_s1", 1, [0.3, 0.9, 0.9], [0.2, 0.5, 0.5], finals[1]),
        fake_demo(tmp_path / "runs", "demo_s2", 2, [0.3, 0.6, 0.7], [0.2, 0.1, 0.2], finals[2]),
    ]


def test_mean_sd():
    assert format_mean_sd([0.8, 0.9]) == "0.850 ± 0.071"  # sd = |0.9 - 0.8| / sqrt(2) with n - 1
    assert format_mean_sd([None, 0.5, 0.7], digits=2) == "0.60 ± 0.14 (2 of 3)"  # a missing value is left out
    assert format_mean_sd([1.0]) == "1.000" and format_mean_sd([1.0, None]) == "1.000 (1 of 2)"
    assert format_mean_sd([]) == format_mean_sd([None]) == "n/a"


def test_several_runs_one_report_overlaid_with_mean_and_sd(three_seeds, tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    legends = {}
    save = Figure.savefig

    def spy(fig, path, *a, **k):
        legends[str(path).rsplit("/", 1)[-1]] = [[ln.get_label() for ln in ax.get_lines()] for ax in fig.axes]
        return save(fig, path, *a, **k)

    monkeypatch.setattr(Figure, "savefig", spy)
    out = tmp_path / "seeds"
    assert main(["report", *map(str, three_seeds), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    labels = ["demo (seed 0)", "demo_s1 (seed 1)", "demo_s2 (seed 2)"]
    assert legends["curves.png"] == [labels] * 3  # one held-out line per run in each panel
    assert legends["training.png"] == [labels] * 3
    doc = (out / "report.html").read_text()
    assert doc.count("data:image/png;base64,") == 2 and all(label in doc for label in labels)
    # run demo_s1: final accuracy 0.900; its accuracy curve 0.3, 0.9, 0.9 peaks first at step 10
    assert "<td>0.900</td>" in doc and "<td>0.900 (10)</td>" in doc
    # final accuracy 0.8, 0.9, 0.7: mean 0.8, sd 0.1; final length 45, 50, 40: mean 45, sd 5
    assert "0.800 ± 0.100" in doc and "45.000 ± 5.000" in doc
    # peak reflection 0.6 (step 10), 0.5 (step 10), 0.2 (steps 0 and 20: the earliest, 0)
    assert "<td>0.200 (0)</td>" in doc and "0.433 ± 0.208" in doc
    assert not any((run / "report.html").exists() for run in three_seeds)  # the runs are left as they were


def test_default_folder_a_plain_grpo_run_and_a_missing_curve(three_seeds, tmp_path):
    grpo = tmp_path / "runs" / "plain"
    grpo.mkdir()
    rows = [r for r in _metrics([0.1, 0.4, 0.5]) if r["step"] > 0]  # no step-0 evaluation, no reflection curve
    _write(grpo / "metrics.jsonl", rows)
    html_path = make_runs_report([three_seeds[0], grpo])
    assert html_path == tmp_path / "runs" / "report-demo+plain" / "report.html"
    doc = html_path.read_text()
    assert "<td>plain</td>" in doc  # no config.yaml: no seed in the label
    assert "<td>0.500</td>" in doc and "<td>0.500 (20)</td>" in doc  # its last evaluation is its final number
    assert doc.count("<td>n/a</td>") == 2  # its reflection: neither a final value nor a curve


def test_bad_directories_fail_in_one_line_before_anything_is_written(three_seeds, tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    assert main(["report", str(three_seeds[0]), str(tmp_path / "empty"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not an r1 run directory" in err and len(err.strip().splitlines()) == 1
    assert main(["report", str(three_seeds[0]), str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(R1Error, match="given twice"):
        make_runs_report([three_seeds[0], three_seeds[1], three_seeds[0]], out)
    assert not out.exists()


def test_one_run_keeps_its_own_report_and_out_moves_it(three_seeds, tmp_path):
    assert make_report(three_seeds[0]) == three_seeds[0] / "report.html"
    one = (three_seeds[0] / "report.html").read_text()
    assert "Before and after RL" in one and "Final numbers" not in one
    assert make_report(three_seeds[1], tmp_path / "elsewhere") == tmp_path / "elsewhere" / "report.html"
    assert (tmp_path / "elsewhere" / "curves.png").is_file() and not (three_seeds[1] / "report.html").exists()


def test_malformed_files_fail_in_one_line_naming_them(three_seeds, tmp_path, capsys):
    out = tmp_path / "out"
    metrics = three_seeds[1] / "grpo" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 21, "eval/acc')  # a run killed mid-line
    assert main(["report", str(three_seeds[0]), str(three_seeds[1]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{metrics}:22: malformed JSON" in err and len(err.strip().splitlines()) == 1, err
    (three_seeds[2] / "summary.json").write_text("{not json")
    assert main(["report", str(three_seeds[2])]) == 2
    err = capsys.readouterr().err
    assert f"{three_seeds[2] / 'summary.json'}: malformed JSON" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not (three_seeds[2] / "report.html").exists()


def test_many_runs_default_folder_name_stays_short(tmp_path):
    runs = [fake_demo(tmp_path / "runs", f"demo-with-a-long-descriptive-name-{i:02d}", i, [0.3, 0.5, 0.6], None,
                      {"accuracy": 0.5, "response_length/mean": 30.0, "truncated_share": 0.0}) for i in range(8)]
    html_path = make_runs_report(runs)  # report-<eight names> would pass the file system's 255 bytes
    assert html_path == tmp_path / "runs" / "report-8-runs" / "report.html"
    two = make_runs_report(runs[:2])
    assert two.parent.name == f"report-{runs[0].name}+{runs[1].name}"


def test_rows_without_a_step_are_skipped(three_seeds, tmp_path):
    from r1.train.metrics import curve_peak

    rows = [{"step": 0, "eval/accuracy": 0.2}, {"eval/accuracy": 0.9}, {"step": True, "eval/accuracy": 0.8},
            {"step": 10, "eval/accuracy": 0.5}]
    assert curve_peak(rows, "eval/accuracy") == (0.5, 10)  # not 0.9 from the row without a step
    metrics = three_seeds[0] / "grpo" / "metrics.jsonl"
    metrics.write_text('{"note": "written by another tool", "eval/accuracy": 1.0, "reward/total": 1.0}\n'
                       + metrics.read_text() + '{"eval/accuracy": 1.0}\n')
    html_path = make_runs_report([three_seeds[0]], out_dir=tmp_path / "one")
    assert html_path.is_file() and "0.800 (10)" in html_path.read_text()  # the peak of the rows with a step
    grpo = tmp_path / "runs" / "stepless"
    grpo.mkdir()
    _write(grpo / "metrics.jsonl", [{"eval/accuracy": 1.0}])
    with pytest.raises(R1Error, match=r"stepless/metrics.jsonl has no row with a step"):
        make_runs_report([grpo])
