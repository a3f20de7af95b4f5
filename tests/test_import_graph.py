"""The package boundaries: no import cycle between r1's packages, and the fast path behind ``r1.models.policy``.

Imports are read from the source (top-level and inside functions alike), so a lazy import that closes a cycle counts.

Run: python -m pytest tests/test_import_graph.py -q
"""

import ast
from pathlib import Path

import r1

SRC = Path(r1.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every r1 module ``path`` names in an import (``from a import b`` names ``a`` and ``a.b``)."""
    names = set()
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("r1.")}


def _package(module: str) -> str:
    """``r1.models.fast`` → ``models``; a top-level module (``r1.config``) is its own package."""
    return module.split(".")[1]


def _package_graph() -> dict[str, set[str]]:
    known = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    known |= {p.stem for p in SRC.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        src = _package(_module(path)) if path.parent != SRC else path.stem
        for name in _imports(path):
            dst = _package(name)
            if dst in known and dst != src:
                graph.setdefault(src, set()).add(dst)
    return graph


def test_no_import_cycle_between_packages():
    graph = _package_graph()
    assert "rollout" in graph.get("train", set())  # the scan sees imports

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = sorted((a, b) for a in graph for b in graph[a] if reaches(b, a))
    assert cycles == []


def test_the_trainer_names_no_fast_path_module():
    """``train/grpo.py`` asks ``r1.models.policy.PolicyForward`` for logits and the Engine protocol for records."""
    fast_path = ("r1.models.fast", "r1.models.replay", "r1.models.kernels", "r1.rollout.native")
    named = _imports(SRC / "train" / "grpo.py")
    assert "r1.models.policy" in named
    assert sorted(n for n in named if n.startswith(fast_path)) == []
