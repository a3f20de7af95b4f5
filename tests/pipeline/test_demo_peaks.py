"""The peak of each held-out curve during RL (``summary.json`` and the demo's printed table), on hand-made curves.

Run: ``python -m pytest tests/pipeline/test_demo_peaks.py -q``.
"""

from r1.pipeline.demo import curve_peaks, print_summary
from r1.runs import console
from r1.train.metrics import curve_peak


def _rows(**curves):
    """metrics.jsonl lines: a training row at every step 0..40, an eval row every 10 steps with the given values."""
    rows = []
    for step in range(41):
        row = {"step": step, "accuracy": 0.99, "task/reflection": 0.99}  # training rollouts: never the peak
        if step % 10 == 0:
            for key, values in curves.items():
                if values[step // 10] is not None:
                    row[f"eval/{key}"] = values[step // 10]
        rows.append(row)
    return rows


def test_the_peak_is_the_highest_point_and_a_tie_goes_to_the_earliest_step():
    rows = _rows(accuracy=[0.3, 0.5, 0.8, 0.7, 0.75], **{"task/reflection": [0.2, 0.6, 0.4, 0.6, 0.1]})
    assert curve_peak(rows, "eval/accuracy") == (0.8, 20)  # in the middle, not the last point
    assert curve_peak(rows, "eval/task/reflection") == (0.6, 10)  # 0.6 at steps 10 and 30: the earliest
    assert curve_peak(rows, "eval/nothing") is None


def test_a_falling_curve_peaks_at_step_0_and_a_null_point_is_skipped():
    rows = _rows(accuracy=[0.9, 0.5, None, 0.4, 0.2])
    rows[20]["eval/accuracy"] = None  # a non-finite value is logged as null
    assert curve_peak(rows, "eval/accuracy") == (0.9, 0)


def test_summary_peaks_and_the_printed_table(capsys):
    rows = _rows(accuracy=[0.3, 0.5, 0.8, 0.7, 0.75], **{"response_length/mean": [28, 52, 50, 46, 46]})
    peaks = curve_peaks(rows)
    assert peaks == {
        "peak_accuracy": 0.8, "peak_accuracy_step": 20,
        "peak_mean_length": 52, "peak_mean_length_step": 10,
        "peak_reflection_rate": None, "peak_reflection_rate_step": None,  # no held-out reflection curve
    }
    s = {"eval_prompts": 8, "eval_samples_per_prompt": 2, "base_accuracy": 0.25, "final_accuracy": 0.75,
         "base_mean_length": 28.0, "final_mean_length": 46.0, "base_reflection_rate": 0.2,
         "final_reflection_rate": 0.1, "pretrain_seconds": 0.0, "pretrain_cached": True, "rl_seconds": 3.0,
         "wall_seconds": 5.0, **peaks}
    with console.capture() as cap:
        print_summary(s)
    out = cap.get()
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 5}
    assert "peak during RL" in out
    assert "0.800 (20)" in lines["accuracy (pass@1)"] and "+50.0 pts" in lines["accuracy (pass@1)"]
    assert "52.000 (10)" in lines["mean response length"] and "+64%" in lines["mean response length"]
    assert "n/a" in lines["reflection rate"] and "-10.0 pts" in lines["reflection rate"]
