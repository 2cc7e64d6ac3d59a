"""PNG plots of a run (matplotlib, Agg): accuracy against peak KV, and the distribution of peak KV."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from memento.figures import figure_to

UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("bytes", 1))


def _unit(largest: float) -> tuple[str, float]:
    """The largest unit in which `largest` bytes is at least 1."""
    return next(((name, size) for name, size in UNITS if largest >= size), UNITS[-1])


def _in_bytes(modes: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether every mode knows its peak KV in bytes (an endpoint without a geometry gives only tokens)."""
    return all(m["kv_peak_bytes_mean"] is not None for m in modes.values())


def plot_accuracy_vs_kv(summary: Mapping[str, Any], path: str | Path) -> None:
    """pass@1 (± its standard error) against mean peak KV (± its standard error), one point per mode;
    in tokens when some mode's bytes are unknown."""
    with figure_to(path, figsize=(6.5, 4.5)) as (_, axis):
        _draw_accuracy_vs_kv(axis, summary)


def _draw_accuracy_vs_kv(axis: Any, summary: Mapping[str, Any]) -> None:
    modes = summary["modes"]
    in_bytes = _in_bytes(modes)
    unit, size = _unit(max(m["kv_peak_bytes_mean"] for m in modes.values())) if in_bytes else ("tokens", 1)
    for name, m in modes.items():
        per_token = 1.0
        if in_bytes:
            per_token = m["kv_peak_bytes_mean"] / m["kv_peak_tokens_mean"] if m["kv_peak_tokens_mean"] else 0.0
        axis.errorbar(
            m["kv_peak_tokens_mean"] * per_token / size,
            100 * m["pass_at_1"],
            xerr=m["kv_peak_tokens_stderr"] * per_token / size,
            yerr=100 * m["pass_at_1_stderr"],
            fmt="o",
            capsize=4,
            label=name,
        )
    axis.set_xlabel(f"mean peak KV per response ({unit})")
    axis.set_ylabel("pass@1 (%)")
    axis.set_title(f"{summary['benchmark']}: accuracy vs peak KV (error bars: 1 standard error)", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend()


def plot_kv_cdf(records_by_mode: Mapping[str, Sequence[Mapping[str, Any]]], title: str, path: str | Path) -> None:
    """Empirical CDF of each response's peak KV bytes, per mode (tokens when some bytes are unknown)."""
    with figure_to(path, figsize=(6.5, 4.5)) as (_, axis):
        _draw_kv_cdf(axis, records_by_mode, title)


def _draw_kv_cdf(axis: Any, records_by_mode: Mapping[str, Sequence[Mapping[str, Any]]], title: str) -> None:
    records = [r for rs in records_by_mode.values() for r in rs]
    key = "kv_peak_bytes" if all(r["kv_peak_bytes"] is not None for r in records) else "kv_peak_tokens"
    unit, size = _unit(max((float(r[key]) for r in records), default=1)) if key == "kv_peak_bytes" else ("tokens", 1)
    for name, mode_records in records_by_mode.items():
        peaks = sorted(float(r[key]) / size for r in mode_records)
        if not peaks:
            continue
        shares = [(index + 1) / len(peaks) for index in range(len(peaks))]
        axis.step(peaks, shares, where="post", label=f"{name} (n={len(peaks)})")
    axis.set_xlabel(f"peak KV per response ({unit})")
    axis.set_ylabel("share of responses")
    axis.set_ylim(0, 1.02)
    axis.set_title(f"{title}: distribution of peak KV", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend()
