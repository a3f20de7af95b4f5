"""``r1 report RUN_DIR``: PNG plots and a self-contained ``report.html`` for a GRPO run or a demo run.

Plots (the paper's Figures 2/3 in miniature): accuracy, mean response length and reflection rate against RL step
(held-out evaluation where the run has it, training rollouts otherwise), reward parts, KL, entropy and clip
fraction. The HTML embeds the PNGs, a before/after table (``summary.json`` for a demo; first vs last evaluation for
a plain GRPO run) and sample completions before and after training.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from r1.errors import R1Error


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)):
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
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else None
        if summary is not None and "base" not in summary:
            summary = None  # r1 pipeline's own summary (the demo's stages run as a plain pipeline), not the demo's
    elif (run_dir / "metrics.jsonl").is_file():
        grpo = run_dir
        evals = sorted((run_dir / "samples").glob("eval_step_*.jsonl"))
        before = _read_jsonl(evals[0]) if evals else []
        after = _read_jsonl(evals[-1]) if len(evals) > 1 else []
        summary = None
    else:
        raise R1Error(f"{run_dir} has no metrics.jsonl (nor grpo/metrics.jsonl): not an r1 run directory")
    rows = _read_jsonl(grpo / "metrics.jsonl")
    if not rows:
        raise R1Error(f"{grpo / 'metrics.jsonl'} is empty: the run has not logged a step yet")
    return {"rows": rows, "before": before, "after": after, "summary": summary}


def make_plots(rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_rows = [r for r in rows if r["step"] > 0 and "reward/total" in r]
    paths = []

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = [
        ("accuracy", "eval/accuracy", "accuracy"),
        ("mean response length (tokens)", "eval/response_length/mean", "response_length/mean"),
        ("reflection rate", "eval/task/reflection", "task/reflection"),
    ]
    for ax, (title, eval_key, train_key) in zip(axes, panels):
        xs, ys = _series(train_rows, train_key)
        if xs:
            ax.plot(xs, ys, color="tab:blue", alpha=0.35, label="training rollouts")
        xs, ys = _series(rows, eval_key)
        if xs:
            ax.plot(xs, ys, "o-", color="tab:red", label="held-out eval")
        ax.set_title(title)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "curves.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

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
    for ax in axes:
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out_dir / "training.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


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


def make_report(run_dir: str | Path) -> Path:
    """Write ``curves.png``, ``training.png`` and ``report.html`` into ``run_dir``; returns the HTML path."""
    run_dir = Path(run_dir)
    found = locate(run_dir)
    pngs = make_plots(found["rows"], run_dir)
    imgs = "".join(
        f'<img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">' for p in pngs
    )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>r1 report: {html.escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}} img{{max-width:100%}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
pre{{white-space:pre-wrap;margin:0;font-size:12px}}</style></head><body>
<h1>r1 report: {html.escape(str(run_dir))}</h1>
<h2>Before and after RL</h2>{_before_after(found)}
<h2>During RL</h2>{imgs}
<h2>Sample completions before RL</h2>{_samples(found["before"])}
<h2>Sample completions after RL</h2>{_samples(found["after"])}
</body></html>"""
    out = run_dir / "report.html"
    out.write_text(doc)
    return out
