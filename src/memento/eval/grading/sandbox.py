"""Run untrusted Python (a model's solution and its tests) in a limited subprocess.

What each run gets:

* a fresh temporary directory as its working directory, ``HOME`` and ``TMPDIR``, removed after;
* a new session and process group; on the wall-clock deadline, and after every normal exit,
  the whole group is killed with SIGKILL (a finished solution leaves no process behind). The
  group is killed while its leader is still an unreaped zombie, so its id cannot be reused;
* resource limits set in the child before the solution's first line (`sandbox_guard`, also run
  by any Python the solution starts): address space (``memory_mb``), CPU seconds, size of any
  written file, no core files;
* no network: a new empty network namespace where the kernel allows it (root, or user
  namespaces), else Python's socket constructors raise; `SandboxResult.network` says which;
* an environment of its own: no variable of the caller (tokens, proxies) is passed on.

Not isolated: the file system outside the directory is readable and, as the caller's user,
writable; a process that leaves the group on purpose (``setsid``, ``start_new_session``) escapes
the group kill; the address-space limit is per process, not for the group; a process-count
limit is not set (it does not bind root). Run evaluations of untrusted models in a container
or VM when that matters.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

_GUARD = Path(__file__).with_name("sandbox_guard.py")
_OUTPUT_TAIL = 4096

SandboxStatus = Literal["passed", "failed", "timeout", "memory"]


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run: wall clock (s), address space (MiB), size of any written file (MiB)."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 64

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be >= 64 (the interpreter needs it), got {self.memory_mb}")
        if self.file_size_mb < 1:
            raise ValueError(f"file_size_mb must be >= 1, got {self.file_size_mb}")

    def environment_value(self) -> str:
        """``as,cpu,fsize`` for `sandbox_guard` (bytes, seconds, bytes)."""
        cpu = math.ceil(self.timeout_s) + 1  # a CPU-bound loop dies on its own just after the deadline
        return f"{self.memory_mb << 20},{cpu},{self.file_size_mb << 20}"


@dataclass(frozen=True)
class Program:
    """Files to write into the run's directory (name -> text), the one to run, and its stdin."""

    files: Mapping[str, str]
    main: str = "main.py"
    stdin: str = ""

    def __post_init__(self) -> None:
        if self.main not in self.files:
            raise ValueError(f"the main file {self.main!r} is not among the program's files")
        for name in self.files:
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"program file {name!r} must be a relative path inside the sandbox")


@dataclass(frozen=True)
class SandboxResult:
    """How a run ended. `passed`: exit status 0 before the deadline; `returncode` is negative
    for a signal (-9 when the deadline killed it); `stdout` / `stderr` are the last 4 KiB."""

    status: SandboxStatus
    returncode: int | None
    seconds: float
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    network: str = "unknown"

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def run_program(program: Program, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run `program` with `limits` (defaults: `SandboxLimits()`); never raises for what it does."""
    limits = limits or SandboxLimits()
    root = Path(tempfile.mkdtemp(prefix="memento-sandbox-"))
    try:
        return _run_in(root, program, limits)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_many(
    programs: Sequence[Program], limits: SandboxLimits | None = None, *, workers: int | None = None
) -> list[SandboxResult]:
    """`run_program` on each program, `workers` at a time (default: CPU count); results in order."""
    if not programs:
        return []
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=min(workers, len(programs))) as pool:
        return list(pool.map(lambda program: run_program(program, limits), programs))


def _run_in(root: Path, program: Program, limits: SandboxLimits) -> SandboxResult:
    guard, work = root / "guard", root / "work"
    guard.mkdir()
    work.mkdir()
    shutil.copyfile(_GUARD, guard / "sitecustomize.py")
    for name, text in program.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "stdin").write_text(program.stdin, encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(guard),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "MEMENTO_SANDBOX_LIMITS": limits.environment_value(),
        "MEMENTO_SANDBOX_REPORT": str(root / "network"),
    }
    start = time.monotonic()
    with (
        open(root / "stdin", "rb") as stdin,
        open(root / "stdout", "wb") as stdout,
        open(root / "stderr", "wb") as stderr,
    ):
        process = subprocess.Popen(
            [sys.executable, "-s", work / program.main],
            cwd=work,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    exited = _wait_for_exit(process.pid, limits.timeout_s)
    _kill_group(process.pid)  # leftovers after a normal exit too; the leader is not reaped yet
    returncode = process.wait()
    seconds = time.monotonic() - start
    out, err = _tail(root / "stdout"), _tail(root / "stderr")
    network = (root / "network").read_text() if (root / "network").is_file() else "unknown"
    if not exited or returncode == -signal.SIGXCPU:
        status: SandboxStatus = "timeout"
    elif returncode == 0:
        status = "passed"
    elif "MemoryError" in err:
        status = "memory"
    else:
        status = "failed"
    return SandboxResult(status, returncode, seconds, out, err, network)


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Wait until `pid` exits without reaping it (so its process-group id stays taken)."""
    deadline = time.monotonic() + timeout_s
    if hasattr(os, "pidfd_open"):
        descriptor = os.pidfd_open(pid)
        try:
            return bool(select.select([descriptor], [], [], timeout_s)[0])
        finally:
            os.close(descriptor)
    while time.monotonic() < deadline:  # no pidfd (macOS): poll
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.01)
    return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(path: Path) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - _OUTPUT_TAIL))
        return handle.read().decode("utf-8", errors="replace")
