"""Records of a run (or of a graded responses file) -> the per-mode summary the report prints.

Per mode: pass@1 with its standard error, pass@k and maj@k (`metrics`), format adherence, tokens,
blocks and mementos per response, peak KV (tokens, bytes) and KV AUC from the replay, measured
tokens per second, and against the reference mode (`no_eviction`, else `plain`) the pass@1 gap
(points) and the ratio of mean peak KV (bytes; tokens when bytes are unknown). Modes measured at an
endpoint (the prompted backend) add their bill, and prompted mode its rounds and fallbacks.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from memento.eval.benchmarks.problems import Benchmark
from memento.eval.grading.graders import answer_classes
from memento.eval.grading.metrics import accuracy_summary
from memento.eval.run.backends.base import ENDPOINT

REFERENCE_MODES = ("no_eviction", "plain")
"""The mode other modes are compared with: the first of these a summary has."""


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _stderr(values: Sequence[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def _mean_known(values: Sequence[Any]) -> float | None:
    """The mean, or None when any value is unknown (an endpoint's KV bytes without a geometry)."""
    return None if any(value is None for value in values) else _mean([float(value) for value in values])


def _endpoint_figures(flat: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Billed tokens (prompt + completion over every call) and calls; rounds and fallbacks (by kind) of
    prompted mode. Empty unless every record was measured at the endpoint."""
    if not flat or any(r.get("kv_from") != ENDPOINT for r in flat):
        return {}
    figures: dict[str, Any] = {
        "billed_tokens_mean": _mean([int(r["prompt_tokens"]) + int(r["tokens"]) for r in flat]),
        "calls_mean": _mean([int(r["calls"]) for r in flat]),
    }
    if all("rounds" in r for r in flat):
        kinds = Counter(event["kind"] for r in flat for event in r.get("fallback_events", ()))
        figures.update(
            rounds_mean=_mean([int(r["rounds"]) for r in flat]),
            fallbacks_mean=_mean([int(r["fallbacks"]) for r in flat]),
            fallback_kinds=dict(sorted(kinds.items())),
        )
    return figures


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
        kv_peak_bytes_mean=_mean_known([r["kv_peak_bytes"] for r in flat]),
        kv_auc_gb_ktok_mean=_mean_known([r["kv_auc_gb_ktok"] for r in flat]),
        tokens_per_second=sum(tokens) / seconds if seconds > 0 else None,
        **_endpoint_figures(flat),
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
    reference_name = next((name for name in REFERENCE_MODES if name in modes), None)
    if reference_name is not None:
        reference = modes[reference_name]
        in_bytes = all(figures["kv_peak_bytes_mean"] is not None for figures in modes.values())
        unit = "kv_peak_bytes_mean" if in_bytes else "kv_peak_tokens_mean"
        for figures in modes.values():
            figures["pass_at_1_gap_pp"] = 100 * (reference["pass_at_1"] - figures["pass_at_1"])
            figures["kv_peak_ratio"] = figures[unit] / reference[unit]
        context["reference_mode"] = reference_name
    return {"benchmark": benchmark.name, "source": benchmark.source, **context, "modes": modes}
