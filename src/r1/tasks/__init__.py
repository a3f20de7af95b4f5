"""Tasks (registry ``TASKS``): procedural tasks for tiny models and benchmark/JSONL tasks.

Entries are lazy ``"module:Class"`` strings, so importing ``r1.tasks`` imports no task module.
"""

from r1.tasks.base import TASKS, Task, build_task

TASKS.register("addition", "r1.tasks.addition:AdditionTask")
TASKS.register("math", "r1.tasks.math:MathTask")
TASKS.register("gsm8k", "r1.tasks.math:GSM8KTask")
TASKS.register("math500", "r1.tasks.math:Math500Task")

__all__ = ["TASKS", "Task", "build_task"]
