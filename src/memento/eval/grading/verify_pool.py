"""math-verify in worker processes, so a pathological answer cannot hang a run.

math-verify bounds its own steps with ``signal.alarm``, which works only on a main thread and
cannot interrupt a long C-level computation. Each worker here is a separate Python process
(``python -m memento.eval.grading.verify_pool``) answering one JSON line per request on its main
thread, with math-verify's alarms on; the parent waits at most ``2 * timeout_s + 1`` seconds for
the reply, then kills the worker (the answer counts as wrong) and starts a fresh one on the
next request. Callers may be on any thread: each takes a free worker from the pool.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import memento
from memento.eval.grading.equivalence import DEFAULT_TIMEOUT_S, equivalent_here

STARTUP_TIMEOUT_S = 120.0
"""How long a new worker may take to import math-verify and SymPy."""


class _Worker:
    """One ``python -m memento.eval.grading.verify_pool`` process and its pipes."""

    def __init__(self) -> None:
        source_root = str(Path(memento.__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memento.eval.grading.verify_pool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._buffer = b""
        if self._read_line(time.monotonic() + STARTUP_TIMEOUT_S) != {"ready": True}:
            self.kill()
            raise RuntimeError(
                "the math-verify worker did not start (is math-verify installed? pip install math-verify)"
            )

    def ask(self, answer: str, gold: str, timeout_s: float) -> bool | None:
        """The worker's verdict, or None when it missed the deadline (it is then killed)."""
        request = json.dumps({"answer": answer, "gold": gold, "timeout_s": timeout_s}) + "\n"
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(request.encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            self.kill()
            return None
        reply = self._read_line(time.monotonic() + 2 * timeout_s + 1)
        if reply is None:
            self.kill()
            return None
        return bool(reply.get("equal"))

    def _read_line(self, deadline: float) -> dict | None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:  # the worker died
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


class VerifierPool:
    """Up to `size` math-verify workers, started on demand and shared by all threads."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or max(1, min(4, os.cpu_count() or 1))
        if self.size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        self._idle: list[_Worker] = []
        self._started = 0
        self._condition = threading.Condition()
        self.timeouts = 0
        """Answers whose worker missed its deadline or died (each was graded wrong)."""

    def equivalent(self, answer: str, gold: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
        """`equivalence.equivalent_here` in a worker; False if it took longer than ``2 * timeout_s + 1`` s."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        worker = self._acquire()
        verdict = None
        try:
            verdict = worker.ask(answer, gold, timeout_s)
        finally:
            self._release(worker if verdict is not None and worker.alive else None)
        if verdict is None:
            with self._condition:
                self.timeouts += 1
            return False
        return verdict

    def _acquire(self) -> _Worker:
        with self._condition:
            while not self._idle and self._started >= self.size:
                self._condition.wait()
            idle = self._idle.pop() if self._idle else None
            if idle is None:
                self._started += 1
        if idle is not None:
            if idle.alive:
                return idle
            idle.kill()  # died while idle (killed from outside): reap it and take its slot
        try:
            return _Worker()
        except BaseException:
            self._release(None)
            raise

    def _release(self, worker: _Worker | None) -> None:
        with self._condition:
            if worker is None:
                self._started -= 1
            else:
                self._idle.append(worker)
            self._condition.notify()

    def close(self) -> None:
        """Stop the idle workers (busy ones finish their request, then are dropped)."""
        with self._condition:
            idle, self._idle = self._idle, []
            self._started -= len(idle)
        for worker in idle:
            worker.kill()


_POOL: VerifierPool | None = None
_POOL_PID: int | None = None
_POOL_LOCK = threading.Lock()


def shared_pool() -> VerifierPool:
    """The process-wide pool (a forked child gets its own)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or os.getpid() != _POOL_PID:
            _POOL, _POOL_PID = VerifierPool(), os.getpid()
            atexit.register(_POOL.close)
        return _POOL


def _serve() -> None:
    """Worker loop: one JSON request per stdin line, one JSON reply per stdout line."""
    import math_verify  # noqa: F401  (imported before "ready" so start-up is not billed to an answer)

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            equal = equivalent_here(request["answer"], request["gold"], request["timeout_s"])
        except Exception:  # math-verify bugs on odd input: the answer does not match
            equal = False
        out.write(json.dumps({"equal": equal}) + "\n")
        out.flush()


if __name__ == "__main__":
    _serve()
