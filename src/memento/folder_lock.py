"""One run at a time per output folder: `hold_folder` locks it for as long as a run writes there.

The lock is an `fcntl.flock` on ``FOLDER/.memento.lock``, a file holding the owner's pid: the kernel
frees the lock when its process dies, so a run killed with SIGKILL never leaves the folder locked,
and the pid names the owner when a second run is refused. A lock still held after its recorded
owner died (a child process that inherited it outlived the run) is taken over by replacing the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memento.errors import UsageError

LOCK_FILE = ".memento.lock"


class FolderBusy(UsageError):
    """Another live run holds the folder; the message names the folder, the flag and the other run's pid."""


@contextmanager
def hold_folder(folder: str | Path, flag: str) -> Iterator[Path]:
    """Lock `folder` (created if missing) for the duration of the block; `FolderBusy` when a live run holds it.

    On exit the lock file is removed, and so is the folder when this call created it and left it empty.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    descriptor = _acquire(path, flag, folder)
    try:
        yield folder
    finally:
        if _names(path, descriptor):
            path.unlink()
        os.close(descriptor)
        if created:
            with contextlib.suppress(OSError):  # only when empty: a refused run leaves no folder behind
                folder.rmdir()


def _acquire(path: Path, flag: str, folder: Path) -> int:
    for _ in range(100):  # each turn follows a replacement of the file by another run
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(descriptor)
                raise
            owner = _owner(descriptor)
            orphaned = owner is not None and not _alive(owner)
            if orphaned and _names(path, descriptor):  # not a file another run already put in its place
                path.unlink(missing_ok=True)  # held by an orphan of a dead run: a fresh file takes over
            os.close(descriptor)
            if orphaned:
                continue
            who = f"pid {owner}" if owner is not None else "pid unknown"
            raise FolderBusy(
                f"{flag} {folder}: another run ({who}) is writing to this folder; wait for it to end or choose "
                "another folder"
            ) from None
        if not _names(path, descriptor):
            os.close(descriptor)  # the file was replaced after we opened it: lock the new one
            continue
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        return descriptor
    raise FolderBusy(f"{flag} {folder}: could not take the lock {path}; remove it if no run is using the folder")


def _names(path: Path, descriptor: int) -> bool:
    """True when `path` is still the file open as `descriptor`."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(descriptor))
    except FileNotFoundError:
        return False


def _owner(descriptor: int) -> int | None:
    """The pid in the lock file; a run that has just taken the lock may not have written it yet."""
    for _ in range(20):
        text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.05)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
