"""Long chains of thought (issue 24, item 14): splitting grows linearly and segmentation keeps no [n, n]
matrix. Real text: the OpenThoughts trace repeated. Growth is checked as a ratio of CPU times, with a
wide margin (linear: 8x for 8x the text; the quadratic splitter of before: 64x)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from memento.data.split import split_sentences
from tests.conftest import EXAMPLES


def _thinking(size: int) -> str:
    """`size` characters of real reasoning: the OpenThoughts trace's thinking, repeated."""
    line = (EXAMPLES / "openthoughts_example_trace.jsonl").read_text().splitlines()[0]
    thinking = json.loads(line)["cot"].split("</think>")[0].removeprefix("<think>")
    return (thinking * (size // len(thinking) + 1))[:size]


def _cpu_seconds(text: str) -> float:
    best = float("inf")
    for _ in range(3):  # the best of three, unless one is long enough to be clear of noise
        start = time.process_time()
        split_sentences(text)
        best = min(best, time.process_time() - start)
        if best > 1.0:
            break
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
