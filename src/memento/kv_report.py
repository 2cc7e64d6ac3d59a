"""Vanilla-vs-memento KV comparisons of trace files: tables, JSON and the sawtooth plot."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memento.config import MementoConfig
from memento.counting import encode_trace, is_approximate
from memento.format import load_traces
from memento.kv import KVGeometry, KVReport, memento_to_block_ratio, simulate

GIB = 2**30


@dataclass
class TraceComparison:
    """One trace simulated twice: plain causal (vanilla) and with memento eviction."""

    name: str
    vanilla: KVReport
    memento: KVReport

    @property
    def peak_ratio(self) -> float:
        """Vanilla peak bytes / memento peak bytes (x lower)."""
        return self.vanilla.peak_bytes / self.memento.peak_bytes

    @property
    def auc_ratio(self) -> float:
        return self.vanilla.auc_gb_ktok / self.memento.auc_gb_ktok if self.memento.auc_gb_ktok else float("nan")


@dataclass
class Comparisons:
    traces: list[TraceComparison]
    geometry: KVGeometry
    config: MementoConfig
    approximate_tokens: bool
    tokenizer: str = ""  # what counted the tokens, in words

    def overall(self) -> dict[str, Any]:
        """Means over traces, AUC totals, and compression over all blocks."""
        vanilla = [t.vanilla for t in self.traces]
        memento = [t.memento for t in self.traces]
        blocks = [b for report in memento for b in report.blocks]
        char_ratios = [r for r in (b.memento_to_block_chars for b in blocks) if r is not None]
        peak_v = statistics.mean(r.peak_bytes for r in vanilla)
        peak_m = statistics.mean(r.peak_bytes for r in memento)
        auc_v = sum(r.auc_gb_ktok for r in vanilla)
        auc_m = sum(r.auc_gb_ktok for r in memento)
        return {
            "num_traces": len(self.traces),
            "num_blocks": len(blocks),
            "vanilla_peak_tokens_mean": statistics.mean(r.peak_tokens for r in vanilla),
            "memento_peak_tokens_mean": statistics.mean(r.peak_tokens for r in memento),
            "vanilla_peak_bytes_mean": peak_v,
            "memento_peak_bytes_mean": peak_m,
            "peak_ratio": peak_v / peak_m,
            "vanilla_auc_gb_ktok_total": auc_v,
            "memento_auc_gb_ktok_total": auc_m,
            "auc_ratio": auc_v / auc_m if auc_m else None,
            "block_tokens_mean": statistics.mean(b.block_tokens for b in blocks) if blocks else None,
            "memento_tokens_mean": statistics.mean(b.memento_tokens for b in blocks) if blocks else None,
            "memento_to_block_tokens": memento_to_block_ratio(
                sum(b.memento_tokens for b in blocks), sum(b.block_tokens for b in blocks)
            ),
            "memento_to_block_chars_median": statistics.median(char_ratios) if char_ratios else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "geometry": {
                "name": self.geometry.name,
                "bytes_per_token": self.geometry.bytes_per_token,
                "num_layers": self.geometry.num_layers,
                "num_kv_heads": self.geometry.num_kv_heads,
                "head_dim": self.geometry.head_dim,
                "bytes_per_element": self.geometry.bytes_per_element,
                "sliding_windows": self.geometry.sliding_windows,
            },
            "config": self.config.to_dict(),
            "approximate_tokens": self.approximate_tokens,
            "tokenizer": self.tokenizer,
            "traces": [
                {
                    "name": t.name,
                    "vanilla": t.vanilla.to_dict(),
                    "memento": t.memento.to_dict(),
                    "peak_ratio": t.peak_ratio,
                    "auc_ratio": t.auc_ratio,
                }
                for t in self.traces
            ],
            "overall": self.overall(),
        }


APPROXIMATE_TOKENIZER = "approximate (~4 characters per token)"


def describe_tokenizer(tokenizer: Any) -> str:
    """What counts the tokens, in words: the approximation, or the tokenizer's path or class."""
    if is_approximate(tokenizer):
        return APPROXIMATE_TOKENIZER
    return str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def compare_traces(
    paths: Iterable[str | Path],
    tokenizer: Any,
    geometry: KVGeometry,
    config: MementoConfig,
    *,
    tokenizer_name: str | None = None,
) -> Comparisons:
    """Load every trace in `paths`, tokenize it and simulate it vanilla and with `config`.

    `tokenizer_name` says in the report what counted the tokens (default: `describe_tokenizer`).
    """
    vanilla_config = MementoConfig.disabled()
    comparisons = []
    for path in paths:
        for name, trace in load_traces(path):
            encoded = encode_trace(trace, tokenizer)
            runs = [
                simulate(encoded.token_ids, encoded.special_ids, geometry, run_config, decode=tokenizer.decode)
                for run_config in (vanilla_config, config)
            ]
            comparisons.append(TraceComparison(name, *runs))
    if not comparisons:
        raise ValueError("no traces found in the given files")
    name = tokenizer_name or describe_tokenizer(tokenizer)
    return Comparisons(comparisons, geometry, config, is_approximate(tokenizer), name)


def print_comparisons(comparisons: Comparisons) -> None:
    """Rich table: one row per trace and an overall row."""
    from rich.console import Console
    from rich.table import Table

    from memento.tables import print_table

    console = Console(soft_wrap=True)  # prose lines are never cut or wrapped by rich; tables fit (print_table)
    geometry, config = comparisons.geometry, comparisons.config
    table = Table(
        title=f"KV cache, vanilla -> memento ({geometry.name}, {geometry.bytes_per_token / 1024:.0f} KiB/token, "
        f"keep_last_n_blocks={config.keep_last_n_blocks}, mask_delimiters={config.mask_delimiters})"
    )
    for column in (
        "trace",
        "tokens",
        "blocks",
        "peak tokens",
        "peak GiB",
        "peak ratio",
        "AUC",
        "AUC ratio",
        "tok/block",
        "tok/memento",
        "memento/block tok",
        "memento/block chars",
    ):
        table.add_column(column, justify="left" if column == "trace" else "right", no_wrap=True)
    for t in comparisons.traces:
        blocks = t.memento.blocks
        table.add_row(
            t.name,
            f"{t.vanilla.total_tokens:,}",
            str(len(blocks)),
            f"{t.vanilla.peak_tokens:,} -> {t.memento.peak_tokens:,}",
            f"{t.vanilla.peak_bytes / GIB:.2f} -> {t.memento.peak_bytes / GIB:.2f}",
            f"{t.peak_ratio:.2f}x",
            f"{t.vanilla.auc_gb_ktok:.2f} -> {t.memento.auc_gb_ktok:.2f}",
            f"{t.auc_ratio:.2f}x",
            _maybe(statistics.mean(b.block_tokens for b in blocks) if blocks else None, "{:.0f}"),
            _maybe(statistics.mean(b.memento_tokens for b in blocks) if blocks else None, "{:.0f}"),
            _maybe(t.memento.memento_to_block_tokens),
            _maybe(t.memento.memento_to_block_chars_median),
        )
    overall = comparisons.overall()
    table.add_section()
    table.add_row(
        f"mean of {overall['num_traces']}",
        "",
        str(overall["num_blocks"]),
        f"{overall['vanilla_peak_tokens_mean']:,.0f} -> {overall['memento_peak_tokens_mean']:,.0f}",
        f"{overall['vanilla_peak_bytes_mean'] / GIB:.2f} -> {overall['memento_peak_bytes_mean'] / GIB:.2f}",
        f"{overall['peak_ratio']:.2f}x",
        f"{overall['vanilla_auc_gb_ktok_total']:.2f} -> {overall['memento_auc_gb_ktok_total']:.2f}",
        _maybe(overall["auc_ratio"], "{:.2f}x"),
        _maybe(overall["block_tokens_mean"], "{:.0f}"),
        _maybe(overall["memento_tokens_mean"], "{:.0f}"),
        _maybe(overall["memento_to_block_tokens"]),
        _maybe(overall["memento_to_block_chars_median"]),
    )
    print_table(table, console)
    console.print(f"tokens counted by: {comparisons.tokenizer or 'the given tokenizer'}")
    console.print(
        "AUC: GB x 1k generated tokens (overall: sum); compression is memento/block (lower is stronger): "
        "tokens over all blocks, characters as the median block (paper: 0.16 math, 0.18 code, 0.23 science)"
    )
    if comparisons.approximate_tokens:
        console.print(
            "[yellow]token counts are approximate (~4 characters per token); "
            "pass --tokenizer PATH for a real tokenizer (Qwen3 geometries count exactly)[/yellow]"
        )


def _maybe(value: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)


def plot_comparisons(comparisons: Comparisons, path: str | Path) -> None:
    """KV bytes over generated tokens, vanilla and memento on one axis per trace (the sawtooth)."""
    from memento.figures import figure_to

    count = len(comparisons.traces)
    with figure_to(path, nrows=count, ncols=1, figsize=(9, 2.8 * count), squeeze=False) as (figure, axes):
        _draw_comparisons(figure, axes, comparisons)


def _draw_comparisons(figure: Any, axes: Any, comparisons: Comparisons) -> None:
    for axis, trace in zip(axes[:, 0], comparisons.traces, strict=True):
        for report, label, style in ((trace.vanilla, "vanilla", "--"), (trace.memento, "memento", "-")):
            start = report.prompt_tokens
            curve = [b / GIB for b in report.occupancy_bytes[start:]]
            axis.plot(
                range(1, len(curve) + 1),
                curve,
                style,
                label=f"{label} (peak {report.peak_bytes / GIB:.2f} GiB)",
            )
        axis.set_title(f"{trace.name}: {trace.peak_ratio:.2f}x lower peak, {trace.auc_ratio:.2f}x lower AUC")
        axis.set_ylabel("KV cache (GiB)")
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left")
    axes[-1, 0].set_xlabel("generated tokens" + (" (approximate count)" if comparisons.approximate_tokens else ""))
    figure.suptitle(f"KV cache over generation, {comparisons.geometry.name}")
