"""One run at a time per output folder: `hold_folder` locks it for as long as a run writes there.

The lock is an `fcntl.flock` on ``FOLDER/.memento.lock``, kept open for the whole run. The kernel
holds it for the open file, so it is released when the run ends however it ends (SIGKILL included),
and it holds across pid namespaces (a second container on a shared volume, ``unshare --pid``). The
pid written in the file is information for the refusal message only: a lock is never judged stale
from its pid, and a lock file is removed only by the run that holds it.

Forked children do not keep the lock: the descriptor is closed in them at fork (and is not inherited
across exec), so a worker that outlives its run does not keep the folder busy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memento.errors import UsageError

LOCK_FILE = ".memento.lock"

# Descriptors of the locks this process holds; a forked child closes its copies (see `_close_in_child`).
_HELD: set[int] = set()


class FolderBusy(UsageError):
    """Another live run holds the folder; the message names the folder, the flag and the other run's pid."""


def _close_in_child() -> None:
    for descriptor in _HELD:
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


@contextmanager
def hold_folder(folder: str | Path, flag: str) -> Iterator[Path]:
    """Lock `folder` (created if missing) for the duration of the block; `FolderBusy` when a run holds it.

    On exit the lock file is removed (while still locked), and so is the folder when this call created it
    and left it empty.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    try:
        descriptor = _acquire(path, flag, folder)
    except UsageError as error:
        # a run refused before it began leaves no folder behind; a busy folder's lock file is its holder's
        if created and not isinstance(error, FolderBusy):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
                folder.rmdir()
        raise
    _HELD.add(descriptor)
    try:
        yield folder
    finally:
        if descriptor in _HELD:  # not a forked child leaving the block: only the holder releases
            _HELD.discard(descriptor)
            if _names(path, descriptor):  # ours and locked: a contender re-checks the path after locking
                path.unlink()
            os.close(descriptor)
            if created:
                with contextlib.suppress(OSError):  # only when empty: a refused run leaves no folder behind
                    folder.rmdir()


def _acquire(path: Path, flag: str, folder: Path) -> int:
    for _ in range(100):  # each turn follows the holder's release (and removal) of the file we opened
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise UsageError(f"{flag} {folder}: cannot create the lock file {path}: {error.strerror}") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            owner = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
            os.close(descriptor)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise UsageError(
                    f"{flag} {folder}: cannot lock {path}: {error.strerror} (the file system may not support "
                    "locks, as some network mounts do not; choose a folder on a local disk)"
                ) from None
            who = f"pid {owner}" if owner.isdigit() else "pid not yet written"
            raise FolderBusy(
                f"{flag} {folder}: another run ({who}) is writing to this folder; wait for it to end or choose "
                "another folder"
            ) from None
        if not _names(path, descriptor):
            os.close(descriptor)  # the holder removed this file as it released it: lock the current one
            continue
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        return descriptor
    raise FolderBusy(f"{flag} {folder}: could not take the lock {path}: other runs keep taking it; try again")


def _names(path: Path, descriptor: int) -> bool:
    """True when `path` is still the file open as `descriptor`."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(descriptor))
    except FileNotFoundError:
        return False
