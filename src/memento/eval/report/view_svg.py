"""The page's two run-level plots as inline SVG: accuracy vs mean peak KV, and the CDF of peak KV."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT, PAD = 420, 260, 44


def mode_colors(modes: Sequence[str]) -> dict[str, str]:
    return {mode: PALETTE[index % len(PALETTE)] for index, mode in enumerate(modes)}


def _frame(title: str, x_label: str, y_label: str, x_max: float, y_max: float, body: str, y_percent: bool) -> str:
    ticks = []
    for step in range(5):
        y = HEIGHT - PAD - step * (HEIGHT - 2 * PAD) / 4
        value = y_max * step / 4
        label = f"{value:.0%}" if y_percent else f"{value:.2g}"
        ticks.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        x = PAD + step * (WIDTH - 2 * PAD) / 4
        ticks.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">{x_max * step / 4:.0f}</text>')
    return (
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
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


def accuracy_vs_kv(summary: Mapping[str, Any], colors: Mapping[str, str]) -> str:
    """pass@1 (± stderr) over mean peak KV tokens, one point per mode."""
    modes = summary["modes"]
    x_max = max((m["kv_peak_tokens_mean"] for m in modes.values()), default=1.0) * 1.15 or 1.0
    body = []
    for name, m in modes.items():
        x, y = _x(m["kv_peak_tokens_mean"], x_max), _y(m["pass_at_1"], 1.0)
        low, high = (
            _y(max(0.0, m["pass_at_1"] - m["pass_at_1_stderr"]), 1.0),
            _y(min(1.0, m["pass_at_1"] + m["pass_at_1_stderr"]), 1.0),
        )
        color = colors.get(name, PALETTE[0])
        body.append(
            f'<line x1="{x:.1f}" y1="{low:.1f}" x2="{x:.1f}" y2="{high:.1f}" stroke="{color}"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}"><title>{escape(name)}: '
            f"{m['pass_at_1']:.1%} at {m['kv_peak_tokens_mean']:.0f} tokens</title></circle>"
            f'<text x="{x + 7:.1f}" y="{y - 6:.1f}" fill="{color}">{escape(name)}</text>'
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
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(points)}">'
            f"<title>{escape(name)}</title></polyline>"
        )
    legend = "".join(
        f'<text x="{WIDTH - PAD - 4}" y="{PAD + 14 * i}" text-anchor="end" fill="{colors.get(n, PALETTE[0])}">'
        f"{escape(n)}</text>"
        for i, n in enumerate(peaks_by_mode)
    )
    return _frame("peak KV, CDF over samples", "peak KV (tokens)", "share", x_max, 1.0, "".join(body) + legend, True)
