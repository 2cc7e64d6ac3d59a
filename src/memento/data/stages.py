"""Progress within long traces: which stage each trace in flight is in, said aloud once it runs long.

A 2 MB chain of thought spends seconds in each stage while the per-trace progress bar stands still;
`SlowStages` says ``t7: segmenting 23,069 sentences into 10-20 blocks (5 s so far)`` once a stage has
run `after` seconds, and again every `every` seconds while it lasts. Short stages say nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

SLOW_AFTER_SECONDS = 5.0
"""When a stage of one trace has run this long, it is said (the `memento data build` default)."""

REPEAT_EVERY_SECONDS = 30.0
"""While it lasts, it is said again this often."""

LOOK_EVERY_SECONDS = 0.5
"""How often the stages in flight are looked at."""


class SlowStages:
    """Thread-safe record of (trace id -> current stage, since when); a daemon thread says the slow ones.

    `after`, `every` and `tick` (how often it looks) default to the module's constants.

    Use as a context manager around the run; workers call `enter` at each stage and `leave` when done.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        after: float | None = None,
        every: float | None = None,
        tick: float | None = None,
    ) -> None:
        after = SLOW_AFTER_SECONDS if after is None else after
        every = REPEAT_EVERY_SECONDS if every is None else every
        tick = LOOK_EVERY_SECONDS if tick is None else tick
        if after < 0 or every <= 0 or tick <= 0:
            raise ValueError(f"need after >= 0, every > 0 and tick > 0 seconds, got {after}, {every}, {tick}")
        self.say, self.after, self.every, self.tick = say, after, every, tick
        self._stages: dict[str, tuple[Any, str, float, float]] = {}  # key -> (id, stage, started, next say)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="slow-stages", daemon=True)

    def enter(self, task_id: Any, stage: str) -> None:
        """Trace `task_id` starts `stage` now (its previous stage, if any, is over)."""
        now = time.monotonic()
        with self._lock:
            self._stages[repr(task_id)] = (task_id, stage, now, now + self.after)

    def leave(self, task_id: Any) -> None:
        """Trace `task_id` is done."""
        with self._lock:
            self._stages.pop(repr(task_id), None)

    def __enter__(self) -> SlowStages:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.tick):
            now, due = time.monotonic(), []
            with self._lock:
                for key, (task_id, stage, started, next_say) in self._stages.items():
                    if now >= next_say:
                        due.append(f"{task_id}: {stage} ({now - started:.0f} s so far)")
                        self._stages[key] = (task_id, stage, started, now + self.every)
            for line in due:
                self.say(line)
