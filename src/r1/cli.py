"""Command line: ``r1 <command> -c CONFIG [key=value ...]``. Thin: parse → build config → one library call.

User errors (:class:`r1.errors.R1Error`) print as one line on stderr with exit code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from r1.errors import R1Error


def _config_args(p: argparse.ArgumentParser, resumable: bool = True) -> None:
    p.add_argument("-c", "--config", help="YAML config file (see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-5 run.steps=50")
    if resumable:
        p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")


def _load(schema, args) -> object:
    from r1.config import load_config

    config = args.config
    if getattr(args, "resume", None):
        saved = Path(args.resume) / "config.yaml"
        if not saved.is_file():
            raise R1Error(f"--resume: {args.resume} is not a run directory (no config.yaml)")
        if config is not None:
            raise R1Error("--resume takes its config from the run directory; drop -c (overrides are allowed)")
        config = saved
    elif config is None:
        from r1.config_help import EXAMPLES

        raise R1Error(f"missing -c CONFIG (e.g. -c {EXAMPLES.get(args.command, EXAMPLES['grpo'])})")
    return load_config(schema, config, args.overrides)


def cmd_grpo(args) -> int:
    from r1.config import GRPOConfig
    from r1.train.grpo import train_grpo

    cfg = _load(GRPOConfig, args)
    train_grpo(cfg, resume=args.resume)
    return 0


def cmd_sft(args) -> int:
    from r1.config import SFTConfig
    from r1.train.sft import train_sft

    cfg = _load(SFTConfig, args)
    train_sft(cfg, resume=args.resume)
    return 0


def cmd_rm(args) -> int:
    from r1.config import RMConfig
    from r1.train.rm import train_rm

    train_rm(_load(RMConfig, args), resume=args.resume)
    return 0


def cmd_demo(args) -> int:
    from r1.config import load_demo_config
    from r1.pipeline.demo import run_demo

    run_demo(load_demo_config(args.config, args.overrides))
    return 0


def cmd_report(args) -> int:
    from r1.report import make_report, make_runs_report

    if len(args.run_dirs) == 1:
        print(make_report(args.run_dirs[0], args.out))
    else:
        print(make_runs_report(args.run_dirs, args.out))
    return 0


def cmd_eval(args) -> int:
    from r1.config import EvalConfig
    from r1.eval import evaluate

    # the short form `r1 eval -c X model=PATH` (the README's): a bare model=... names the model path
    args.overrides = [f"model.path={o[len('model='):]}" if o.startswith("model=") else o for o in args.overrides]
    evaluate(_load(EvalConfig, args))
    return 0


def cmd_generate(args) -> int:
    from r1.config import GenerateConfig
    from r1.generate_data import run_generate

    run_generate(_load(GenerateConfig, args))
    return 0


def cmd_pipeline(args) -> int:
    from r1.pipeline.runner import run_pipeline

    if args.config is None:
        raise R1Error("missing -c PIPELINE (e.g. -c configs/pipeline/smoke.yaml)")
    run_pipeline(args.config, args.overrides, from_stage=args.from_stage)
    return 0


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    _config_args(p, resumable=False)
    p.epilog = (
        "example: r1 pipeline -c configs/pipeline/smoke.yaml (seconds), configs/pipeline/distill.yaml (Table 6)\n\n"
        "pipeline file: name, out_dir, cache_dir, seed/threads/progress (every stage's run.*), vars, report,\n"
        "stages: {NAME: {command: pretrain|sft|grpo|rm|generate|eval, config: FILE[#section], set: {key: value},\n"
        "cache, enabled, label}}; ${stages.NAME.output} is an earlier stage's output. Overrides: seed=1,\n"
        "stages.NAME.set.optim.lr=1e-4, vars.teacher=PATH. A rerun skips finished stages (see r1.pipeline.runner)."
    )
    p.add_argument("--from", dest="from_stage", metavar="STAGE",
                   help="redo this stage and every stage reading from it (default: skip finished stages)")


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise R1Error(f"{flag} takes comma-separated integers, e.g. 1,4,16; got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise R1Error(f"{flag} takes positive integers, got {text!r}")
    return values


def _grade_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="task name (math, gpqa read any file given with --data)")
    p.add_argument("--completions", required=True, metavar="FILE.jsonl", help='lines {"id": ..., "completion": ...}')
    p.add_argument("--data", metavar="PROBLEMS.jsonl", help="problems in the benchmark schema (default: the task's)")
    p.add_argument("--split", help="task split (default: the benchmark's evaluation split)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/grade/<completions file name>)")
    p.add_argument("--pass-k", metavar="K,K", help="ks of pass@k (default: 1,2,4,... up to samples per problem)")
    p.add_argument("--workers", type=int, default=0, help="grading processes (default 0: in this process)")
    p.add_argument("--only-given", action="store_true",
                   help="metrics over the problems that have completions only (default: missing ones count as wrong)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_grade(args) -> int:
    from r1.eval import grade_file

    grade_file(
        args.task,
        args.completions,
        data=args.data,
        out_dir=args.out,
        split=args.split,
        pass_ks=_int_list(args.pass_k, "--pass-k"),
        workers=args.workers,
        progress=not args.no_progress,
        only_given=args.only_given,
    )
    return 0


def _decontaminate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", required=True, metavar="FILE.jsonl", help="training JSONL to check")
    p.add_argument("--benchmarks", help="comma-separated benchmark tasks (default: all benchmarks)")
    p.add_argument("--ngram", type=int, default=8, help="n-gram length in words (default 8)")
    p.add_argument("--field", action="append", dest="fields", help="record field to read (repeat; default: problem)")
    p.add_argument("--out", metavar="FILTERED.jsonl", help="write the records without overlap here")
    p.add_argument("--report", metavar="REPORT.json", help="write the full report (ids, line numbers) here")


def cmd_decontaminate(args) -> int:
    from r1.eval.decontaminate import decontaminate_file

    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()] if args.benchmarks else None
    decontaminate_file(
        args.train, names, n=args.ngram, fields=args.fields, out_path=args.out, report_path=args.report
    )
    return 0


#: Commands whose arguments are flags rather than ``-c CONFIG key=value``.
_ARGUMENTS = {"grade": _grade_args, "decontaminate": _decontaminate_args, "pipeline": _pipeline_args}

COMMANDS = {
    "grpo": (cmd_grpo, "GRPO reinforcement learning (R1-Zero, reasoning RL)", True),
    "pretrain": (cmd_sft, "train a tiny base model from scratch (causal LM on a generated corpus)", True),
    "sft": (cmd_sft, "supervised fine-tuning (cold start, distillation), completion-only loss", True),
    "rm": (cmd_rm, "train a reward model on preference pairs (Bradley-Terry loss), held-out pairwise accuracy", True),
    "demo": (cmd_demo, "R1-Zero self-evolution in miniature: pretrain, evaluate, GRPO, evaluate, report", False),
    "report": (cmd_report, "PNG plots and report.html of a GRPO or demo run directory (or of several, overlaid)",
               False),
    "eval": (cmd_eval, "evaluate a model: k samples per problem, pass@1 ± s.e., pass@k, cons@k (resumable)", False),
    "generate": (cmd_generate, "rejection sampling: k samples per prompt, graded, filtered, written as SFT data", False),
    "pipeline": (cmd_pipeline, "stages (pretrain, sft, grpo, rm, generate, eval) as one resumable run + report", False),
    "grade": (cmd_grade, "grade completions made elsewhere with r1's graders and metrics", False),
    "decontaminate": (cmd_decontaminate, "n-gram overlap between a training JSONL and the benchmarks", False),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r1", description="DeepSeek-R1 training, distillation and evaluation")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    from r1 import __version__

    parser.add_argument("--version", action="version", version=f"r1 {__version__}")
    from r1.config_help import CommandParser

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name, (fn, help_, resumable) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_, command=name)
        p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
        if name in _ARGUMENTS:
            _ARGUMENTS[name](p)
        elif name == "report":
            p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                           help="a GRPO run directory or a demo run directory; several (e.g. one per seed): one "
                                "report whose curves overlay them all, with each run's final numbers and mean ± sd")
            p.add_argument("--out", metavar="DIR", help="write the report here (default: the run directory; for "
                                                        "several runs, report-<name>+<name>... beside them)")
        else:
            _config_args(p, resumable)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):  # progress lines reach a log file as they happen
        sys.stdout.reconfigure(line_buffering=True)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except R1Error as e:
        if args.debug:
            raise
        print(f"r1 {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"r1 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
