"""Tasks (registry ``TASKS``): procedural tasks for tiny models and benchmark/JSONL tasks.

Entries are lazy ``"module:Class"`` strings, so importing ``r1.tasks`` imports no task module.
"""

from r1.tasks.base import TASKS, Task, build_task

TASKS.register("addition", "r1.tasks.addition:AdditionTask")
TASKS.register("countdown", "r1.tasks.countdown:CountdownTask")
TASKS.register("reasoning_gym", "r1.tasks.reasoning_gym:ReasoningGymTask")
TASKS.register("math", "r1.tasks.math:MathTask")
TASKS.register("gsm8k", "r1.tasks.math:GSM8KTask")
TASKS.register("math500", "r1.tasks.math:Math500Task")
TASKS.register("aime24", "r1.tasks.benchmarks:AIME24Task")
TASKS.register("aime25", "r1.tasks.benchmarks:AIME25Task")
TASKS.register("amc23", "r1.tasks.benchmarks:AMC23Task")
TASKS.register("minerva_math", "r1.tasks.benchmarks:MinervaMathTask")
TASKS.register("olympiadbench", "r1.tasks.benchmarks:OlympiadBenchTask")
TASKS.register("gpqa", "r1.tasks.gpqa:MultipleChoiceTask")
TASKS.register("humaneval", "r1.tasks.code:HumanEvalTask")
TASKS.register("mbpp", "r1.tasks.code:MBPPTask")
TASKS.register("stdio", "r1.tasks.code:StdioTask")
TASKS.register("mixture", "r1.tasks.mixture:MixtureTask")
TASKS.register("preference_prompts", "r1.tasks.mixture:PreferencePromptTask")

__all__ = ["TASKS", "Task", "build_task"]
