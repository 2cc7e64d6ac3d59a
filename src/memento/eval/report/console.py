"""The summary as a rich table (what `memento eval` prints) and as the closing line of comparisons."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from memento.tables import print_table

ENDPOINT_NOTE = (
    "measured at the endpoint: peak KV tokens = the largest prompt + completion of one call (prompted: "
    "prompt + mementos + the open block); tokens and billed tokens over every call; blocks of prompted = rounds"
)


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _top(figures: dict[str, float]) -> str:
    if not figures:
        return "-"
    k = max(figures, key=int)
    return f"{figures[k]:.1%} @{k}"


def _endpoint_columns(m: dict[str, Any]) -> list[str]:
    """Billed tokens and fallbacks per sample (prompted backend); "-" where a mode has none."""
    billed = m.get("billed_tokens_mean")
    fallbacks = m.get("fallbacks_mean")
    return ["-" if billed is None else f"{billed:.0f}", "-" if fallbacks is None else f"{fallbacks:.1f}"]


def summary_rows(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, column names, one row of cells per mode): the figures `memento eval` prints."""
    first = next(iter(summary["modes"].values()), {})
    title = (
        f"memento eval: {summary['benchmark']}, {first.get('problems', 0)} problems x "
        f"{summary.get('samples_per_problem', '?')} samples"
    )
    reference = summary.get("reference_mode", "no_eviction")
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
        f"vs {reference}",
        "tok/s",
    ]
    endpoint = any("billed_tokens_mean" in m for m in summary["modes"].values())
    if endpoint:
        columns += ["billed tokens", "fallbacks"]
    rows = []
    for name, m in summary["modes"].items():
        versus = "-"
        if "kv_peak_ratio" in m and name != reference:
            versus = f"{0.0 - m['pass_at_1_gap_pp']:+.1f} pp, {m['kv_peak_ratio']:.2f}x KV"  # 0.0 - x: no "-0.0"
        speed = m.get("tokens_per_second")
        auc = m["kv_auc_gb_ktok_mean"]
        rows.append(
            [
                name,
                f"{m['pass_at_1']:.1%} ± {m['pass_at_1_stderr']:.1%}",
                _top(m["pass_at_k"]),
                _top(m["maj_at_k"]),
                f"{m['format_ok']:.0%}",
                f"{m['tokens_mean']:.0f}",
                f"{m['blocks_mean']:.1f}",
                f"{m['kv_peak_tokens_mean']:.0f} / {m['kv_peak_tokens_max']:.0f}",
                _bytes(m["kv_peak_bytes_mean"]),
                "-" if auc is None else f"{auc:.3g}",
                versus,
                "-" if speed is None else f"{speed:.0f}",
                *(_endpoint_columns(m) if endpoint else []),
            ]
        )
    return title, columns, rows


def summary_table(summary: dict[str, Any]) -> Table:
    """One row per mode; runs measured at an endpoint (prompted backend) add billed tokens and fallbacks."""
    title, columns, rows = summary_rows(summary)
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    """The table, then where the files are."""
    console = console or Console(soft_wrap=True)
    print_table(summary_table(summary), console)
    notes = []
    if any("billed_tokens_mean" in m for m in summary["modes"].values()):
        notes.append(ENDPOINT_NOTE)
    if summary.get("approximate_tokens"):
        notes.append("token counts are approximate (no tokenizer given)")
    if summary.get("output"):
        notes.append(f"samples, summary and plots in {summary['output']}")
    for note in notes:
        console.print(note)
