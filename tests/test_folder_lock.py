"""`memento.folder_lock`: one run per folder, a refusal naming the holder's pid, freed when the holder dies.

Real processes: the holder is another Python process (killed with SIGKILL, or leaving behind a forked
child), the contender is this one or one in a new pid namespace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
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
            ready, say_ready = os.pipe()
            child = os.fork()
            if child == 0:  # fork's after-child handlers have run by now
                os.write(say_ready, b"x")
                time.sleep(120)
                os._exit(0)
            os.read(ready, 1)  # (without this wait the test raced the child's start under load)
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


def test_a_forked_child_of_a_run_does_not_keep_its_folder_locked(tmp_path):
    folder = tmp_path / "run"
    holder, child = _holder(folder, "orphan")
    holder.wait()
    try:
        os.kill(child, 0)  # the run's child lives on, but the lock went with the run
        with hold_folder(folder, "--output"):
            assert (folder / LOCK_FILE).read_text().strip() == str(os.getpid())
            with pytest.raises(FolderBusy, match=rf"pid {os.getpid()}"), hold_folder(folder, "--output"):
                pass  # and it holds against the next one
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_live_holder_whose_lock_file_names_a_dead_pid_keeps_the_folder(tmp_path):
    """Issue 34, item 2: the pid in the file is information, never a reason to take the lock."""
    folder = tmp_path / "run"
    holder, _ = _holder(folder, "hold")
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()  # a pid that names no process now
    try:
        (folder / LOCK_FILE).write_text(f"{dead.pid}\n")
        with pytest.raises(FolderBusy, match=rf"another run \(pid {dead.pid}\)"), hold_folder(folder, "--output"):
            pass
        assert (folder / LOCK_FILE).read_text().strip() == str(dead.pid)  # the holder's file is left alone
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with hold_folder(folder, "--output"):  # the kill -9 freed it
        assert (folder / LOCK_FILE).read_text().strip() == str(os.getpid())


def unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


# Tries to take the folder from inside a new pid namespace, where the holder's pid names no process.
CONTENDER = textwrap.dedent(
    """
    import os, sys
    from memento.folder_lock import FolderBusy, hold_folder
    assert os.getpid() == 1  # a fresh pid namespace
    try:
        with hold_folder(sys.argv[1], "--output"):
            print("taken")
    except FolderBusy as error:
        print(error)
    """
)


@pytest.mark.skipif(not unshare_works(), reason="needs `unshare --pid` (root or user namespaces)")
def test_a_holder_in_another_pid_namespace_keeps_the_folder(tmp_path):
    """Issue 34, item 2: a run in a second container on a shared volume cannot see the holder's pid."""
    folder = tmp_path / "run"
    holder, _ = _holder(folder, "hold")
    try:
        contender = subprocess.run(
            ["unshare", "--pid", "--fork", sys.executable, "-c", CONTENDER, str(folder)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert contender.returncode == 0, contender.stderr
        assert contender.stdout.startswith(f"--output {folder}: another run (pid {holder.pid}) is writing")
        assert (folder / LOCK_FILE).read_text().strip() == str(holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    contender = subprocess.run(
        ["unshare", "--pid", "--fork", sys.executable, "-c", CONTENDER, str(folder)], capture_output=True, text=True
    )
    assert contender.stdout == "taken\n", contender.stderr  # the kill -9 freed it, across namespaces too


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


@pytest.mark.parametrize("failure", ["flock", "open"])
def test_a_file_system_without_locks_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch, failure):
    import errno

    from memento import folder_lock
    from memento.errors import UsageError

    def refuse(*args, **kwargs):
        if failure == "flock":
            raise OSError(errno.ENOLCK, "No locks available")
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(folder_lock.fcntl if failure == "flock" else folder_lock.os, failure, refuse)
    folder = tmp_path / "run"
    with pytest.raises(UsageError) as caught, hold_folder(folder, "--output"):
        pass
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"--output {folder}: cannot ")
    assert ("No locks available" if failure == "flock" else "Permission denied") in message
    assert not isinstance(caught.value, FolderBusy)
    assert not folder.exists()
