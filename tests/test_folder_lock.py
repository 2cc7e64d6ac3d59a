"""`memento.folder_lock`: one run per folder, a refusal naming the holder's pid, takeover from a dead run.

Real processes: the holder is another Python process (killed with SIGKILL, or leaving behind a child
that inherited its lock), the contender is this one.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from memento.folder_lock import LOCK_FILE, FolderBusy, hold_folder

# Holds the folder, says so on stdout, then (with "orphan") forks a child that keeps the lock and exits.
HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from memento.folder_lock import hold_folder
    with hold_folder(sys.argv[1], "--output"):
        if sys.argv[2] == "orphan":
            child = os.fork()
            if child == 0:
                time.sleep(120)  # the child holds the inherited lock
                os._exit(0)
            print("held", child, flush=True)
            os._exit(0)  # the run dies without releasing; its child lives on
        print("held", os.getpid(), flush=True)
        time.sleep(120)
    """
)


def _holder(folder: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    """The holding process, and the pid of the process left holding the lock (its orphan child, or itself)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), mode], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    word, pid = process.stdout.readline().split()
    assert word == "held"
    return process, int(pid)


def test_a_second_holder_is_refused_naming_the_first_and_the_lock_goes_with_the_run(tmp_path):
    folder = tmp_path / "run"
    holder, _ = _holder(folder, "hold")
    try:
        assert (folder / LOCK_FILE).read_text().strip() == str(holder.pid)
        busy = rf"--output {folder}: another run \(pid {holder.pid}\) is writing"
        with pytest.raises(FolderBusy, match=busy), hold_folder(folder, "--output"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (folder / LOCK_FILE).read_text().strip() == str(holder.pid)  # a kill -9 leaves the file ...
    with hold_folder(folder, "--output"):  # ... but not the lock: it is taken over
        assert (folder / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (folder / LOCK_FILE).exists()  # released: the file goes


def test_a_lock_kept_by_the_orphan_of_a_dead_run_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    holder, orphan = _holder(folder, "orphan")
    holder.wait()
    dead = holder.pid
    try:
        deadline = time.time() + 10
        while time.time() < deadline:  # the run's pid is gone (its child, still holding the lock, is not)
            try:
                os.kill(dead, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        assert (folder / LOCK_FILE).read_text().strip() == str(dead)
        with (folder / LOCK_FILE).open() as handle, pytest.raises(BlockingIOError):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # still locked, by the orphan
        with hold_folder(folder, "--output"):
            assert (folder / LOCK_FILE).read_text().strip() == str(os.getpid())
            # and it holds against the next one
            with pytest.raises(FolderBusy, match=rf"pid {os.getpid()}"), hold_folder(folder, "--output"):
                pass
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_a_folder_made_for_a_run_that_wrote_nothing_is_removed_and_others_are_kept(tmp_path):
    with hold_folder(tmp_path / "new" / "run", "--output-dir"):
        assert (tmp_path / "new" / "run" / LOCK_FILE).is_file()
    assert not (tmp_path / "new" / "run").exists()
    with hold_folder(tmp_path / "kept", "--output-dir") as folder:
        (folder / "records.jsonl").write_text("{}\n")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["records.jsonl"]
    (tmp_path / "existing").mkdir()
    with hold_folder(tmp_path / "existing", "--output-dir"):
        pass
    assert (tmp_path / "existing").is_dir()
