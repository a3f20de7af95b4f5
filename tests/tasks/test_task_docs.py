"""Every registered task is named in README.md or docs/ (a task nobody can find is a task nobody uses).

Run: ``python -m pytest tests/tasks/test_task_docs.py -q``
"""

import re
from pathlib import Path

import pytest

from r1.tasks import TASKS

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("name", sorted(TASKS.names()))
def test_each_task_is_documented(name):
    text = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))
    assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), f"task {name} is in neither README.md nor docs/"


def test_readme_lists_the_countdown_and_reasoning_gym_tasks():
    readme = (ROOT / "README.md").read_text()
    assert "`countdown`" in readme and "configs/grpo/countdown.yaml" in readme and "`reasoning_gym`" in readme
