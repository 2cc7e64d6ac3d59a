"""Per-mode summaries from sample records: accuracy metrics, response figures, KV, and the comparison."""

from __future__ import annotations

import math

import pytest

from memento.eval.benchmarks.problems import Benchmark, Problem
from memento.eval.report.summary import summarize

BENCHMARK = Benchmark(
    "hand", [Problem("p1", "one", "3", kind="toy"), Problem("p2", "two", "5", kind="toy")], "made by hand"
)


def _record(mode, problem, sample, answer, gold, *, peak, tokens=100, seconds=0.5, finish="stop", well_formed=True):
    return {
        "mode": mode,
        "id": problem,
        "sample": sample,
        "answer": answer,
        "correct": answer == gold,
        "status": "no_answer" if answer is None else ("correct" if answer == gold else "wrong"),
        "well_formed": well_formed,
        "blocks": 4,
        "mementos": 4,
        "tokens": tokens,
        "seconds": seconds,
        "finish_reason": finish,
        "kv_peak_tokens": peak,
        "kv_peak_bytes": peak * 1000,
        "kv_auc_gb_ktok": peak / 1e6,
    }


def test_summary_of_two_modes():
    memento = [  # p1: 1 of 3 right (majority "4" wrong); p2: 3 of 3 right
        _record("memento", "p1", 0, "3", "3", peak=100),
        _record("memento", "p1", 1, "4", "3", peak=120),
        _record("memento", "p1", 2, "4", "3", peak=110, well_formed=False),
        *(_record("memento", "p2", i, "5", "5", peak=90) for i in range(3)),
    ]
    plain = [
        *(_record("no_eviction", "p1", i, "3", "3", peak=300, seconds=0.25) for i in range(3)),
        _record("no_eviction", "p2", 0, None, "5", peak=250, finish="length"),
        _record("no_eviction", "p2", 1, "5", "5", peak=240),
        _record("no_eviction", "p2", 2, "5", "5", peak=260),
    ]
    summary = summarize({"memento": memento, "no_eviction": plain}, BENCHMARK, samples_per_problem=3)
    assert summary["benchmark"] == "hand" and summary["samples_per_problem"] == 3
    m, n = summary["modes"]["memento"], summary["modes"]["no_eviction"]
    assert m["pass_at_1"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["pass_at_1_stderr"] == pytest.approx(abs(1 - 1 / 3) / 2)  # stdev of two means / sqrt(2)
    assert m["pass_at_k"]["3"] == 1.0 and m["maj_at_k"]["3"] == 0.5 and m["maj_at_k"]["1"] == 1.0
    assert n["pass_at_1"] == pytest.approx(5 / 6) and n["maj_at_k"]["3"] == 1.0
    assert m["format_ok"] == pytest.approx(5 / 6) and n["answered"] == pytest.approx(5 / 6)
    assert n["truncated"] == pytest.approx(1 / 6) and m["truncated"] == 0
    assert m["kv_peak_tokens_mean"] == pytest.approx(100) and m["kv_peak_tokens_max"] == 120
    assert m["kv_peak_bytes_mean"] == pytest.approx(100_000) and m["kv_auc_gb_ktok_mean"] == pytest.approx(1e-4)
    assert m["tokens_per_second"] == pytest.approx(200) and n["tokens_per_second"] == pytest.approx(600 / 2.25)
    assert m["pass_at_1_gap_pp"] == pytest.approx(100 * (5 / 6 - 2 / 3))
    assert m["kv_peak_ratio"] == pytest.approx(100 / 275)  # 3 x 300 + 250 + 240 + 260 over 6
    assert n["pass_at_1_gap_pp"] == 0 and n["kv_peak_ratio"] == 1
    assert m["problems"] == 2 and m["samples"] == 6


def test_only_problems_with_records_count_and_code_has_no_majority():
    code = Problem("c1", "write f", "", kind="code", tests="def check(f): pass", entry_point="f")
    benchmark = Benchmark("mixed", [code, *BENCHMARK.problems], "hand")
    records = [
        {**_record("memento", "c1", 0, None, "", peak=50), "correct": True, "status": "correct"},
        _record("memento", "p1", 0, "3", "3", peak=60),
    ]
    figures = summarize({"memento": records}, benchmark)["modes"]["memento"]
    assert figures["problems"] == 2 and figures["pass_at_1"] == 1.0
    assert figures["maj_at_k"] == {} and "kv_peak_ratio" not in figures
    assert not math.isnan(figures["kv_peak_tokens_mean"])
