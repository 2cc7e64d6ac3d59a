"""Which rank stopped answering, when a collective times out (``--ddp-timeout``, memento's default 600 s).

A collective that waits on a rank that is stopped (SIGSTOP), hung or swapped out fails after the
process group's timeout with a message that names no rank ("Timed out waiting 600000ms for recv
operation"). So each process beats: a daemon thread adds 1 to its counter in the launcher's
rendezvous store (``MASTER_ADDR:MASTER_PORT``) every `PERIOD_S` seconds. When the timeout fires,
`stalled_line` reads every counter twice, `PERIOD_S * 6` apart: a rank whose counter did not move is
the one that stopped answering (a stopped process stops all its threads). Counters, not clocks: the
hosts' clocks need not agree.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
import threading
import time

import torch

PERIOD_S = 0.5
_PREFIX = "memento/heartbeat"
_state: dict[str, object] = {}  # "store", "thread", "stop", "rank", "world": this process's heartbeat


def start(rank: int, world_size: int) -> None:
    """Beat for `rank` of `world_size` until `stop`; nothing without a launcher's store or with one process."""
    address, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if world_size < 2 or not address or not (port or "").isdigit() or "thread" in _state:
        return
    try:
        store = torch.distributed.TCPStore(address, int(port), is_master=False, timeout=datetime.timedelta(seconds=10))
        store.set(f"{_PREFIX}/who/{rank}", f"pid {os.getpid()} on {socket.gethostname()}")
    except (RuntimeError, OSError):  # no store to reach: no heartbeat, the timeout still fires
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(PERIOD_S):
            try:
                store.add(f"{_PREFIX}/{rank}", 1)
            except (RuntimeError, OSError):
                return

    thread = threading.Thread(target=beat, name="memento-heartbeat", daemon=True)
    _state.update(store=store, thread=thread, stop=stop, rank=rank, world=world_size)
    thread.start()


def stop() -> None:
    """Stop beating (the run is over)."""
    if "stop" in _state:
        _state["stop"].set()  # type: ignore[attr-defined]
    _state.clear()


def is_timeout(error: BaseException) -> bool:
    """Whether `error` is a collective that timed out (gloo: "Timed out waiting ...", NCCL: "... timeout ...")."""
    return isinstance(error, RuntimeError) and re.search(r"timed out|timeout", str(error), re.IGNORECASE) is not None


def stalled_line(error: BaseException, timeout_s: float) -> str:
    """One line for a collective that timed out: the ranks whose heartbeat stopped, or that none did."""
    store, rank, world = _state.get("store"), _state.get("rank"), _state.get("world")
    if rank is None:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    waited = f"rank {rank} waited {timeout_s:g} s (--ddp-timeout) in a collective"
    if store is None:
        return f"{waited} for another process and gave up: {' '.join(str(error).split())[:200]}"
    try:
        keys = [f"{_PREFIX}/{other}" for other in range(world) if other != rank]  # type: ignore[call-overload]
        before = [store.add(key, 0) for key in keys]  # type: ignore[attr-defined]
        time.sleep(PERIOD_S * 6)
        after = [store.add(key, 0) for key in keys]  # type: ignore[attr-defined]
        stalled = [int(key.rsplit("/", 1)[1]) for key, a, b in zip(keys, before, after, strict=True) if a == b]
        who = {other: store.get(f"{_PREFIX}/who/{other}").decode() for other in stalled}  # type: ignore[attr-defined]
    except (RuntimeError, OSError):
        return f"{waited} for another process, and the launcher's store no longer answers: it may have stopped"
    if not stalled:
        return f"{waited}; every other rank is still alive, so one is slow or waits in another collective"
    names = ", ".join(f"rank {other} ({who[other]})" for other in stalled)
    verb = "stopped" if len(stalled) == 1 else "all stopped"
    return (
        f"{names} {verb} answering: {waited}, and its heartbeat has stopped "
        "(stopped with SIGSTOP, hung, or swapped out?)"
    )
