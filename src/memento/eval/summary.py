"""Records of a run (or of a graded responses file) -> the per-mode summary the report prints.

Per mode: pass@1 with its standard error, pass@k and maj@k (`metrics`), format adherence, tokens,
blocks and mementos per response, peak KV (tokens, bytes) and KV AUC from the replay, measured
tokens per second, and against `no_eviction` (when present) the pass@1 gap (points) and the
ratio of mean peak KV bytes.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from memento.eval.graders import answer_classes
from memento.eval.metrics import accuracy_summary
from memento.eval.problems import Benchmark

REFERENCE_MODE = "no_eviction"


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _stderr(values: Sequence[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def summarize_mode(records: Sequence[Mapping[str, Any]], benchmark: Benchmark) -> dict[str, Any]:
    """The figures of one mode; problems are those of `benchmark` that have records."""
    by_problem: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        by_problem[str(record["id"])].append(record)
    problems = [problem for problem in benchmark if problem.id in by_problem]
    if not problems:
        raise ValueError("no records for any problem of the benchmark")
    groups = [sorted(by_problem[problem.id], key=lambda r: int(r["sample"])) for problem in problems]
    correct = [[bool(r["correct"]) for r in group] for group in groups]
    votable = all(problem.kind != "code" for problem in problems)
    classes = (
        [
            answer_classes([r["answer"] for r in group], problem.kind)
            for problem, group in zip(problems, groups, strict=True)
        ]
        if votable
        else None
    )
    summary = accuracy_summary(correct, classes)
    summary.setdefault("maj_at_k", {})
    flat = [r for group in groups for r in group]
    peaks = [float(r["kv_peak_tokens"]) for r in flat]
    seconds = sum(float(r.get("seconds") or 0.0) for r in flat)
    tokens = [int(r["tokens"]) for r in flat]
    summary.update(
        problems=len(problems),
        samples=len(flat),
        format_ok=_mean([bool(r["well_formed"]) for r in flat]),
        answered=_mean([r["status"] != "no_answer" for r in flat]),
        truncated=_mean([r.get("finish_reason") == "length" for r in flat]),
        tokens_mean=_mean(tokens),
        blocks_mean=_mean([r["blocks"] for r in flat]),
        mementos_mean=_mean([r["mementos"] for r in flat]),
        kv_peak_tokens_mean=_mean(peaks),
        kv_peak_tokens_stderr=_stderr(peaks),
        kv_peak_tokens_max=max(peaks),
        kv_peak_bytes_mean=_mean([float(r["kv_peak_bytes"]) for r in flat]),
        kv_auc_gb_ktok_mean=_mean([float(r["kv_auc_gb_ktok"]) for r in flat]),
        tokens_per_second=sum(tokens) / seconds if seconds > 0 else None,
    )
    measured = [r["cache_peak_tokens"] for r in flat if "cache_peak_tokens" in r]
    if len(measured) == len(flat):
        summary["cache_peak_tokens_mean"] = _mean(measured)
    return summary


def summarize(
    records_by_mode: Mapping[str, Sequence[Mapping[str, Any]]], benchmark: Benchmark, **context: Any
) -> dict[str, Any]:
    """``{"benchmark": name, ..., "modes": {mode: figures}}``; `context` adds top-level keys."""
    modes = {name: summarize_mode(records, benchmark) for name, records in records_by_mode.items() if records}
    reference = modes.get(REFERENCE_MODE)
    if reference is not None:
        for figures in modes.values():
            figures["pass_at_1_gap_pp"] = 100 * (reference["pass_at_1"] - figures["pass_at_1"])
            figures["kv_peak_ratio"] = figures["kv_peak_bytes_mean"] / reference["kv_peak_bytes_mean"]
    return {"benchmark": benchmark.name, "source": benchmark.source, **context, "modes": modes}
