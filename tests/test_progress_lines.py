"""Progress outside a terminal: plain lines (step/total, rate, ETA, the caller's metrics) instead of rich's bar.

Run: ``python -m pytest -q tests/test_progress_lines.py -p no:cacheprovider``.
"""

import io
import re
import time

from rich.console import Console

from r1.runs import make_progress

LINE = re.compile(r"^train (\d+)/(\d+) ", re.M)


def fake_loop(progress, n=6, sleep=0.02, use_advance=False):
    """A long command in miniature: one task, a metric in the ``info`` field as the trainers pass it."""
    with progress:
        task = progress.add_task("train", total=n, info="")
        for i in range(n):
            time.sleep(sleep)
            if use_advance:  # r1.generate and r1.eval.grade advance without fields
                progress.advance(task, 1)
            else:
                progress.update(task, advance=1, info=f"loss {1 / (i + 1):.3f}")


def log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()  # not a terminal: what nohup, CI or `> log.txt` give
    return Console(file=out, highlight=False, width=80), out


def test_not_a_terminal_prints_plain_lines_with_step_total_and_metrics():
    console, out = log_console()
    fake_loop(make_progress(True, console=console, interval=0.01))
    text = out.getvalue()
    steps = [(int(a), int(b)) for a, b in LINE.findall(text)]
    assert len(steps) >= 3, text  # several lines while running, not just the last
    assert all(total == 6 for _, total in steps) and steps == sorted(steps)
    last = text.strip().splitlines()[-1]
    assert last.startswith("train 6/6 done in ") and "loss 0.167" in last, last
    assert "ETA" in text and "it/s" in text and "\x1b[" not in text  # plain text: no bar, no escape codes
    assert text.count(" done in ") == 1  # one final line per task


def test_lines_come_at_most_every_interval_and_once_at_the_end():
    console, out = log_console()
    fake_loop(make_progress(True, console=console, interval=3600), use_advance=True)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train 6/6 done in "), lines


def test_rate_and_eta_from_this_run_with_a_resumed_start():
    console, out = log_console()
    now = [0.0]
    progress = make_progress(True, console=console, interval=15, get_time=lambda: now[0])
    with progress:
        task = progress.add_task("grpo", total=20, completed=10, info="")  # resumed at step 10
        for _ in range(4):
            now[0] += 5.0  # 5 s a step
            progress.update(task, advance=1, info="reward 0.500")
    # line after 15 s (3 steps): 13/20, 0.2 steps/s over this run's 3 steps, 7 left -> 35 s
    assert out.getvalue().splitlines() == [
        "grpo 13/20 (65%) | 0:00:15 elapsed | ETA 0:00:35 | 5.00 s/it | reward 0.500",
        "grpo 14/20 (70%) | 0:00:20 elapsed | ETA 0:00:30 | 5.00 s/it | reward 0.500",  # stopped before the end
    ]


def test_a_terminal_keeps_the_rich_bar_and_no_plain_lines():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    fake_loop(make_progress(True, console=console, interval=0.01))
    text = out.getvalue()
    assert "6/6" in text  # the bar drew
    assert not LINE.search(text) and "done in" not in text and "ETA" not in text


def test_progress_false_stays_quiet_on_both():
    for terminal in (False, True):
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, width=100)
        fake_loop(make_progress(False, console=console, interval=0.01))
        assert out.getvalue() == ""


def test_sft_run_logs_its_final_line_when_stdout_is_a_file(tmp_path, capsys):
    from r1.config import SFTConfig, load_config
    from r1.train.sft import train_sft

    cfg = load_config(SFTConfig, None, [
        "model.path=tiny-qwen2", "data.task.params={digits: 2, num_train: 64, num_test: 16}",
        "data.task.template=plain", "data.num_examples=32", "data.examples_per_step=8", "data.max_length=64", "run.steps=2",
        "run.log_every=0", "run.threads=1", f"run.out_dir={tmp_path}", "run.name=lines",
    ])
    train_sft(cfg)
    out = capsys.readouterr().out  # pytest's capture is not a terminal
    assert re.search(r"^lines 2/2 done in \S+ \| .* \| loss \d", out, re.M), out


def test_brackets_in_a_run_name_or_metrics_are_text_not_markup():
    for terminal in (False, True):
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, width=120)
        with make_progress(True, console=console, interval=0) as progress:
            task = progress.add_task("run[/]x[bold", total=2, info="")
            progress.update(task, advance=2, info="[/] loss 0.5")
        assert "run[/]x[bold" in out.getvalue() and "[/] loss 0.5" in out.getvalue()
