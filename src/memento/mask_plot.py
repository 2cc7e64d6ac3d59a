"""The attention rule as a picture: the visibility mask of a trace, and the physical cache after each memento.

For each memento configuration (by default keep_last_n_blocks 0 and 1, mask_delimiters off and on),
a row of two panels:

* the mask (`memento.attention.visibility_mask`, drawn from its O(L) form `key_hidden_from`):
  query positions down, key positions across; a key a query may attend is coloured by what the
  key is (prompt, block, memento, delimiters), a key hidden by eviction is red, and the future
  (causal) is white;
* the cache (`memento.attention.BlockTracker`, what the evicting cache does): one strip per
  completed memento, the tokens still cached right after it, packed into physical slots as the
  evicting cache holds them (logical positions unchanged), coloured the same way.

`memento kv TRACE --mask-png PATH` draws its first trace with `plot_trace`; long traces are
drawn on a grid of every k-th position (`max_positions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memento.attention import BlockTracker, analyze, key_hidden_from
from memento.config import MementoConfig
from memento.format import SpecialIds, TokenRole, Trace

DEFAULT_CONFIGS = tuple(
    MementoConfig(keep_last_n_blocks=n, mask_delimiters=delimiters) for n in (0, 1) for delimiters in (False, True)
)
ROLE_COLOURS = {
    TokenRole.PROMPT: (0.62, 0.62, 0.62),
    TokenRole.BLOCK_DELIMITER: (0.10, 0.20, 0.55),
    TokenRole.BLOCK: (0.35, 0.55, 0.90),
    TokenRole.SUMMARY_DELIMITER: (0.65, 0.30, 0.00),
    TokenRole.SUMMARY: (0.98, 0.62, 0.15),
    TokenRole.OTHER: (0.30, 0.70, 0.35),
}
ROLE_NAMES = {
    TokenRole.PROMPT: "prompt",
    TokenRole.BLOCK_DELIMITER: "block delimiters",
    TokenRole.BLOCK: "block (reasoning)",
    TokenRole.SUMMARY_DELIMITER: "memento delimiters",
    TokenRole.SUMMARY: "memento",
    TokenRole.OTHER: "<think>, answer",
}
HIDDEN = (0.90, 0.25, 0.25)
EMPTY = (1.0, 1.0, 1.0)


@dataclass
class MaskPicture:
    """The arrays one configuration's row is drawn from.

    Attributes:
        mask: [n, n, 3] RGB over the sampled positions (query rows, key columns).
        cache: [m, w, 3] RGB, one row per completed memento: the tokens cached right after it,
            packed into physical slots (every `stride`-th slot drawn), white past the row's end.
        cache_tokens: [m] tokens cached after each memento (all positions, not only sampled ones).
        positions: [n] the logical positions drawn (every `stride`-th).
    """

    config: MementoConfig
    mask: np.ndarray
    cache: np.ndarray
    cache_tokens: list[int]
    positions: np.ndarray
    stride: int


def picture(
    token_ids: Sequence[int], special_ids: SpecialIds, config: MementoConfig, *, max_positions: int = 600
) -> MaskPicture:
    """The mask and the after-memento cache strips of one configuration (no plotting)."""
    ids = [int(t) for t in token_ids]
    stride = max(1, -(-len(ids) // max_positions))
    positions = np.arange(0, len(ids), stride)
    colours = np.array([ROLE_COLOURS[role] for role in analyze(ids, special_ids, config).roles])
    # the rule's O(L) form (query q sees key k iff k <= q < hidden_from[k]): no L x L mask for long traces
    hidden_from = key_hidden_from(ids, special_ids, config).numpy()[positions]
    causal = positions[None, :] <= positions[:, None]
    allowed = causal & (positions[:, None] < hidden_from[None, :])
    mask = np.empty((len(positions), len(positions), 3))
    mask[:] = EMPTY
    mask[causal & ~allowed] = HIDDEN
    mask[allowed] = np.broadcast_to(colours[positions][None, :, :], mask.shape)[allowed]
    tracker = BlockTracker(special_ids, config)
    cached: list[int] = []
    strips, cache_tokens = [], []
    for position, token in enumerate(ids):
        step = tracker.feed(token)
        cached.append(position)
        if step.evicted:
            gone = {k for span in step.evicted for k in range(span.start, span.stop)}
            cached = [k for k in cached if k not in gone]
        if token == special_ids.summary_end and step.role == TokenRole.SUMMARY_DELIMITER:
            strips.append(colours[cached[::stride]])  # packed into physical slots, in logical order
            cache_tokens.append(len(cached))
    width = max((len(strip) for strip in strips), default=0)
    cache = np.empty((len(strips), width, 3))
    cache[:] = EMPTY
    for row, strip in enumerate(strips):
        cache[row, : len(strip)] = strip
    return MaskPicture(config, mask, cache, cache_tokens, positions, stride)


def plot_mask_picture(
    token_ids: Sequence[int],
    special_ids: SpecialIds,
    path: str | Path,
    *,
    configs: Sequence[MementoConfig] = DEFAULT_CONFIGS,
    title: str | None = None,
    max_positions: int = 600,
) -> list[MaskPicture]:
    """Draw one row per configuration (mask | cache after each memento) into a PNG at `path`."""
    from memento.figures import figure_to

    pictures = [picture(token_ids, special_ids, c, max_positions=max_positions) for c in configs]
    layout = {"figsize": (13, 3.6 * len(pictures)), "squeeze": False, "gridspec_kw": {"width_ratios": [1, 1.9]}}
    with figure_to(path, tight_rect=(0, 0.03, 1, 0.98), nrows=len(pictures), ncols=2, **layout) as (figure, axes):
        _draw_rows(figure, axes, pictures, title)
    return pictures


def _draw_rows(figure: Any, axes: Any, pictures: Sequence[MaskPicture], title: str | None) -> None:
    """Fill one row per picture (mask | cache after each memento), the legend and the title."""
    from matplotlib.patches import Patch

    for (mask_axis, cache_axis), drawn in zip(axes, pictures, strict=True):
        extent = _extent(drawn.positions)
        label = f"keep_last_n_blocks={drawn.config.keep_last_n_blocks}, mask_delimiters={drawn.config.mask_delimiters}"
        mask_axis.imshow(drawn.mask, interpolation="nearest", extent=extent)
        mask_axis.set_title(label, fontsize=10)
        mask_axis.set_xlabel("key position")
        mask_axis.set_ylabel("query position")
        rows = len(drawn.cache)
        if rows:
            slots = drawn.cache.shape[1] * drawn.stride
            cache_axis.imshow(
                drawn.cache, interpolation="nearest", aspect="auto", extent=(-0.5, slots - 0.5, rows + 0.5, 0.5)
            )
            cache_axis.set_xlim(extent[0], extent[1])  # same scale as the mask: the sequence's full length
            cache_axis.set_yticks(range(1, rows + 1))
            cache_axis.set_yticklabels(
                [f"after memento {i + 1}: {n} tokens" for i, n in enumerate(drawn.cache_tokens)], fontsize=8
            )
        cache_axis.set_title(f"physical KV cache after each memento ({label})", fontsize=10)
        cache_axis.set_xlabel(f"cache slot (the sequence has {drawn.positions[-1] + 1} positions)")
    legend = [Patch(color=ROLE_COLOURS[role], label=name) for role, name in ROLE_NAMES.items()]
    legend += [Patch(color=HIDDEN, label="evicted (hidden)"), Patch(facecolor=EMPTY, edgecolor="0.6", label="future")]
    figure.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=9, frameon=False)
    figure.suptitle(title or "memento attention: what each token may attend, and what stays cached", fontsize=12)


def plot_trace(
    trace: Trace,
    tokenizer: Any,
    path: str | Path,
    *,
    name: str | None = None,
    configs: Sequence[MementoConfig] = DEFAULT_CONFIGS,
) -> list[MaskPicture]:
    """`plot_mask_picture` of a parsed trace, tokenized as `memento kv` does (`memento.counting`)."""
    from memento.counting import encode_trace

    encoded = encode_trace(trace, tokenizer)
    title = f"memento attention on {name or 'a trace'} ({len(encoded.token_ids):,} tokens)"
    return plot_mask_picture(encoded.token_ids, encoded.special_ids, path, configs=configs, title=title)


def _extent(positions: np.ndarray) -> tuple[float, float, float, float]:
    """imshow extent so that axes read logical positions, whatever the sampling stride."""
    step = positions[1] - positions[0] if len(positions) > 1 else 1
    last = positions[-1] + step
    return (-0.5, last - 0.5, last - 0.5, -0.5)
