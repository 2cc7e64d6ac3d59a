"""`memento serve` in a subprocess for the tests: a free port, ready when the `openai` client lists a model,
and stopped with every engine process it started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (the probe is closed on return)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(
    arguments: list[str],
    log_directory: Path,
    *,
    vllm_arguments: tuple[str, ...] = ("--enforce-eager",),
    startup_s: float = 300,
    client_timeout_s: float = 30,
) -> Iterator[tuple[OpenAI, str]]:
    """`memento serve ARGUMENTS --port P -- VLLM_ARGUMENTS`, up; yields (client, base URL), then stops it.

    The server's output goes to `log_directory`/server.log (a file: a full pipe would stall the server);
    its tail is in the failure when it exits or is not up within `startup_s` seconds.
    """
    port = free_port()
    command = [sys.executable, "-m", "memento.cli", "serve", *arguments, "--port", str(port), "--", *vllm_arguments]
    log = (log_directory / "server.log").open("w+")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=client_timeout_s)
    deadline = time.time() + startup_s
    try:
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"memento serve exited with {process.returncode}: {log.read()[-3000:]}")
            try:
                client.models.list()
                break
            except Exception:
                if time.time() > deadline:
                    pytest.fail(f"memento serve did not come up within {startup_s:.0f} s")
                time.sleep(1)
        yield client, base_url
    finally:
        seconds = stop_server(process)
        print(f"memento serve shut down in {seconds:.1f} s")  # shown with -s / -rP
        log.close()


def stop_server(process: subprocess.Popen, grace: float = 30) -> float:
    """Shut the server and its engine processes down; returns the seconds it took.

    SIGTERM first (vLLM's server then shuts its engine core down), SIGKILL to the whole session
    after `grace` seconds, and to any engine process left behind either way, so no vLLM process
    outlives the fixture.
    """
    start = time.perf_counter()
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the session holds the server and its engine core
    process.wait()
    return time.perf_counter() - start
