"""Progress within long traces (issue 24, item 14): a stage of one trace that runs long is said on stderr,
and again while it lasts. Real threads and clocks; the real command line on a 300 KB real trace."""

from __future__ import annotations

import json
import time

import pytest

from memento.cli import main
from memento.data import stages
from memento.data.stages import SlowStages
from tests.data.test_long_trace import _thinking


def test_slow_stages_are_said_once_they_run_long_and_repeated_while_they_last():
    said: list[str] = []
    with SlowStages(said.append, after=0.2, every=0.3, tick=0.02) as watch:
        watch.enter("t1", "segmenting 9 sentences")
        watch.enter(7, "splitting")
        time.sleep(0.1)
        watch.leave(7)  # done before `after`: never said
        time.sleep(0.6)
        watch.leave("t1")
        count = len(said)
        time.sleep(0.4)
    assert said[0] == "t1: segmenting 9 sentences (0 s so far)"
    assert count >= 2 and all(line.startswith("t1: segmenting 9 sentences (") for line in said)
    assert len(said) == count  # nothing said once the trace is done


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
