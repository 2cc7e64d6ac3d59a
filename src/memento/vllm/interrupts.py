"""SIGINT/SIGTERM during `memento verify`: the check stops with no verdict, and its temporary files go.

`interruptible` turns both signals into `Interrupted` (so `with` blocks clean up) and remembers them,
so one swallowed by library code or received during a clean-up still stops the check as the block
ends; `scratch_directory` is the temporary ``memento-verify-*`` folder, removed however the check ends.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during a check: no verdict (the number of the signal in `signal_number`)."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")
        self.signal_number = signal_number


@dataclass
class Signals:
    """SIGINT/SIGTERM received during a check, and whether they raise now (not while its files are removed)."""

    received: list[int] = field(default_factory=list)
    raising: bool = True

    def raise_if_interrupted(self) -> None:
        """A signal whose exception library code swallowed still stops the check."""
        if self.received:
            raise Interrupted(self.received[0])

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals are only recorded meanwhile (a second Ctrl-C must not cut short a clean-up)."""
        self.raising = False
        try:
            yield
        finally:
            self.raising = True


@contextlib.contextmanager
def interruptible() -> Iterator[Signals]:
    """SIGINT/SIGTERM raise `Interrupted` (so `with` blocks clean up) and are remembered (`Signals`).

    A signal received while raising was deferred (a clean-up), or swallowed by library code, still raises
    `Interrupted` as the block ends: nothing after an interrupted block reports a verdict.
    """
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return

    def handler(number: int, frame: Any) -> None:
        signals.received.append(number)
        if signals.raising:
            raise Interrupted(number)

    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    finally:
        for number, action in previous.items():
            signal.signal(number, action)
    signals.raise_if_interrupted()


@contextlib.contextmanager
def scratch_directory(signals: Signals) -> Iterator[Path]:
    """A temporary ``memento-verify-*`` folder (the random model copy), removed however the check ends."""
    path = Path(tempfile.mkdtemp(prefix="memento-verify-"))
    try:
        yield path
    finally:
        with signals.deferred():
            shutil.rmtree(path, ignore_errors=True)
