"""eval/ never imports train/: evaluation runs on the shared run machinery (``r1.runs``), not on the trainers'.

Run: python -m pytest tests/eval/test_boundaries.py -q
"""

import ast
import subprocess
import sys
from pathlib import Path

import r1.eval

EVAL_DIR = Path(r1.eval.__file__).parent


def _r1_modules_named_in(path: Path) -> set[str]:
    """Every ``r1`` module an eval file imports, at the top or inside a function (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "r1.eval".rsplit(".", node.level - 1)[0] if node.level else ""
            names.add(".".join(p for p in (base, node.module or "") if p))
    return {n for n in names if n == "r1" or n.startswith("r1.")}


def test_no_eval_module_names_train():
    named = {f.name: _r1_modules_named_in(f) for f in EVAL_DIR.glob("*.py")}
    assert named["runner.py"]  # the scan sees imports (runner's are all inside functions)
    into_train = {f: sorted(m for m in ms if m == "r1.train" or m.startswith("r1.train.")) for f, ms in named.items()}
    assert {f: ms for f, ms in into_train.items() if ms} == {}


def test_importing_eval_and_what_it_imports_loads_no_train_module():
    """In a fresh interpreter: every eval module and every r1 module they import (lazily or not) leave
    ``r1.train`` unloaded, so nothing eval reaches pulls the trainers in through another package."""
    modules = sorted({f"r1.eval.{f.stem}" for f in EVAL_DIR.glob("*.py") if f.stem != "__init__"}
                     | set().union(*(_r1_modules_named_in(f) for f in EVAL_DIR.glob("*.py"))))
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'r1.train' or m.startswith('r1.train.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing {modules} loaded {out.stdout.strip()}"
