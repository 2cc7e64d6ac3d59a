"""Two `memento eval` runs into one folder (issue 24, item 4): the second is refused in one line naming
the first's pid, also from another pid namespace (issue 34, item 2); after the first is killed with SIGKILL
the next run takes the folder over, every sample is written once and `memento eval grade` accepts the run's
own file. Real processes, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from memento.cli import main
from memento.folder_lock import LOCK_FILE
from tests.cli.test_bad_input import refused
from tests.data.fake_openai import FakeOpenAI
from tests.eval.run.test_prompted_backend import eval_command, read_records, write_benchmark
from tests.prompted.scripted import ScriptedModel
from tests.test_folder_lock import unshare_works

IDS = ["clean", "forgot", "looping"]


@pytest.mark.slow  # a subprocess start (~10 s on a loaded 2-core machine)
def test_a_second_eval_is_refused_and_a_killed_runs_folder_is_taken_over(tmp_path, capsys):
    benchmark, output = write_benchmark(tmp_path / "b.jsonl", IDS), tmp_path / "run"
    with FakeOpenAI(responder=ScriptedModel(), hold="tag=looping") as server:  # the first run waits on "looping"
        argv = eval_command(server, benchmark, output, "--concurrency", "1")
        first = subprocess.Popen([sys.executable, "-m", "memento.cli", *argv], stderr=subprocess.PIPE, text=True)
        samples = output / "samples.jsonl"
        # one worker, problem-major with the modes alternating: both modes of "clean" and "forgot" are written,
        # then the worker waits on "looping" (reading the file earlier races the run's next writes)
        before_hold = 2 * IDS.index("looping")
        deadline = time.time() + 120
        while time.time() < deadline and not (
            samples.exists() and len(samples.read_text().splitlines()) >= before_hold
        ):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            time.sleep(0.05)
        assert (output / LOCK_FILE).read_text().strip() == str(first.pid)
        written = samples.read_text()
        assert len(written.splitlines()) == before_hold
        line = refused(capsys, argv, f"--output {output}: another run (pid {first.pid}) is writing to this folder")
        assert line.startswith("memento eval: error: ")
        assert samples.read_text() == written  # the refused run wrote nothing
        if unshare_works():  # issue 34, item 2: from another pid namespace, where the holder's pid is not seen
            other = ["unshare", "--pid", "--fork", sys.executable, "-m", "memento.cli", *argv]
            second = subprocess.run(other, capture_output=True, text=True, timeout=120)
            assert second.returncode == 2, second.stderr
            assert f"another run (pid {first.pid}) is writing to this folder" in second.stderr
            assert samples.read_text() == written
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        server.release.set()
        assert main([*argv, "--json"]) == 0  # takes over the lock the kill left
    records = read_records(output)  # asserts no sample was written twice
    assert sorted(records) == sorted((mode, i) for mode in ("prompted", "plain") for i in IDS)
    assert not (output / LOCK_FILE).exists()
    capsys.readouterr()
    grade = ["eval", "grade", "--responses", str(samples), "--benchmark", str(benchmark), "--json"]
    assert main(grade) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {name: figures["samples"] for name, figures in summary["modes"].items()} == {"prompted": 3, "plain": 3}
