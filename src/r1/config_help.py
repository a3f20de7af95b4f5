"""What ``r1 <command> --help`` says about configs: each command's example config, and a schema's sections and
fields (type, default, docstring) as text.

The field docs are the string literals under each field in ``r1.config`` (cleanrl ``Args`` style). They are not
runtime attributes, so :func:`field_docs` reads them from the class's source with :mod:`ast`. Left out: the
allowed values (ranges, choices, registries), which :func:`r1.config.validate` states when a value breaks them.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import typing
from typing import Any

#: Each config-driven command's small working example (paths from the repository root): the ``missing -c CONFIG``
#: hint names the command's own, and tests/test_config_help.py runs them all through their schema.
EXAMPLES: dict[str, str] = {
    "grpo": "configs/grpo/smoke.yaml",
    "pretrain": "configs/pretrain/smoke.yaml",
    "sft": "configs/sft/smoke.yaml",
    "rm": "configs/rm/helpful.yaml",
    "demo": "configs/demo/smoke.yaml",
    "eval": "configs/eval/smoke.yaml",
    "generate": "configs/generate/smoke.yaml",
}

#: Each config-driven command's schema, as ``"module:Class"`` (imported only when its help is asked for).
SCHEMAS: dict[str, str] = {
    "grpo": "r1.config:GRPOConfig",
    "pretrain": "r1.config:SFTConfig",
    "sft": "r1.config:SFTConfig",
    "rm": "r1.config:RMConfig",
    "demo": "r1.config:DemoConfig",
    "eval": "r1.config:EvalConfig",
    "generate": "r1.config:GenerateConfig",
}

_WIDTH = 100  # help text is wrapped here (argparse's RawDescriptionHelpFormatter keeps the epilog as it is)


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """``{field name: docstring}`` for the fields of dataclass ``cls`` (and its dataclass bases) that have a string
    literal right below them; the text is :func:`inspect.cleandoc`-ed and kept on one line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # no source (a class built at runtime): no docs rather than an error
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for stmt, nxt in zip(body, body[1:]):
            if (
                isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    return docs


def _type_name(t: Any) -> str:
    """``Optional[str]`` → ``str | None``, ``List[float]`` → ``list[float]``, ``Dict[str, Any]`` → ``dict``."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union:
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, typing.List):
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin in (dict, typing.Dict):
        return "dict"
    if t is type(None):
        return "None"
    return getattr(t, "__name__", str(t))


def _item_type(t: Any) -> Any:
    """The dataclass a ``List[Section]`` field holds, else None."""
    if typing.get_origin(t) in (list, typing.List):
        args = typing.get_args(t)
        if args and dataclasses.is_dataclass(args[0]):
            return args[0]
    return None


def _optional_section(t: Any) -> Any:
    """The dataclass of an ``Optional[Section]`` field, else None."""
    if typing.get_origin(t) is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return args[0]
    return None


def _lines(node: Any, cls: type, prefix: str, indent: str) -> list[str]:
    """The fields of ``cls`` (values from ``node``, an instance of it) under ``prefix``; sections recurse."""
    out: list[str] = []
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    wrap = functools.partial(textwrap.fill, width=_WIDTH, initial_indent=indent + "    ",
                             subsequent_indent=indent + "    ", break_on_hyphens=False)
    for f in dataclasses.fields(cls):
        key, value, t = prefix + f.name, getattr(node, f.name), hints[f.name]
        section = _optional_section(t)
        if section is not None:  # an optional section (model.lora): absent by default; its fields' defaults shown
            t, value = section, value if value is not None else section()
        doc = docs.get(f.name) or (inspect.getdoc(t) if dataclasses.is_dataclass(t) else None)
        item = _item_type(t)
        if dataclasses.is_dataclass(t):
            out.append(f"{indent}{key}:")
            if doc and docs.get(f.name):
                out.append(wrap(doc))
            out += _lines(value, t, key + ".", indent + "  ")
        elif item is not None:
            out.append(f"{indent}{key}: a list; default {len(value)} item(s); each item (key {key}.N.<field>):")
            if docs.get(f.name):
                out.append(wrap(docs[f.name]))
            first = value[0] if value else item()
            out += _lines(first, item, key + ".N.", indent + "  ")
        else:
            out.append(f"{indent}{key}: {_type_name(t)} = {value!r}")
            if doc:
                out.append(wrap(doc))
    return out


def describe(schema: Any) -> str:
    """A config schema's sections and fields, one ``key: type = default`` line each with its doc wrapped below,
    keys spelled as overrides take them (``optim.lr=1e-5``; list items ``rewards.N.name``). ``schema`` is a
    dataclass or an instance of one, whose values are then shown as the defaults (``r1 demo``'s own settings).

    Example (the first lines of ``describe(GRPOConfig)``)::

        model:
          model.path: str = 'tiny-qwen2'
              A local Hugging Face causal-LM directory, or a tiny preset name (see ``r1.models.PRESETS``).
    """
    cls = schema if isinstance(schema, type) else type(schema)
    node = schema() if isinstance(schema, type) else schema
    return "\n".join(_lines(node, cls, "", ""))


def command_help(command: str) -> str | None:
    """The ``--help`` epilog of a config-driven command (None for the others): its example and its config fields."""
    if command not in SCHEMAS:
        return None
    import importlib

    module, _, name = SCHEMAS[command].partition(":")
    schema: Any = getattr(importlib.import_module(module), name)
    if command == "demo":  # the demo's defaults are its shipped settings, not the schema's
        schema = _demo_defaults()
    example = EXAMPLES.get(command)
    head = f"example: r1 {command} -c {example}" if example else ""
    return (
        f"{head}\n\nconfig fields (set in the YAML file or as key=value; unknown keys are errors):\n"
        + describe(schema)
    )


def _demo_defaults() -> Any:
    """``r1 demo``'s settings (``r1.config.DEMO_YAML`` over the schema), merged without validating them."""
    import yaml
    from omegaconf import OmegaConf

    from r1.config import DEMO_YAML, DemoConfig

    merged = OmegaConf.merge(OmegaConf.structured(DemoConfig), yaml.safe_load(DEMO_YAML.read_text()) or {})
    return OmegaConf.to_object(merged)


class CommandParser(argparse.ArgumentParser):
    """A command's argument parser whose ``--help`` ends with :func:`command_help` (the example and the config
    fields). The text is built only when help is shown: reading the schemas' source takes a good part of a second,
    which no other invocation should pay. Use as ``add_subparsers(parser_class=CommandParser)`` and
    ``add_parser(name, ..., command=name)``."""

    def __init__(self, *args: Any, command: str | None = None, **kwargs: Any):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.command = command

    def format_help(self) -> str:
        if self.epilog is None and self.command is not None:
            self.epilog = command_help(self.command)
        return super().format_help()
