"""`memento eval view` of a run with one long response (issue 34, item 16): the page holds all of it, and the
command's peak memory grows with the response's size by a small constant, not by the tokenizer's working
memory for the whole text (1.26 GB for 2 MB before). Each page is built by the command in its own process,
whose peak resident memory `wait4` reports. `bench/eval_view_size.py` measures time and memory from 10 KB to
4 MB against a baseline tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memento.toy import CHECKPOINT
from tests.eval.report.small_run import response, write_small_run

pytestmark = pytest.mark.slow

MIB = 2**20


def _peak_mib(run_dir: Path) -> float:
    """Peak resident memory of `memento eval view RUN_DIR`, in MiB."""
    command = [sys.executable, "-m", "memento.cli", "eval", "view", str(run_dir)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, process.stderr.read().decode()[-2000:] if process.stderr else ""
    return usage.ru_maxrss / 1024


def test_view_memory_grows_linearly_with_one_long_response(tmp_path):
    """Item 16: a 2 MB response (2 million tokens of the toy model's tokenizer) costs the page build far less
    memory than before, and the page still holds every block of it."""
    runs = {}
    for name, blocks in (("short", 4), ("long", 1400)):
        text = response("7", blocks=blocks, block_chars=1500)
        runs[name] = write_small_run(
            tmp_path / name, response_text=text, modes=("memento",), problems=1, samples=1, tokenizer=CHECKPOINT
        )
    long_text = response("7", blocks=1400, block_chars=1500)
    assert len(long_text) > 2 * MIB
    growth = _peak_mib(runs["long"]) - _peak_mib(runs["short"])
    assert growth < 450, f"{growth:.0f} MiB more for a 2 MB response"  # before: ~800 MiB more
    page = (runs["long"] / "view.html").read_text()
    assert "step 1399, " in page and page.count("step 1399, ") >= 1500 // 8  # the last block, whole
