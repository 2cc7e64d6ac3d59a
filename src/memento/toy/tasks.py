"""The toy tasks by name, for `memento toy train --task NAME`."""

from __future__ import annotations

from memento.toy.key_task import KeyTask
from memento.toy.task import ToyTask

TASKS: dict[str, type[ToyTask]] = {"sum": ToyTask, "key": KeyTask}
"""``sum``: the embedded model's task; ``key``: the dual-stream variant (a key digit only block 1 holds)."""
DEFAULT_TASK = "sum"


def task_by_name(name: str) -> ToyTask:
    """The named task with its default knobs; ValueError naming the choices for an unknown name."""
    if name not in TASKS:
        raise ValueError(f"unknown toy task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name]()
