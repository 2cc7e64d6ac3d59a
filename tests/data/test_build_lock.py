"""Two `memento data build` runs into one folder (issue 24, item 4): the second is refused in one line
naming the first's pid; after the first is killed with SIGKILL, the next run takes the folder over and
finishes with every trace recorded exactly once. Real processes, a real HTTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from memento.folder_lock import LOCK_FILE
from tests.cli.test_bad_input import refused
from tests.data.fake_openai import FakeOpenAI
from tests.data.test_build import _write_input


@pytest.mark.slow  # two subprocess starts (~10 s each on a loaded 2-core machine)
def test_a_second_run_is_refused_and_a_killed_runs_folder_is_taken_over(tmp_path, capsys):
    data, out = tmp_path / "in.jsonl", tmp_path / "out"
    _write_input(data, 4)
    with FakeOpenAI(hold="problem 2") as server:  # the first run stops at t2, holding the folder
        argv = ["data", "build", "--input", str(data), "--output-dir", str(out), "--base-url", server.base_url]
        argv += ["--model", "m", "--api-key", "k", "--min-block-tokens", "30", "--workers", "1", "--no-judge"]
        first = subprocess.Popen([sys.executable, "-m", "memento.cli", *argv], stderr=subprocess.PIPE, text=True)
        records = out / "records.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and not (records.exists() and len(records.read_text().splitlines()) == 2):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            time.sleep(0.05)
        assert (out / LOCK_FILE).read_text().strip() == str(first.pid)
        # a second process, at once: refused in one line naming the first; nothing written
        second = subprocess.run([sys.executable, "-m", "memento.cli", *argv], capture_output=True, text=True)
        assert second.returncode == 2 and second.stdout == ""
        assert second.stderr == (
            f"memento data: error: --output-dir {out}: another run (pid {first.pid}) is writing to this folder; "
            "wait for it to end or choose another folder\n"
        )
        refused(capsys, argv, f"another run (pid {first.pid})")  # and from this process too
        assert len(records.read_text().splitlines()) == 2
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        server.release.set()
        assert (out / LOCK_FILE).exists()  # left by the kill: taken over by the next run
        again = subprocess.run([sys.executable, "-m", "memento.cli", *argv], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "2 traces processed; 2 already done" in again.stdout
    ids = [json.loads(line)["task_id"] for line in records.read_text().splitlines()]
    assert sorted(ids) == ["t0", "t1", "t2", "t3"]  # each exactly once
    assert not (out / LOCK_FILE).exists()
