"""A pipeline's results side by side: every eval stage's metrics (table + plot), every stage's time and status, and
links to each stage's own report. Written as ``<run_dir>/report.html`` (self-contained) and printed as a table.

The time "to make the model" of an eval row is the sum of the seconds of every stage its model depends on
(transitively; a shared teacher counts in every arm that uses it), as recorded in ``pipeline.json``.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from r1.report import _table

_DEFAULT_METRICS = ("task/reflection",)


def _upstream(stages: dict, name: str) -> list[str]:
    """Every stage ``name`` depends on, transitively (without itself)."""
    out: list[str] = []
    todo = list(stages[name].deps)
    while todo:
        d = todo.pop()
        if d not in out and d in stages:
            out.append(d)
            todo.extend(stages[d].deps)
    return out


def eval_rows(pipe, state: dict) -> list[dict[str, Any]]:
    """One row per (eval stage, benchmark) that has ``results.json``."""
    by_name = {s.name: s for s in pipe.stages}
    recs = state.get("stages", {})
    rows = []
    for s in pipe.stages:
        if s.command != "eval" or not s.enabled or not (s.dir / "results.json").is_file():
            continue
        results = json.loads((s.dir / "results.json").read_text())
        ups = _upstream(by_name, s.name)
        model_seconds = sum(recs.get(u, {}).get("seconds", 0.0) for u in ups)
        for bench, b in results.get("benchmarks", {}).items():
            m = b.get("metrics", {})
            rows.append({
                "stage": s.name, "label": s.label, "benchmark": bench, "model": s.cfg.model.path,
                "pass@1": m.get("pass@1"), "pass@1_stderr": m.get("pass@1_stderr"),
                "num_problems": m.get("num_problems"), "samples_per_problem": m.get("samples_per_problem"),
                "length_tokens": m.get("length_tokens"), "truncated_share": m.get("truncated_share"),
                **{k: v for k, v in m.items() if k.startswith(("task/", "score/"))},
                "model_seconds": round(model_seconds, 1), "model_stages": sorted(ups),
                "eval_seconds": recs.get(s.name, {}).get("seconds"),
            })
    return rows


def _metric_keys(summary: dict, wanted: Any) -> list[str]:
    keys = list(wanted) if wanted else list(_DEFAULT_METRICS)
    return [k for k in keys if any(k in r for r in summary["evals"])]


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _eval_table_rows(summary: dict, metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    headers = ["model", "benchmark", "pass@1 ± s.e.", "length", *[m.split("/", 1)[-1] for m in metrics],
               "model time"]
    rows = []
    for r in summary["evals"]:
        p, se = r.get("pass@1"), r.get("pass@1_stderr")
        rows.append([
            r["label"], r["benchmark"], f"{p:.3f} ± {se:.3f}" if p is not None and se is not None else _fmt(p),
            _fmt(r.get("length_tokens"), 1), *[_fmt(r.get(m)) for m in metrics], f"{r['model_seconds']:.0f} s",
        ])
    return headers, rows


def print_table(summary: dict, metrics: Any = None) -> None:
    from rich.table import Table

    from r1.runs import console

    t = Table(title=f"pipeline {summary['pipeline']}: stages")
    for h in ("stage", "command", "status", "seconds"):
        t.add_column(h, justify="right" if h == "seconds" else "left")
    for s in summary["stages"]:
        t.add_row(s["name"], s.get("command", ""), s.get("status", ""), _fmt(s.get("seconds"), 1))
    console.print(t)
    if summary["evals"]:
        headers, rows = _eval_table_rows(summary, _metric_keys(summary, metrics))
        t = Table(title=f"pipeline {summary['pipeline']}: evaluations")
        for i, h in enumerate(headers):
            t.add_column(h, justify="left" if i < 2 else "right", no_wrap=i >= 2)
        for row in rows:
            t.add_row(*row)
        console.print(t)


def _plot(summary: dict, out: Path) -> Path | None:
    rows = [r for r in summary["evals"] if r.get("pass@1") is not None]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels) * len(benches) + 2), 4))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        xs, ys, es = [], [], []
        for j, b in enumerate(benches):
            r = next((r for r in rows if r["label"] == label and r["benchmark"] == b), None)
            if r is not None:
                xs.append(j + (i - (len(labels) - 1) / 2) * width)
                ys.append(r["pass@1"])
                es.append(r.get("pass@1_stderr") or 0.0)
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=label)
    ax.set_xticks(range(len(benches)), benches)
    ax.set_ylabel("pass@1 (± s.e.)")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _own_report(run_dir: Path, command: str, stage_dir: Path) -> str:
    """A link to what a stage writes about itself."""
    for name in ("report.html", "results.md", "summary.json", "metrics.jsonl"):
        p = stage_dir / name
        if p.is_file():
            rel = os.path.relpath(p, run_dir)
            return f'<a href="{html.escape(rel)}">{html.escape(name)}</a>'
    return ""


def write_report(pipe, summary: dict) -> Path:
    run_dir = pipe.run_dir
    metrics = _metric_keys(summary, pipe.report.get("metrics"))
    png = _plot(summary, run_dir / "evals.png")
    img = (f'<img alt="pass@1" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">'
           if png else "<p>No eval stage has results yet.</p>")
    stage_rows = []
    for s, st in zip(summary["stages"], pipe.stages):
        stage_rows.append([html.escape(s["name"]), html.escape(s.get("command", st.command)),
                           html.escape(s.get("status", "")), _fmt(s.get("seconds"), 1),
                           html.escape(", ".join(s.get("deps", []))), _own_report(run_dir, st.command, st.dir)])
    headers, rows = _eval_table_rows(summary, metrics)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>r1 pipeline: {html.escape(pipe.name)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}} img{{max-width:100%}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head><body>
<h1>r1 pipeline: {html.escape(pipe.name)}</h1>
<h2>Evaluations</h2>{_table(headers, [[html.escape(c) for c in r] for r in rows])}{img}
<p>Model time: the seconds of every stage the model depends on, shared stages counted in each row.</p>
<h2>Stages</h2>{_table(["stage", "command", "status", "seconds", "reads from", "its report"], stage_rows)}
</body></html>"""
    out = run_dir / "report.html"
    out.write_text(doc)
    return out


__all__ = ["eval_rows", "print_table", "write_report"]
