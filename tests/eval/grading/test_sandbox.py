"""The sandbox stops runaway solutions within its limits and leaves no process behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memento.eval.grading.sandbox import Program, SandboxLimits, run_many, run_program

LIMITS = SandboxLimits(timeout_s=3.0, memory_mb=512)
SLACK_S = 5.0  # start-up, kill and reap on a loaded 2-core machine (an unkilled program would run forever)

INFINITE_LOOP = Program({"main.py": "while True:\n    pass\n"})
MEMORY_HOG = Program({"main.py": "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n"})
# exactly 50 forks (a bounded loop: CI runs as root, where no process-count limit would stop a fork bomb)
SLEEPING_CHILDREN = Program(
    {
        "main.py": (
            "import os, sys, time\n"
            "pids = []\n"
            "for _ in range(50):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        time.sleep(600)\n"
            "        os._exit(0)\n"
            "    pids.append(pid)\n"
            "print(os.getpgrp(), *pids, flush=True)\n"
            "time.sleep(600)\n"
        )
    }
)
GOOD = Program({"main.py": "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n"}, stdin="2 3 4\n")


def _alive(pid: int) -> bool:
    """Running, or stopped; a zombie (dead, waiting for its parent to reap it) is not alive."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def test_a_good_program_passes_with_its_stdin():
    result = run_program(GOOD, LIMITS)
    assert result.passed and result.returncode == 0
    assert result.stdout.strip() == "9"


def test_an_infinite_loop_is_killed_at_the_deadline():
    result = run_program(INFINITE_LOOP, LIMITS)
    assert result.status == "timeout" and not result.passed
    assert result.returncode == -9
    assert LIMITS.timeout_s <= result.seconds < LIMITS.timeout_s + SLACK_S


def test_a_memory_hog_hits_the_address_space_limit():
    result = run_program(MEMORY_HOG, LIMITS)
    assert result.status == "memory" and not result.passed
    assert "MemoryError" in result.stderr
    assert result.seconds < LIMITS.timeout_s + SLACK_S


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="checks processes through /proc (Linux)")
def test_fifty_sleeping_children_are_killed_with_their_group():
    result = run_program(SLEEPING_CHILDREN, LIMITS)
    assert result.status == "timeout"
    assert result.seconds < LIMITS.timeout_s + SLACK_S
    pgid, *children = (int(value) for value in result.stdout.split())
    assert len(children) == 50 and pgid not in children
    deadline = time.monotonic() + 5  # SIGKILL is delivered at once; the kernel tears down asynchronously
    while (_group_members(pgid) or any(_alive(pid) for pid in children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_members(pgid) == []
    assert not any(_alive(pid) for pid in children)


def test_children_left_by_a_finished_program_are_killed():
    program = Program(
        {
            "main.py": (
                "import subprocess, sys\n"
                "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
                "print(child.pid, flush=True)\n"
            )
        }
    )
    result = run_program(program, LIMITS)
    assert result.passed
    pid = int(result.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_the_run_continues_past_runaway_programs():
    programs = [GOOD, INFINITE_LOOP, MEMORY_HOG, SLEEPING_CHILDREN, GOOD]
    start = time.monotonic()
    results = run_many(programs, LIMITS, workers=len(programs))
    assert [r.status for r in results] == ["passed", "timeout", "memory", "timeout", "passed"]
    wall = time.monotonic() - start
    assert wall < sum(r.seconds for r in results)  # in parallel: run one after another, they would take longer


def test_no_network_and_no_inherited_environment(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("MEMENTO_TEST_SECRET", "do-not-leak")
        program = Program(
            {
                "main.py": (
                    "import os, socket\n"
                    "print(os.environ.get('MEMENTO_TEST_SECRET'))\n"
                    "try:\n"
                    f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                    "    print('connected')\n"
                    "except OSError as error:\n"
                    "    print('refused', error)\n"
                )
            }
        )
        result = run_program(program, LIMITS)
    lines = result.stdout.splitlines()
    assert result.passed and lines[0] == "None"
    assert lines[1].startswith("refused")
    assert result.network in ("namespace", "sockets")


def test_each_run_gets_a_fresh_directory_that_is_removed():
    program = Program(
        {"main.py": "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\nopen('left.txt', 'w')\n"}
    )
    first, second = run_program(program, LIMITS), run_program(program, LIMITS)
    directories = [r.stdout.splitlines()[0] for r in (first, second)]
    assert directories[0] != directories[1]
    assert first.stdout.splitlines()[1] == "['main.py']" == second.stdout.splitlines()[1]
    assert not any(os.path.exists(d) for d in directories)


def test_limits_and_programs_are_validated():
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb must be >= 64"):
        SandboxLimits(memory_mb=8)
    with pytest.raises(ValueError, match=r"main file 'run\.py'"):
        Program({"main.py": ""}, main="run.py")
    with pytest.raises(ValueError, match="relative path inside the sandbox"):
        Program({"main.py": "", "../escape.py": ""})


def test_without_namespaces_python_sockets_are_refused(tmp_path):
    """Where unshare is refused (no root, no user namespaces), the guard falls back to the socket patch."""
    guard = Path(__file__).resolve().parents[3] / "src" / "memento" / "eval" / "grading" / "sandbox_guard.py"
    report = tmp_path / "network"
    code = (
        "import ctypes, runpy, socket\n"
        "class NoNamespaces:\n"
        "    def __init__(self, *args, **kwargs): pass\n"
        "    def unshare(self, flags): return -1\n"
        "ctypes.CDLL = NoNamespaces\n"
        f"runpy.run_path({str(guard)!r})\n"
        "for attempt in (lambda: socket.create_connection(('127.0.0.1', 9)), socket.socket):\n"
        "    try:\n"
        "        attempt()\n"
        "    except OSError as error:\n"
        "        print(error)\n"
    )
    env = {"MEMENTO_SANDBOX_REPORT": str(report), "PATH": os.environ.get("PATH", "")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == ["network access is disabled in the memento sandbox"] * 2
    assert report.read_text() == "sockets"
