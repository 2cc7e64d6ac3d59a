"""What `memento data stats` and the build's summary show, and the offline builder's extractive mementos."""

from __future__ import annotations

import json
import statistics

import pytest

from memento.cli import main
from memento.data.build import BuildOptions, process_trace
from memento.data.extractive import compress_extractive
from memento.data.split import split_sentences
from memento.data.stats import dataset_stats
from tests.conftest import EXAMPLES
from tests.data.fake_openai import FakeOpenAI
from tests.data.test_build import _write_input


def _real_blocks() -> list[tuple[str, str]]:
    """(domain, block) for every block the authors' MEMENTO traces hold (math, code, science)."""
    blocks = []
    for name, domain in (("response", "math"), ("code", "code"), ("science", "science")):
        trace = json.loads((EXAMPLES / f"memento_trace_{name}.json").read_text())
        blocks += [(domain, s["text"].strip()) for s in trace["segments"] if s["type"] == "block"]
    return blocks


def test_extractive_mementos_land_in_the_asked_range_on_real_blocks():
    ratios = [len(compress_extractive(block)) / len(block) for _, block in _real_blocks()]
    assert all(0.15 <= r <= 0.25 for r in ratios), ratios  # the default range, on every real block
    tight = [len(compress_extractive(b, ratios=(0.08, 0.12))) / len(b) for _, b in _real_blocks()]
    assert all(r <= 0.12 for r in tight) and statistics.median(tight) >= 0.08
    with pytest.raises(ValueError, match="ratios: expected 0 < min <= max <= 1"):
        compress_extractive("x = 1.", ratios=(0.3, 0.2))


def test_extractive_mementos_keep_results_and_equations_and_drop_filler():
    block = (
        "Okay, so let me think about how many clips there are. Hmm, this is a rate problem. "
        "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether in April and May."
    )
    memento = compress_extractive(block)
    assert "48+24 = 72" in memento and "48/2 = 24" in memento  # both results, in the block's order
    assert memento.index("24") < memento.index("72") and "Okay" not in memento and "Hmm" not in memento
    assert len(memento) <= 0.25 * len(block)
    # every memento piece is the block's own text (extractive), filler aside
    for piece in memento.split("; "):
        assert piece in " ".join(block.split())
    sentences = split_sentences(block).sentences
    assert len(sentences) == 4


def test_stats_report_compression_judge_scores_rewrites_and_flag_long_mementos(tmp_path, capsys):
    data, out = tmp_path / "in.jsonl", tmp_path / "out"
    _write_input(data, 2)
    base = ["data", "build", "--input", str(data), "--output-dir", str(out), "--min-block-tokens", "30"]
    with FakeOpenAI() as server:  # block 1's first memento scores 5: rewritten once, then 9s
        flags = ("--base-url", server.base_url, "--model", "m", "--api-key", "k", "--min-blocks", "2")
        assert main([*base, *flags]) == 0
    summary = capsys.readouterr().out
    assert "judge scores (" in summary and "mementos rewritten after the judge:" in summary  # the build says it too
    stats = dataset_stats(out)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    blocks = sum(len(r["blocks"]) for r in records)
    assert stats["judge_scores"]["histogram"] == {"9": blocks}  # the final scores
    assert stats["mementos_rewritten"] == blocks and stats["records_refined"] == 2  # "revised memento i" != draft
    assert all(r["mementos_rewritten"] == list(range(len(r["blocks"]))) for r in records)
    assert stats["mementos_longer_than_block"] == 0 and stats["paper_chars_median_by_domain"]["science"] == 0.23

    # a memento longer than its block is flagged, by record and block
    records[1]["mementos"][0] = records[1]["blocks"][0] + " and more"
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["data", "stats", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"FLAGGED: 1 mementos longer than their block, in 1 records: {records[1]['task_id']} (blocks 0)" in printed
    assert (
        "memento/block chars per block:" in printed
        and "memento/block tokens per block:" in printed
        and "math: median" in printed
        and "(paper 0.16:" in printed
    )
    assert "judge scores (" in printed and f"histogram {{9: {blocks}}}" in printed


def test_offline_ratio_options_reach_the_builder(tmp_path, capsys):
    record = {"task_id": "t", "problem": "p", "cot": (EXAMPLES / "openthoughts_example_trace.jsonl").read_text()}
    record["cot"] = json.loads(record["cot"].splitlines()[0])["cot"]
    narrow = process_trace(record, BuildOptions(offline_min_ratio=0.05, offline_max_ratio=0.08))
    assert all(len(m) <= 0.08 * len(b) + 1 for b, m in zip(narrow["blocks"], narrow["mementos"], strict=True))
    with pytest.raises(ValueError, match="expected 0 < min <= max <= 1"):
        BuildOptions(offline_min_ratio=0.3, offline_max_ratio=0.2)
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(record) + "\n")
    arguments = ["data", "build", "--input", str(data), "--output-dir", str(tmp_path / "o"), "--offline"]
    assert main([*arguments, "--offline-min-ratio", "0.3", "--offline-max-ratio", "0.2"]) == 2
    assert "offline_min_ratio, offline_max_ratio: expected 0 < min <= max <= 1" in capsys.readouterr().err
