"""The summary as a rich table (what `memento eval` prints) and as the closing line of comparisons."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _bytes(value: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _top(figures: dict[str, float]) -> str:
    if not figures:
        return "-"
    k = max(figures, key=int)
    return f"{figures[k]:.1%} @{k}"


def summary_table(summary: dict[str, Any]) -> Table:
    """One row per mode."""
    first = next(iter(summary["modes"].values()), {})
    title = (
        f"memento eval: {summary['benchmark']}, {first.get('problems', 0)} problems x "
        f"{summary.get('samples_per_problem', '?')} samples"
    )
    table = Table(title=title)
    columns = [
        "mode",
        "pass@1 ± se",
        "pass@k",
        "maj@k",
        "format ok",
        "tokens",
        "blocks",
        "peak KV tokens",
        "peak KV",
        "KV AUC GB·ktok",
        "vs no_eviction",
        "tok/s",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for name, m in summary["modes"].items():
        versus = "-"
        if "kv_peak_ratio" in m and name != "no_eviction":
            versus = f"{-m['pass_at_1_gap_pp']:+.1f} pp, {m['kv_peak_ratio']:.2f}x KV"
        speed = m.get("tokens_per_second")
        table.add_row(
            name,
            f"{m['pass_at_1']:.1%} ± {m['pass_at_1_stderr']:.1%}",
            _top(m["pass_at_k"]),
            _top(m["maj_at_k"]),
            f"{m['format_ok']:.0%}",
            f"{m['tokens_mean']:.0f}",
            f"{m['blocks_mean']:.1f}",
            f"{m['kv_peak_tokens_mean']:.0f} / {m['kv_peak_tokens_max']:.0f}",
            _bytes(m["kv_peak_bytes_mean"]),
            f"{m['kv_auc_gb_ktok_mean']:.3g}",
            versus,
            "-" if speed is None else f"{speed:.0f}",
        )
    return table


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    """The table, then where the files are."""
    console = console or Console(width=max(Console().width, 200))
    console.print(summary_table(summary))
    notes = []
    if summary.get("approximate_tokens"):
        notes.append("token counts are approximate (no tokenizer given)")
    if summary.get("output"):
        notes.append(f"samples, summary and plots in {summary['output']}")
    for note in notes:
        console.print(note)
