"""``r1 pipeline -c configs/pipeline/<x>.yaml``: a list of stages (``r1``'s own commands) run as one resumable run.

A pipeline file names the run and its stages, in the order they run::

    name: distill                    # artifacts under <out_dir>/<name>/<stage>/
    out_dir: runs
    seed: 0                          # optional: run.seed / run.threads / run.progress of every stage
    vars: {teacher: "${stages.teacher.output}"}   # free values to interpolate (a user may override them)
    stages:
      sft:
        command: sft                 # pretrain | sft | grpo | rm | generate | eval (STAGES)
        config: configs/distill/sft.yaml        # the command's own config file(s) (FILE#section: a part), optional
        set: {model.path: tiny-qwen2, data.path: "${stages.generate.output}"}   # keys over the file(s)
      ...

``${stages.<name>.output}`` is an earlier stage's output (a model for training stages, ``data.jsonl`` for generate,
the run directory for eval) and ``${stages.<name>.dir}`` its directory; the runner fills them in (OmegaConf
interpolation). Each stage's config is built and validated before any stage runs (a stage's paths that an earlier
stage makes are checked when it starts).

Resumption: ``<out_dir>/<name>/pipeline.json`` records each stage's config hash (its resolved config without the
``run.*`` fields that change only how it looks, plus the hashes of the stages it reads from) and whether it
finished. A rerun skips a finished stage whose hash is unchanged; a changed stage runs again, and with it every stage
that reads from it; an interrupted stage continues (training from its latest checkpoint, generate and eval from the
samples on disk); ``--from STAGE`` redoes that stage and every stage reading from it. An earlier run of a stage is moved
aside (``<stage>.old-<time>``), never deleted. ``cache: true`` keeps a stage's output under ``cache_dir`` keyed by
its hash, shared by every pipeline (``r1 demo``'s base model lives there too).

At the end, ``summary.json`` and ``report.html`` put every eval stage side by side (pass@1 ± s.e., length, the task's
own metrics, the time it took to make each model) with a plot, and link each stage's own report.
Left out: stages in parallel, and hashing the contents of input files a user names (a changed file under the same
path needs ``--from``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from r1.config import load_config, problems, read_yaml_mapping, save_config, validate
from r1.errors import R1Error
from r1.pipeline.stages import STAGES, StageKind, config_key

PIPELINE_KEYS = ("name", "description", "out_dir", "cache_dir", "seed", "threads", "progress", "vars", "stages",
                 "report")
STAGE_KEYS = ("command", "config", "set", "cache", "enabled", "label", "description")
_STAGE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_RESERVED = ("configs",)  # a folder of the pipeline's run directory
_REF = re.compile(r"\$\{\s*(stages|vars)\.([A-Za-z0-9_]+)")


@dataclass
class Stage:
    """One stage, resolved: its command, config, hash and where its artifacts go."""

    name: str
    command: str
    kind: StageKind
    cfg: Any
    deps: list[str]
    """Stages whose outputs this one reads (directly or through ``vars``)."""
    hash: str
    dir: Path
    output: Path
    cached: bool
    enabled: bool
    label: str


@dataclass
class Pipeline:
    name: str
    run_dir: Path
    stages: list[Stage]
    resolved: dict
    """The pipeline file with every interpolation filled in (saved as ``pipeline.yaml``)."""
    report: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------- loading
def load_pipeline(path: str | Path, overrides: list[str] | None = None, merge: dict | None = None) -> Pipeline:
    """Read a pipeline file, merge ``merge`` over it (a mapping of the same shape; ``r1 demo`` passes its settings
    so), apply dotted overrides (``seed=1``, ``stages.sft.set.optim.lr=1e-4``, ``vars.teacher=/path/to/model``),
    build and validate every stage's config. Nothing is written."""
    raw = read_yaml_mapping(path)
    where = str(path)
    _unknown(raw, PIPELINE_KEYS, "", where)
    conf = OmegaConf.create(raw)
    if merge:
        conf = OmegaConf.merge(conf, OmegaConf.create(merge))
    for ov in overrides or []:
        key, eq, value = ov.partition("=")
        if not eq or not key.strip():
            raise R1Error(f"override {ov!r} must look like key=value (e.g. seed=1 or stages.sft.set.run.steps=10)")
        try:
            OmegaConf.update(conf, key.strip(), OmegaConf.from_dotlist([f"v={value}"])["v"], merge=True)
        except OmegaConfBaseException as e:
            raise R1Error(f"cannot apply override {ov!r}: {str(e).splitlines()[0]}") from None
    plain = OmegaConf.to_container(conf, resolve=False)
    _unknown(plain, PIPELINE_KEYS, "", where)
    name = plain.get("name")
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise R1Error(f"{where}: 'name' must be a folder name of letters, digits, '_', '-' and '.' (the run folder), "
                      f"got {name!r}")
    stages_raw = plain.get("stages")
    if not isinstance(stages_raw, dict) or not stages_raw:
        raise R1Error(f"{where}: 'stages' must be a mapping of stage names to stages, in the order they run")
    for key in ("vars", "report"):
        if not isinstance(plain.get(key) or {}, dict):
            raise R1Error(f"{where}: '{key}' must be a mapping, got {plain[key]!r}")
    report = dict(plain.get("report") or {})
    _unknown(report, ("metrics",), "report.", where)
    if not isinstance(report.get("metrics", []), list) or not all(isinstance(m, str) for m in report.get("metrics", [])):
        raise R1Error(f"{where}: report.metrics must be a list of metric names, e.g. [task/reflection]")
    for key in ("out_dir", "cache_dir"):
        if key in plain and (not isinstance(plain[key], str) or not plain[key].strip()):
            raise R1Error(f"{where}: '{key}' must be a folder path, got {plain[key]!r}")
    out_dir = Path(plain.get("out_dir", "runs"))
    cache_dir = Path(plain.get("cache_dir") or out_dir / "_cache")
    run_dir = out_dir / name
    common = {k: plain[k] for k in ("seed", "threads", "progress") if plain.get(k) is not None}

    built: list[Stage] = []
    for sname, sraw in stages_raw.items():
        built.append(_build_stage(conf, sname, sraw, built, common, run_dir, cache_dir, where))
    for s in built:
        if not s.enabled:
            users = [t.name for t in built if t.enabled and s.name in t.deps]
            if users:
                raise R1Error(f"{where}: stage {s.name!r} is disabled but {users[0]!r} reads its output")
    _check_environment(built)
    try:
        resolved = OmegaConf.to_container(conf, resolve=True)
    except OmegaConfBaseException as e:
        raise R1Error(f"{where}: {str(e).splitlines()[0]}") from None
    return Pipeline(name, run_dir, built, resolved, report)


def _unknown(d: dict, valid: tuple[str, ...], prefix: str, where: str) -> None:
    for k in d:
        if k not in valid:
            raise R1Error(f"unknown key {prefix + str(k)!r} in {where}; valid: {', '.join(valid)}")


def _refs(value: Any, kind: str) -> set[str]:
    return {n for k, n in _REF.findall(json.dumps(value)) if k == kind}


def _deps(sraw: dict, conf: Any, seen: Optional[set] = None) -> set[str]:
    """Stages a stage reads from: ``${stages.X...}`` in it, and in the ``vars`` it names (recursively)."""
    out = _refs(sraw, "stages")
    seen = set() if seen is None else seen
    plain_vars = OmegaConf.to_container(conf, resolve=False).get("vars") or {}
    for v in _refs(sraw, "vars") - seen:
        seen.add(v)
        if v in plain_vars:
            out |= _deps(plain_vars[v], conf, seen)
    return out


def _nest(set_: dict, here: str = "set") -> dict:
    """``{"model.path": x, "optim": {"lr": y}}`` → ``{"model": {"path": x}, "optim": {"lr": y}}``."""
    out: dict = {}
    for k, v in set_.items():
        parts = str(k).split(".")
        if any(p.isdigit() for p in parts):
            raise R1Error(f"{here}: set key {k!r} names a list item; give the whole list instead "
                          "(e.g. rewards: [{name: accuracy}, {name: format, weight: 0.5}])")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise R1Error(f"set: {k!r} goes below {p!r}, which is given a plain value")
        if isinstance(v, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = {**node[parts[-1]], **_nest(v, here)}
        else:
            node[parts[-1]] = _nest(v, here) if isinstance(v, dict) else v
    return out


def _build_stage(conf, sname: str, sraw: Any, before: list[Stage], common: dict, run_dir: Path, cache_dir: Path,
                 where: str) -> Stage:
    here = f"{where}: stage {sname!r}"
    if not isinstance(sname, str) or not _STAGE_NAME.fullmatch(sname) or sname in _RESERVED:
        raise R1Error(f"{here}: a stage name is letters, digits and _ (it is a folder and an interpolation key; "
                      f"not {', '.join(_RESERVED)}; quote YAML words such as on/off/yes/no)")
    if not isinstance(sraw, dict):
        raise R1Error(f"{here} must be a mapping with 'command' (and 'config', 'set', ...)")
    _unknown(sraw, STAGE_KEYS, f"stages.{sname}.", where)
    for key in ("enabled", "cache"):
        if key in sraw and not isinstance(sraw[key], bool):
            raise R1Error(f"{here}: '{key}' must be true or false, got {sraw[key]!r}")
    files_raw = sraw.get("config", [])
    if not (isinstance(files_raw, str) or (isinstance(files_raw, list)
                                           and all(isinstance(f, str) for f in files_raw))):
        raise R1Error(f"{here}: 'config' must be a file path (FILE or FILE#section) or a list of them")
    command = sraw.get("command")
    if command not in STAGES:
        raise R1Error(f"{here}: unknown command {command!r}; valid: {', '.join(STAGES.names())}")
    kind = STAGES.get(command)
    names = [s.name for s in before]
    if not isinstance(sraw.get("set") or {}, dict):
        raise R1Error(f"{here}: 'set' must be a mapping of config keys to values")
    # the stages it reads from, in the keys that take effect (an override of model.path replaces "model.path")
    deps = sorted(_deps({**sraw, "set": _nest(sraw.get("set") or {}, here)}, conf))
    for d in deps:
        if d not in names:
            later = " (stages run in the order they are listed)" if d in (conf.stages or {}) else ""
            raise R1Error(f"{here} reads ${{stages.{d}...}}, which is not a stage before it{later}")
    try:
        node = OmegaConf.to_container(conf.stages[sname], resolve=True)
    except OmegaConfBaseException as e:
        raise R1Error(f"{here}: {str(e).splitlines()[0]}") from None
    files = node.get("config") or []
    files = [files] if isinstance(files, str) else list(files)
    set_ = node.get("set") or {}
    if not isinstance(set_, dict):
        raise R1Error(f"{here}: 'set' must be a mapping of config keys to values")
    home = Path(where).resolve().parent
    layers: list = [*(_config_layer(f, home) for f in files), {"run": dict(common)} if common else {},
                    _nest(set_, here)]
    try:
        cfg = load_config(kind.schema_class(), layers, where=f"stages.{sname} of {where} (its config files and set)")
    except R1Error as e:
        raise R1Error(f"stage {sname!r}: {e}") from None
    by_name = {s.name: s for s in before}
    key = config_key(cfg, kind.irrelevant)
    if deps:
        key = {"config": key, "after": {d: by_name[d].hash for d in deps}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    cached = bool(node.get("cache", False))
    if cached:
        # the same folder name r1 demo uses for its base model (r1.pipeline.demo.ensure_base_model)
        sdir = cache_dir / f"{kind.cache_prefix or command}-{digest}"
    else:
        sdir = run_dir / sname
    cfg.run.out_dir, cfg.run.name = str(sdir.parent), sdir.name
    output = kind.output(sdir)
    # later stages interpolate these
    OmegaConf.update(conf, f"stages.{sname}.output", str(output), force_add=True)
    OmegaConf.update(conf, f"stages.{sname}.dir", str(sdir), force_add=True)
    return Stage(sname, command, kind, cfg, deps, digest, sdir, output, cached, bool(node.get("enabled", True)),
                 str(node.get("label") or sname))


def _config_layer(spec: Any, home: Path) -> dict:
    """A stage's ``config`` entry: a YAML file, or ``FILE#section`` for one section of it (``r1 demo``'s settings
    file holds its pretrain and grpo configs as sections: ``demo.yaml#grpo``). A relative path is looked up next to
    the pipeline file first (``home``: a shipped pipeline finds its stage configs from any folder), then in the
    current folder."""
    path, _, section = str(spec).partition("#")
    if not Path(path).is_absolute() and (home / path).is_file():
        path = str(home / path)  # next to the pipeline file first: a user's own demo.yaml in "." is not the demo's
    data = read_yaml_mapping(path)
    for part in filter(None, section.split(".")):
        if not isinstance(data, dict) or not isinstance(data.get(part), dict):
            raise R1Error(f"config {spec}: {path} has no mapping {section!r}")
        data = data[part]
    return data


def _check_environment(stages: list[Stage]) -> None:
    """This machine's files and devices for every enabled stage; a path an earlier stage makes is checked later."""
    for i, s in enumerate(stages):
        if not s.enabled:
            continue
        made = [t.dir for t in stages[:i] if t.enabled]
        for problem in problems(s.cfg, environment=True):
            paths = [Path(p) for p in re.findall(r"=['\"]([^'\"]+)['\"]", problem)]
            if not any(m == p or m in p.parents for p in paths for m in made):
                raise R1Error(f"stage {s.name!r}: {problem}")


# ------------------------------------------------------------------------------------------------------- running
def run_pipeline(path: str | Path, overrides: list[str] | None = None, from_stage: Optional[str] = None) -> Path:
    """Run (or continue) the pipeline in ``path``; returns its run directory."""
    pipe = load_pipeline(path, overrides)
    execute(pipe, from_stage)
    return pipe.run_dir


def execute(pipe: Pipeline, from_stage: Optional[str] = None) -> dict:
    """Run (or continue) a loaded pipeline: every stage not finished with its current config, then the summary and
    report. Returns the summary (``summary.json``)."""
    from r1.runs import console

    names = [s.name for s in pipe.stages]
    if from_stage is not None and from_stage not in names:
        raise R1Error(f"--from: no stage {from_stage!r}; stages: {', '.join(names)}")
    redo = [] if from_stage is None else [from_stage, *_dependents(pipe, from_stage)]
    run_dir = pipe.run_dir
    state_path = run_dir / "pipeline.json"
    if holds_other_files(run_dir):
        raise R1Error(f"{run_dir} exists and is not a pipeline run directory (no pipeline.json); pick another name")
    run_dir.mkdir(parents=True, exist_ok=True)
    with _locked(run_dir / ".lock", wait=False, what=f"pipeline run {run_dir}"):
        return _execute(pipe, redo, state_path)


def _dependents(pipe: Pipeline, name: str) -> list[str]:
    """The stages that read from ``name``, directly or through others, in pipeline order."""
    out: set[str] = {name}
    for s in pipe.stages:
        if any(d in out for d in s.deps):
            out.add(s.name)
    return [s.name for s in pipe.stages if s.name in out and s.name != name]


def _mark_redo(state: dict, names: list[str]) -> None:
    for n in names:
        if n in state["stages"]:
            state["stages"][n]["status"] = "redo"


def _execute(pipe: Pipeline, redo: list[str], state_path: Path) -> dict:
    from r1.runs import console

    run_dir = pipe.run_dir
    names = [s.name for s in pipe.stages]
    state = _read_state(state_path)
    _mark_redo(state, redo)  # --from: remembered, so a rerun after an interruption still redoes them
    _write_state(state_path, state)
    (run_dir / "pipeline.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(pipe.resolved)))
    save_stage_configs(pipe, run_dir / "configs")  # what `r1 <command> -c` would run, stage by stage
    t_start = time.perf_counter()
    for i, s in enumerate(pipe.stages):
        # a cached stage is shared by every pipeline: one process makes it while the others wait, then reuse it
        lock = (_locked(s.dir.with_name(s.dir.name + ".lock"), wait=True, what=str(s.dir))
                if s.cached and s.enabled else None)  # a disabled stage never waits for another run
        with lock or contextlib.nullcontext():
            _run_stage(i, s, pipe, state, state_path)
    summary = write_summary(pipe, state, time.perf_counter() - t_start)
    from r1.pipeline.report import print_table

    print_table(summary, pipe.report.get("metrics"))
    console.print(f"pipeline {pipe.name} finished; report: {run_dir / 'report.html'}", soft_wrap=True)
    return summary


def holds_other_files(run_dir: Path) -> bool:
    """True when ``run_dir`` holds files but no ``pipeline.json`` (what a start that failed before its first stage
    leaves — the lock, ``pipeline.yaml``, ``configs/`` — does not count)."""
    if not run_dir.is_dir() or (run_dir / "pipeline.json").is_file():
        return False
    return any(p.name not in (".lock", "pipeline.yaml", "configs") for p in run_dir.iterdir())


def _run_stage(i: int, s: Stage, pipe: Pipeline, state: dict, state_path: Path) -> None:
    """Skip, continue or (re)run one stage, recording it in ``state``."""
    from r1.runs import console

    names = [t.name for t in pipe.stages]
    head = f"stage {i + 1}/{len(names)} [bold]{s.name}[/] (r1 {s.command})"
    if not s.enabled:
        console.print(f"{head}: disabled, skipped")  # its record stays: enabled again, it is still done
        return
    rec = state["stages"].get(s.name, {})
    redo = rec.get("status") == "redo"
    if not redo and _finished(s, rec):
        console.print(f"{head}: done (config hash {s.hash}), skipped — {s.output}", soft_wrap=True)
        state["stages"][s.name] = {**rec, **_where(s), "status": "done", **_cache_record(s)}
        return
    interrupted = (not redo and rec.get("status") == "running" and rec.get("hash") == s.hash
                   and s.dir.exists() and s.kind.resumable(s.dir))
    if s.cached and not redo and s.dir.exists() and s.kind.resumable(s.dir):
        interrupted = True  # the cache folder is named by the hash: what is in it has this config
    console.rule(head)
    if rec.get("status") == "redo":
        console.print(f"{s.name}: redone (--from)")
    elif rec.get("status") == "done" and rec.get("hash") != s.hash and not redo:
        console.print(f"{s.name}: the config changed since its last run (hash {rec.get('hash')} → {s.hash}); "
                      "running it again")
    cfg = copy.deepcopy(s.cfg)
    resume = None
    if interrupted and s.kind.trains:
        resume = s.dir
        console.print(f"{s.name}: continuing the interrupted run in {s.dir}", soft_wrap=True)
    elif interrupted:
        cfg.run.overwrite = False  # generate and eval continue from the samples on disk
        console.print(f"{s.name}: continuing from the samples in {s.dir}", soft_wrap=True)
    try:
        validate(cfg)  # now the paths earlier stages made exist
    except R1Error as e:
        raise R1Error(f"stage {s.name!r}: {e}") from None
    if not interrupted:
        # an earlier run there is moved aside (never deleted) before the state says "running": a stage found
        # "running" after a kill is always this attempt, never the run it replaces; and every stage that reads
        # from it is marked to be redone, even if this run is killed before they start
        from r1.runs import clear_run_dir

        clear_run_dir(s.dir)
        cfg.run.overwrite = True
        _mark_redo(state, _dependents(pipe, s.name))
    state["stages"][s.name] = {**_where(s), "status": "running", "hash": s.hash, "started": _now()}
    _write_state(state_path, state)
    t0 = time.perf_counter()
    try:
        s.kind.run(cfg, resume)
    except R1Error as e:
        raise R1Error(f"stage {s.name!r} (r1 {s.command}): {e}; fix it and rerun (finished stages are kept)") \
            from None
    seconds = time.perf_counter() - t0
    if s.cached:
        (s.dir / "DONE").write_text(json.dumps({"seconds": seconds, "key": s.hash}) + "\n")
    if s.kind.report:
        _stage_report(s.dir)
    state["stages"][s.name] = {**_where(s), "status": "done", "hash": s.hash, "seconds": round(seconds, 2),
                               "finished": _now()}
    _write_state(state_path, state)


@contextlib.contextmanager
def _locked(path: Path, *, wait: bool, what: str):
    """Hold an exclusive lock on ``path`` (a file beside what it guards: a folder may be moved aside while held).
    Another process holding it makes this wait (``wait``) or fail with one line naming it."""
    import fcntl
    import os

    from r1.runs import console

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            if not wait:
                raise R1Error(f"{what} is in use by {holder}; wait for it to finish (or stop it), then rerun") \
                    from None
            console.print(f"waiting for {holder}, which is making {what}", soft_wrap=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        yield  # closing the file releases the lock, also when the process dies


def _finished(s: Stage, rec: dict) -> bool:
    if not s.output.exists():
        return False
    if s.cached:  # made by any pipeline: its DONE says so
        return (s.dir / "DONE").is_file()
    return rec.get("status") == "done" and rec.get("hash") == s.hash


def _cache_record(s: Stage) -> dict:
    """What a cached stage's ``DONE`` says it cost (a pipeline that finds it made by another still counts it)."""
    if not s.cached:
        return {}
    try:
        done = json.loads((s.dir / "DONE").read_text())
    except (OSError, ValueError):
        return {}
    return {"seconds": round(float(done.get("seconds", 0.0)), 2), "cached": True}


def _where(s: Stage) -> dict:
    return {"command": s.command, "dir": str(s.dir), "output": str(s.output), "hash": s.hash}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _read_state(path: Path) -> dict:
    if not path.is_file():
        return {"stages": {}}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise R1Error(f"{path} is not readable JSON ({e}); move it aside to start the pipeline over") from None
    if not isinstance(state, dict) or not isinstance(state.get("stages"), dict):
        raise R1Error(f"{path} is not a pipeline state file; move it aside to start the pipeline over")
    return state


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)  # a kill mid-write leaves the previous state, never half of one


def _stage_report(run_dir: Path) -> None:
    from r1.report import make_report
    from r1.runs import console

    try:
        make_report(run_dir)
    except R1Error as e:  # a report is a convenience: the stage's model and metrics are on disk either way
        console.print(f"[yellow]note[/]: no report for {run_dir}: {e}")


def write_summary(pipe: Pipeline, state: dict, seconds: float) -> dict:
    """``summary.json`` and ``report.html`` of a pipeline run; returns the summary."""
    from r1.pipeline.report import eval_rows, write_report

    summary = {
        "pipeline": pipe.name,
        "stages": [{"name": s.name, "label": s.label, **state["stages"].get(s.name, {}),
                    **({} if s.enabled else {"status": "disabled"}), "deps": s.deps} for s in pipe.stages],
        "evals": eval_rows(pipe, state),
        "wall_seconds": round(seconds, 2),
    }
    (pipe.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_report(pipe, summary)
    return summary


def save_stage_configs(pipe: Pipeline, out: Path) -> None:
    """Each stage's resolved config as ``<stage>.yaml`` (what ``r1 <command> -c`` would run)."""
    out.mkdir(parents=True, exist_ok=True)
    for s in pipe.stages:
        save_config(s.cfg, out / f"{s.name}.yaml")


__all__ = ["Pipeline", "Stage", "execute", "load_pipeline", "run_pipeline", "save_stage_configs", "write_summary"]
