"""Progress within long traces (issue 24, item 14): a stage of one trace that runs long is said on stderr,
and again while it lasts. Real threads and clocks; the real command line on a 300 KB real trace."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest

from memento.cli import main
from memento.data import stages
from memento.data.stages import SlowStages
from tests.data.test_long_trace import _thinking


def test_slow_stages_are_said_once_they_run_long_and_repeated_while_they_last():
    """Waits on what the watcher said, not on sleeps, so that a loaded machine changes only how long it takes."""
    said: list[str] = []

    def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, said
            time.sleep(0.01)

    with SlowStages(said.append, after=0.5, every=0.3, tick=0.02) as watch:
        watch.enter(7, "splitting")
        watch.leave(7)  # done before `after`: never said
        watch.enter("t1", "segmenting 9 sentences")
        until(lambda: len(said) >= 2)  # said once past `after`, and again `every` later
        watch.leave("t1")
        # a line the watcher decided before the leave may still come; one for a stage entered after the leave
        # comes after it (one thread says them in order), so once "later" is said, t1 is said no more
        watch.enter("later", "scoring")
        until(lambda: any(line.startswith("later: ") for line in said))
        count = sum(line.startswith("t1: ") for line in said)
        until(lambda: sum(line.startswith("later: ") for line in said) >= 2)
    assert re.fullmatch(r"t1: segmenting 9 sentences \(\d+ s so far\)", said[0]), said
    assert count >= 2 and not any(line.startswith("7: ") for line in said)
    assert sum(line.startswith("t1: ") for line in said) == count  # nothing said once the trace is done


def test_a_long_trace_says_its_stages_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(stages, "SLOW_AFTER_SECONDS", 0.0)  # said at the first look, however fast the stage
    monkeypatch.setattr(stages, "LOOK_EVERY_SECONDS", 0.005)  # and a look every 5 ms: a fast machine is seen too
    data, out = tmp_path / "long.jsonl", tmp_path / "out"
    data.write_text(json.dumps({"task_id": "long", "cot": f"<think>{_thinking(300_000)}</think>42"}) + "\n")
    assert main(["data", "build", "--input", str(data), "--output-dir", str(out), "--offline"]) == 0
    err = capsys.readouterr().err
    assert "memento data build: long: " in err and "s so far)" in err
    record = json.loads((out / "records.jsonl").read_text())
    assert 10 <= len(record["blocks"]) <= 20


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match=r"need after >= 0, every > 0 and tick > 0 seconds, got -1\.0"):
        SlowStages(print, after=-1.0)
