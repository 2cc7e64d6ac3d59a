"""Long chains of thought (issue 24, item 14): splitting grows linearly, segmentation keeps no [n, n]
matrix, and a trace whose stage runs long says what it is doing. Real text: the OpenThoughts trace
repeated; the real command line. Growth is checked as a ratio of CPU times, with a wide margin
(linear: 8x for 8x the text; the quadratic splitter of before: 64x)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from memento.cli import main
from memento.data import stages
from memento.data.inputs import thinking_and_answer
from memento.data.split import split_sentences
from memento.data.stages import SlowStages
from tests.conftest import EXAMPLES


def _thinking(size: int) -> str:
    """`size` characters of real reasoning: the OpenThoughts trace's thinking, repeated."""
    line = (EXAMPLES / "openthoughts_example_trace.jsonl").read_text().splitlines()[0]
    thinking, _ = thinking_and_answer(json.loads(line)["cot"])
    return (thinking * (size // len(thinking) + 1))[:size]


def _cpu_seconds(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        split_sentences(text)
        best = min(best, time.process_time() - start)
    return best


def test_splitting_grows_linearly_with_the_text():
    small, large = _thinking(50_000), _thinking(400_000)
    assert split_sentences(large).spans[: len(split_sentences(small).spans) - 1] == split_sentences(small).spans[:-1]
    ratio = _cpu_seconds(large) / _cpu_seconds(small)
    assert ratio < 20, f"8x the text took {ratio:.1f}x the time"


# Segments ~4,000 real sentences and prints the peak resident memory of the process (KiB on Linux).
SEGMENT_PEAK = """
import json, resource, sys
from memento.data.score import score_offline
from memento.data.segment import segment
from memento.data.split import approximate_tokens, split_sentences
sentences = split_sentences(sys.stdin.read()).sentences
scores, tokens = score_offline(sentences), [approximate_tokens(s) for s in sentences]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
blocks = segment(scores, tokens, min_block_tokens=200, min_blocks=10, max_blocks=20)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"sentences": len(sentences), "blocks": blocks, "growth_kib": after - before}))
"""


def test_segmenting_thousands_of_sentences_keeps_no_square_matrix():
    result = subprocess.run(
        [sys.executable, "-c", SEGMENT_PEAK], input=_thinking(350_000), capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    assert report["sentences"] > 3_500
    # one [n, n] float matrix alone is 128 MiB here (the solver of before kept four)
    assert report["growth_kib"] < 64 * 1024, f"peak memory grew {report['growth_kib'] / 1024:.0f} MiB"
    blocks = report["blocks"]
    assert 10 <= len(blocks) <= 20 and blocks[0][0] == 0 and blocks[-1][1] == report["sentences"] - 1


def test_slow_stages_are_said_once_they_run_long_and_repeated_while_they_last():
    said: list[str] = []
    with SlowStages(said.append, after=0.2, every=0.3, tick=0.02) as watch:
        watch.enter("t1", "segmenting 9 sentences")
        watch.enter(7, "splitting")
        time.sleep(0.1)
        watch.leave(7)  # done before `after`: never said
        time.sleep(0.5)
        watch.leave("t1")
        time.sleep(0.4)
    assert said[0] == "t1: segmenting 9 sentences (0 s so far)"
    assert len(said) == 2 and said[1].startswith("t1: segmenting 9 sentences")


def test_a_long_trace_says_its_stages_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(stages, "SLOW_AFTER_SECONDS", 0.0)  # said at the first look, however fast the stage
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
