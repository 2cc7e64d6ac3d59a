"""The page's two run-level plots as inline SVG: accuracy vs mean peak KV, and the CDF of peak KV."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT, PAD = 420, 260, 44
LINE = 15
"""Vertical distance between two labels' baselines (px): more than an 11 px font's box, so labels one LINE apart
never overlap, whatever their width."""


def mode_colors(modes: Sequence[str]) -> dict[str, str]:
    return {mode: PALETTE[index % len(PALETTE)] for index, mode in enumerate(modes)}


def _frame(
    title: str, x_label: str, y_label: str, x_max: float, y_max: float, body: str, y_percent: bool, extra: int = 0
) -> str:
    """The axes, ticks and titles around `body`; `extra` px of height below the plot (for a legend)."""
    ticks, height = [], HEIGHT + extra
    for step in range(5):
        y = HEIGHT - PAD - step * (HEIGHT - 2 * PAD) / 4
        value = y_max * step / 4
        label = f"{value:.0%}" if y_percent else f"{value:.2g}"
        ticks.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        x = PAD + step * (WIDTH - 2 * PAD) / 4
        ticks.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">{x_max * step / 4:.0f}</text>')
    return (
        f'<svg class="plot" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><text x="{WIDTH / 2}" y="14" text-anchor="middle" class="title">'
        f"{escape(title)}</text>"
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" class="axis"/>{"".join(ticks)}'
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="12" y="{HEIGHT / 2}" transform="rotate(-90 12 {HEIGHT / 2})" text-anchor="middle">'
        f"{escape(y_label)}</text>{body}</svg>"
    )


def _x(value: float, x_max: float) -> float:
    return PAD + value / x_max * (WIDTH - 2 * PAD)


def _y(value: float, y_max: float) -> float:
    return HEIGHT - PAD - value / y_max * (HEIGHT - 2 * PAD)


def label_rows(wanted: Sequence[float], top: float, bottom: float) -> list[float]:
    """Baselines for labels that want to sit at `wanted` (px, any order): each at least LINE below the previous one,
    as close as it can be to where it wants, within [top, bottom] when they fit there (a label's box is about one
    line tall, so labels on different rows never overlap, whatever their widths)."""
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    rows = [0.0] * len(wanted)
    previous = None
    for i in order:  # downward: no label above its wish, each a LINE below the last
        rows[i] = max(wanted[i], top) if previous is None else max(wanted[i], previous + LINE)
        previous = rows[i]
    following = None
    for i in reversed(order):  # upward: back inside the bottom edge, keeping the spacing
        limit = bottom if following is None else following - LINE
        rows[i] = min(rows[i], limit)
        following = rows[i]
    return rows


def accuracy_vs_kv(summary: Mapping[str, Any], colors: Mapping[str, str]) -> str:
    """pass@1 (± stderr) over mean peak KV tokens, one point per mode (summary["modes"], keyed as `colors`).
    Labels sit beside their points, one row each; a label moved off its point's height gets a leader line."""
    modes = summary["modes"]
    x_max = max((m["kv_peak_tokens_mean"] for m in modes.values()), default=1.0) * 1.15 or 1.0
    points = {name: (_x(m["kv_peak_tokens_mean"], x_max), _y(m["pass_at_1"], 1.0)) for name, m in modes.items()}
    rows = label_rows([y + 4 for _, y in points.values()], PAD, HEIGHT - PAD)
    body = []
    for (name, m), row in zip(modes.items(), rows, strict=True):
        x, y = points[name]
        low, high = (
            _y(max(0.0, m["pass_at_1"] - m["pass_at_1_stderr"]), 1.0),
            _y(min(1.0, m["pass_at_1"] + m["pass_at_1_stderr"]), 1.0),
        )
        color = colors.get(name, PALETTE[0])
        left = x > (WIDTH + PAD) / 2  # right half: the label goes left of its point
        label_x = x - 10 if left else x + 10
        leader = (
            f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{label_x:.1f}" y2="{row - 4:.1f}" stroke="{color}" '
            'stroke-width="0.6" class="leader"/>'
            if abs(row - 4 - y) > 2
            else ""
        )
        body.append(
            f'<line x1="{x:.1f}" y1="{low:.1f}" x2="{x:.1f}" y2="{high:.1f}" stroke="{color}"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}"><title>{escape(name)}: '
            f"{m['pass_at_1']:.1%} at {m['kv_peak_tokens_mean']:.0f} tokens</title></circle>{leader}"
            f'<text x="{label_x:.1f}" y="{row:.1f}" fill="{color}" class="point-label" '
            f'text-anchor="{"end" if left else "start"}" data-series="{escape(name)}">{escape(name)}</text>'
        )
    return _frame("accuracy vs peak KV", "mean peak KV (tokens)", "pass@1", x_max, 1.0, "".join(body), True)


def peak_cdf(peaks_by_mode: Mapping[str, Sequence[float]], colors: Mapping[str, str]) -> str:
    """Share of samples whose peak KV is at most x, one step line per mode."""
    x_max = max((max(p) for p in peaks_by_mode.values() if p), default=1.0) * 1.05 or 1.0
    body = []
    for name, peaks in peaks_by_mode.items():
        if not peaks:
            continue
        ordered = sorted(peaks)
        points = [f"{_x(0, x_max):.1f},{_y(0, 1):.1f}"]
        for index, value in enumerate(ordered):
            x = _x(value, x_max)
            points += [f"{x:.1f},{_y(index / len(ordered), 1):.1f}", f"{x:.1f},{_y((index + 1) / len(ordered), 1):.1f}"]
        color = colors.get(name, PALETTE[0])
        body.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" data-series="{escape(name)}" '
            f'points="{" ".join(points)}"><title>{escape(name)}</title></polyline>'
        )
    legend = "".join(  # below the x axis's title, one row each: never over a curve
        f'<g class="legend-entry" data-series="{escape(n)}">'
        f'<line class="swatch" x1="{PAD}" y1="{HEIGHT + 4 + LINE * i}" x2="{PAD + 18}" y2="{HEIGHT + 4 + LINE * i}" '
        f'stroke="{colors.get(n, PALETTE[0])}" stroke-width="3"/>'
        f'<text x="{PAD + 24}" y="{HEIGHT + 8 + LINE * i}">{escape(n)}</text></g>'
        for i, n in enumerate(name for name, peaks in peaks_by_mode.items() if peaks)
    )
    extra = LINE * sum(1 for peaks in peaks_by_mode.values() if peaks) + 8
    return _frame(
        "peak KV, CDF over samples", "peak KV (tokens)", "share", x_max, 1.0, "".join(body) + legend, True, extra
    )
