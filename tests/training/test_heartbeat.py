"""A torchrun rank stopped with SIGSTOP (issue 34, item 16): the other rank gives up after ``--ddp-timeout``
seconds, not torch's default half hour, and says in one line which rank stopped answering. Real processes:
torchrun, two gloo ranks on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memento.training.arguments import COLLECTIVE_TIMEOUT_S, stage_arguments
from memento.training.options import TrainOptions
from tests.conftest import build_tokenizer
from tests.models import save_checkpoint
from tests.training.test_distributed import ROOT, _environment
from tests.training.test_train_cli import _records

TIMEOUT_S = 15  # long enough for two loaded ranks to meet at each step, short enough for a test


def test_the_collective_timeout_is_mementos_default_unless_given(tmp_path):
    default = stage_arguments(tmp_path, TrainOptions(), memento=False, evaluate=False, bf16=False)
    assert default.ddp_timeout == COLLECTIVE_TIMEOUT_S == 600  # transformers' own: 1800
    given = TrainOptions(trainer_arguments={"ddp_timeout": 30})
    assert stage_arguments(tmp_path, given, memento=False, evaluate=False, bf16=False).ddp_timeout == 30


def test_a_timed_out_error_outside_a_process_group_keeps_its_traceback():
    """A single process (no group): a "timed out" RuntimeError (a hub download, a device) is not a stalled rank;
    report_timeout leaves it alone rather than ending the process with a line about collectives."""
    code = (
        "from memento.training import distributed\n"
        "distributed.report_timeout(RuntimeError('Read timed out.'), 600)\n"
        "print('left to the caller')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "left to the caller\n", done.stderr
    assert "--ddp-timeout" not in done.stderr


def _rank_pid(launcher: int, rank: int, deadline: float) -> int:
    """The pid of the worker of `launcher` (torchrun) whose RANK is `rank`."""
    while time.time() < deadline:
        for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if f"RANK={rank}".encode() in environ:
                return int(child)
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} under torchrun")


@pytest.mark.slow  # torchrun, two ranks, one --ddp-timeout (~40 s on a loaded 2-core machine)
def test_a_stopped_rank_is_named_in_one_line_after_the_collective_timeout(tmp_path):
    save_checkpoint(tmp_path / "base", build_tokenizer(with_memento_tokens=False), layers=1)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records(8)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    command += ["memento.cli", "train", "--model", str(tmp_path / "base"), "--data", str(data)]
    command += ["--output", str(tmp_path / "out"), "--stage", "full", "--epochs", "10000", "--max-length", "256"]
    command += ["--save-steps", "1000000", "--ddp-timeout", str(TIMEOUT_S)]  # minutes of steps, no checkpoint
    launcher = subprocess.Popen(command, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert launcher.stderr is not None
    stderr = bytearray()
    training, named = threading.Event(), threading.Event()

    def read_stderr() -> None:  # in chunks: the progress bar ends its updates with \r, not \n
        while chunk := os.read(launcher.stderr.fileno(), 1 << 16):  # type: ignore[union-attr]
            stderr.extend(chunk)
            if b"it/s]" in stderr or b"s/it]" in stderr:
                training.set()
            if b"memento train: error:" in stderr:
                named.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    stopped = None
    try:
        assert training.wait(300), stderr.decode(errors="replace")[-4000:]  # steps are running on both ranks
        stopped = _rank_pid(launcher.pid, 1, time.time() + 30)
        os.kill(stopped, signal.SIGSTOP)
        started = time.monotonic()
        assert named.wait(TIMEOUT_S + 120), stderr.decode(errors="replace")[-4000:]
        waited = time.monotonic() - started
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGKILL)  # torchrun would wait 30 s for a stopped rank to take its SIGTERM
        if launcher.poll() is None:
            launcher.kill()
        launcher.wait(timeout=120)
        reader.join(timeout=30)
    text = stderr.decode(errors="replace")
    assert launcher.returncode != 0
    lines = [line.strip() for line in text.splitlines() if line.startswith("memento train: error:")]
    assert lines == [
        f"memento train: error: rank 1 (pid {stopped} on {os.uname().nodename}) stopped answering: rank 0 waited "
        f"{TIMEOUT_S} s (--ddp-timeout) in a collective, and its heartbeat has stopped "
        "(stopped with SIGSTOP, hung, or swapped out?)"
    ]
    assert waited < TIMEOUT_S + 60  # the timeout given, not torch's default (30 min)
    assert f'File "{ROOT / "src"}' not in text  # no traceback through memento's code
    assert not (tmp_path / "out" / "memento_training.json").exists()
