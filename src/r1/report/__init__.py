"""``r1 report RUN_DIR``: PNG plots and a self-contained ``report.html`` for a GRPO run or a demo run.

Plots (the paper's Figures 2/3 in miniature): accuracy, mean response length and reflection rate against RL step
(held-out evaluation where the run has it, training rollouts otherwise), reward parts, KL, entropy and clip
fraction. The HTML embeds the PNGs, a before/after table (``summary.json`` for a demo; first vs last evaluation for
a plain GRPO run) and sample completions before and after training.

``r1 report RUN1 RUN2 ... [--out DIR]`` (e.g. the demo with ``run.seed=0,1,2``) writes one ``report.html`` whose
curves overlay every run (one line each, labelled by directory name and seed) and a table of each run's final
numbers and held-out peaks with their mean ± sd over the runs, then each run's own before/after table.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
import os
import statistics
from typing import Any

from r1.data.jsonl import iter_jsonl
from r1.errors import R1Error
from r1.train.metrics import curve_peak, has_step

MAX_DIR_NAME = 128
"""Longest default folder name of a several-runs report (``report-<name>+<name>...``); longer: ``report-<n>-runs``.
File systems refuse names over 255 bytes."""

PANELS = (
    ("accuracy", "eval/accuracy", "accuracy"),
    ("mean response length (tokens)", "eval/response_length/mean", "response_length/mean"),
    ("reflection rate", "eval/task/reflection", "task/reflection"),
)
"""The curves figure's panels: (title, held-out curve, training-rollout curve)."""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of ``path`` ([] without the file); a malformed line is a one-line R1Error naming FILE:LINE."""
    if not path.is_file():
        return []
    return [rec for _, rec in iter_jsonl(path)]


def _read_json(path: Path) -> Any:
    """``path``'s JSON; a one-line R1Error naming the file when it is not JSON."""
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise R1Error(f"{path}: malformed JSON ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and has_step(r):
            xs.append(r["step"])
            ys.append(v)
    return xs, ys


def locate(run_dir: Path) -> dict[str, Any]:
    """Find the metrics and before/after samples of a demo directory or a GRPO run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise R1Error(f"run directory not found: {run_dir}")
    if (run_dir / "grpo" / "metrics.jsonl").is_file():  # a demo run
        grpo = run_dir / "grpo"
        before = _read_jsonl(run_dir / "eval_base.jsonl")
        after = _read_jsonl(run_dir / "eval_final.jsonl")
        summary = _read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else None
        if not isinstance(summary, dict) or "base" not in summary:
            summary = None  # r1 pipeline's own summary (the demo's stages run as a plain pipeline), not the demo's
    elif (run_dir / "metrics.jsonl").is_file():
        grpo = run_dir
        evals = sorted((run_dir / "samples").glob("eval_step_*.jsonl"))
        before = _read_jsonl(evals[0]) if evals else []
        after = _read_jsonl(evals[-1]) if len(evals) > 1 else []
        summary = None
    else:
        raise R1Error(f"{run_dir} has no metrics.jsonl (nor grpo/metrics.jsonl): not an r1 run directory")
    rows = [r for r in _read_jsonl(grpo / "metrics.jsonl") if has_step(r)]  # a row without a step is skipped
    if not rows:
        raise R1Error(f"{grpo / 'metrics.jsonl'} has no row with a step: the run has not logged a step yet")
    return {"rows": rows, "before": before, "after": after, "summary": summary, "seed": _seed(grpo)}


def _seed(grpo_dir: Path) -> int | None:
    """The run's seed from its resolved ``config.yaml`` (None when the file or the field is missing)."""
    import yaml

    try:
        seed = (yaml.safe_load((grpo_dir / "config.yaml").read_text()) or {}).get("run", {}).get("seed")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return seed if isinstance(seed, int) else None


def make_plots(rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_rows = [r for r in rows if r["step"] > 0 and "reward/total" in r]
    paths = []

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, eval_key, train_key) in zip(axes, PANELS):
        xs, ys = _series(train_rows, train_key)
        if xs:
            ax.plot(xs, ys, color="tab:blue", alpha=0.35, label="training rollouts")
        xs, ys = _series(rows, eval_key)
        if xs:
            ax.plot(xs, ys, "o-", color="tab:red", label="held-out eval")
        ax.set_title(title)
    paths.append(_save(fig, out_dir / "curves.png"))

    reward_keys = sorted({k for r in train_rows for k in r if k.startswith("reward/") and k != "reward/std"})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for k in reward_keys:
        xs, ys = _series(train_rows, k)
        axes[0].plot(xs, ys, label=k[len("reward/"):])
    axes[0].set_title("rewards (training rollouts)")
    axes[0].legend(fontsize=8)
    for ax, key, title in ((axes[1], "kl", "KL to reference"), (axes[2], "entropy", "entropy")):
        xs, ys = _series(train_rows, key)
        ax.plot(xs, ys, color="tab:green")
        ax.set_title(title)
    paths.append(_save(fig, out_dir / "training.png", legend=False))
    return paths


def _save(fig, path: Path, legend: bool = True) -> Path:
    """Label every panel's step axis, grid it (and give it a legend), write the figure to ``path`` and close it."""
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        if legend:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _before_after(found: dict) -> str:
    s = found["summary"]
    if s is not None:
        b, f = s["base"], s["final"]
        title = (
            f"{s['eval_prompts']} held-out problems × {s['eval_samples_per_prompt']} samples "
            f"(temperature {s['eval_temperature']}, top-p {s['eval_top_p']})"
        )
    else:
        evals = [r for r in found["rows"] if "eval/accuracy" in r]
        if len(evals) < 2:
            return "<p>No before/after evaluation in this run (set <code>eval.every</code>).</p>"
        b = {k[len("eval/"):]: v for k, v in evals[0].items() if k.startswith("eval/")}
        f = {k[len("eval/"):]: v for k, v in evals[-1].items() if k.startswith("eval/")}
        title = f"held-out evaluation at step {evals[0]['step']} and step {evals[-1]['step']}"
    keys = ["accuracy", "response_length/mean", "task/reflection", "truncated_share"]
    keys += sorted(k for k in b if k.startswith("task/mode/"))
    rows = [[html.escape(k), f"{b.get(k, float('nan')):.3f}", f"{f.get(k, float('nan')):.3f}"] for k in keys if k in b]
    return f"<p>{html.escape(title)}</p>" + _table(["metric", "before RL", "after RL"], rows)


def _samples(records: list[dict], n: int = 8) -> str:
    rows = [
        [html.escape(str(r.get("question", r.get("id")))), html.escape(str(r.get("answer", ""))),
         f"<pre>{html.escape(r.get('completion', ''))}</pre>", f"{r.get('score', 0):.0f}"]
        for r in records[:n]
    ]
    return _table(["question", "gold", "completion", "score"], rows) if rows else "<p>none</p>"


def _html(title: str, body: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>r1 report: {html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}} img{{max-width:100%}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
pre{{white-space:pre-wrap;margin:0;font-size:12px}}</style></head><body>
{body}
</body></html>"""


def _images(pngs: list[Path]) -> str:
    return "".join(
        f'<img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">' for p in pngs
    )


def make_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``curves.png``, ``training.png`` and ``report.html`` into ``out_dir`` (default: ``run_dir``); returns
    the HTML path."""
    run_dir = Path(run_dir)
    found = locate(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = make_plots(found["rows"], out_dir)
    doc = _html(run_dir.name, f"""<h1>r1 report: {html.escape(str(run_dir))}</h1>
<h2>Before and after RL</h2>{_before_after(found)}
<h2>During RL</h2>{_images(pngs)}
<h2>Sample completions before RL</h2>{_samples(found["before"])}
<h2>Sample completions after RL</h2>{_samples(found["after"])}""")
    out = out_dir / "report.html"
    out.write_text(doc)
    return out


def format_mean_sd(values: list[float | None], digits: int = 3) -> str:
    """``mean ± sd`` of the numbers in ``values`` (sample sd, n - 1): ``[0.8, 0.9]`` -> ``"0.850 ± 0.071"``; one
    number is shown alone, none is ``"n/a"``; None entries are left out and counted: ``"0.600 ± 0.141 (2 of 3)"``."""
    xs = [x for x in values if x is not None]
    if not xs:
        return "n/a"
    text = f"{statistics.mean(xs):.{digits}f}"
    if len(xs) > 1:
        text += f" ± {statistics.stdev(xs):.{digits}f}"
    return text if len(xs) == len(values) else f"{text} ({len(xs)} of {len(values)})"


def run_label(run_dir: Path, seed: int | None) -> str:
    """A run's name in legends and tables: its directory name and, when known, its seed."""
    return run_dir.name if seed is None else f"{run_dir.name} (seed {seed})"


def final_numbers(found: dict) -> dict[str, tuple[float | None, tuple[float, int] | None]]:
    """Each curves-panel metric's final value and the (peak, step) of its held-out curve. The final value is the
    demo's final evaluation (``summary.json``) or, for a plain GRPO run, its last held-out evaluation."""
    evals = [r for r in found["rows"] if "eval/accuracy" in r]
    if found["summary"] is not None:
        final = found["summary"]["final"]
    else:
        final = {k[len("eval/"):]: v for k, v in evals[-1].items() if k.startswith("eval/")} if evals else {}
    return {train_key: (final.get(train_key), curve_peak(found["rows"], eval_key)) for _, eval_key, train_key in PANELS}


def make_runs_plots(runs: list[tuple[str, list[dict]]], out_dir: Path) -> list[Path]:
    """``curves.png`` and ``training.png`` with one line per ``(label, metrics rows)`` run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, eval_key, train_key) in zip(axes, PANELS):
        held_out = True
        for i, (label, rows) in enumerate(runs):
            xs, ys = _series(rows, eval_key)
            if xs:
                ax.plot(xs, ys, "o-", color=f"C{i}", label=label)
            else:  # no held-out curve: the training rollouts
                held_out = False
                xs, ys = _series([r for r in rows if r["step"] > 0], train_key)
                ax.plot(xs, ys, color=f"C{i}", alpha=0.6, label=f"{label}, training rollouts")
        ax.set_title(f"{title} (held-out eval)" if held_out else title)
    paths = [_save(fig, out_dir / "curves.png")]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (key, title) in zip(axes, (("reward/total", "total reward (training rollouts)"), ("kl", "KL to reference"),
                                       ("entropy", "entropy"))):
        for i, (label, rows) in enumerate(runs):
            xs, ys = _series([r for r in rows if r["step"] > 0 and "reward/total" in r], key)
            ax.plot(xs, ys, color=f"C{i}", label=label)
        ax.set_title(title)
    paths.append(_save(fig, out_dir / "training.png"))
    return paths


def _runs_table(labels: list[str], numbers: list[dict]) -> str:
    headers = ["run"]
    for title, _, _ in PANELS:
        headers += [f"{title}: final", f"{title}: peak (step)"]
    rows = []
    for label, nums in zip(labels, numbers):
        row = [html.escape(label)]
        for final, peak in nums.values():
            row += ["n/a" if final is None else f"{final:.3f}", "n/a" if peak is None else f"{peak[0]:.3f} ({peak[1]})"]
        rows.append(row)
    spread = [f"mean ± sd ({len(labels)} runs)"]
    for _, _, key in PANELS:
        spread += [format_mean_sd([n[key][0] for n in numbers]),
                   format_mean_sd([n[key][1][0] if n[key][1] else None for n in numbers])]
    rows.append([f"<b>{c}</b>" for c in spread])
    return _table(headers, rows)


def make_runs_report(run_dirs: list[str | Path], out_dir: str | Path | None = None) -> Path:
    """One ``report.html`` (+ ``curves.png``, ``training.png``) for several runs, e.g. one demo per seed: the curves of
    every run overlaid, each run's final numbers and peaks with their mean ± sd, and each run's before/after table.
    Every directory is read before anything is written. ``out_dir`` defaults to ``report-<name>+<name>...`` in the
    runs' common parent folder (``report-<n>-runs`` when that name would pass :data:`MAX_DIR_NAME` bytes). Returns the
    HTML path."""
    dirs = [Path(d) for d in run_dirs]
    seen = [d.resolve() for d in dirs]
    for i, d in enumerate(seen):
        if d in seen[:i]:
            raise R1Error(f"run directory given twice: {dirs[i]}")
    found = [locate(d) for d in dirs]
    labels = [run_label(d, f["seed"]) for d, f in zip(dirs, found)]
    if len(set(labels)) < len(labels):  # same folder name under different parents
        labels = [run_label(d, f["seed"]).replace(d.name, str(d), 1) for d, f in zip(dirs, found)]
    if out_dir is None:
        name = "report-" + "+".join(d.name for d in seen)
        if len(name.encode()) > MAX_DIR_NAME:
            name = f"report-{len(seen)}-runs"
        out_dir = Path(os.path.commonpath(seen)) / name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = make_runs_plots([(label, f["rows"]) for label, f in zip(labels, found)], out_dir)
    each = "".join(f"<h3>{html.escape(label)}</h3>{_before_after(f)}" for label, f in zip(labels, found))
    doc = _html(f"{len(dirs)} runs", f"""<h1>r1 report: {len(dirs)} runs</h1>
<p>{"<br>".join(html.escape(str(d)) for d in dirs)}</p>
<h2>Final numbers and held-out peaks</h2>{_runs_table(labels, [final_numbers(f) for f in found])}
<h2>During RL</h2>{_images(pngs)}
<h2>Before and after RL, each run</h2>{each}""")
    out = out_dir / "report.html"
    out.write_text(doc)
    return out
