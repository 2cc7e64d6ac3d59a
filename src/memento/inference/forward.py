"""One forward of a batch through the evicting cache: chunks in, logits out, evicted spans dropped.

Every row has its own `BlockTracker` (the rule from `memento.attention`); the tokens are fed to
the trackers first, so the mask hides spans evicted inside the chunk; after the forward those
spans leave the cache (`EvictingKVCache`), while every token keeps its logical position for RoPE.
Masks are passed as 4-D tensors (one per layer type when windows differ), so nothing in the model
is patched. Every decision is taken from host-side bookkeeping: tensors only travel host -> device.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from memento.attention import BlockTracker, EvictedSpan
from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference.cache import EvictingKVCache
from memento.inference.masks import ChunkEviction, chunk_visibility, to_additive, window_limit
from memento.inference.results import Eviction, GenerationResult
from memento.kv import layer_windows

logger = logging.getLogger("memento.inference")


@dataclass
class Row:
    """Decode state of one sequence (nanochat-style explicit per-row state)."""

    index: int
    tracker: BlockTracker
    result: GenerationResult
    ids: list[int]
    max_new_tokens: int = 0  # this row's budget: the request's, cut to the model's positions
    prefix_offset: int = 0  # incremental detokenization window over result.token_ids
    read_offset: int = 0
    hit_stop_string: bool = False
    sampler: torch.Generator | None = None  # this row's own RNG when per-sequence seeds are given


class EvictingForward:
    """The forward step shared by generation and scoring, for one model and one memento config."""

    def __init__(self, model: Any, config: MementoConfig, special_ids: SpecialIds, pad_id: int) -> None:
        self.model = model
        self.config = config
        self.special_ids = special_ids
        self._pad_id = pad_id
        self._windows = _mask_windows(model.config)

    def new_row(self, index: int, prompt_ids: list[int]) -> Row:
        """A fresh decode state for one sequence (its own tracker and result)."""
        tracker = BlockTracker(self.special_ids, self.config)
        return Row(index, tracker, GenerationResult(prompt_ids=list(prompt_ids)), list(prompt_ids))

    def _masks(self, allowed: torch.Tensor, key_positions: torch.Tensor, query_positions: torch.Tensor) -> Any:
        """The additive mask(s) the model takes: one tensor, or one per layer type (see `_mask_windows`)."""
        dtype = self.model.dtype

        def windowed(window: int | None) -> torch.Tensor:
            limited = allowed if window is None else window_limit(allowed, key_positions, query_positions, window)
            return to_additive(limited, dtype)

        if isinstance(self._windows, dict):
            return {kind: windowed(window) for kind, window in self._windows.items()}
        return windowed(self._windows)

    def forward(
        self, cache: EvictingKVCache, rows: Sequence[Row], chunks: Sequence[Sequence[int]], step: int
    ) -> torch.Tensor:
        """Run one forward over each row's chunk of new tokens (ragged; rows may have none).

        Feeds the tokens to the trackers first so the mask hides spans evicted inside the chunk,
        then drops every evicted span from the cache. Returns logits [B, q, vocab].
        """
        width = max(len(chunk) for chunk in chunks)
        input_ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        positions = torch.full((len(rows), width), -1, dtype=torch.long)
        evictions: list[list[ChunkEviction]] = []
        recompute: dict[int, range] = {}
        for b, (row, chunk) in enumerate(zip(rows, chunks, strict=True)):
            start = row.tracker.position
            row_evictions: list[ChunkEviction] = []
            for j, token in enumerate(chunk):
                tracked = row.tracker.feed(token)
                row_evictions.extend((j, span) for span in tracked.evicted)
                if tracked.recompute:
                    assert j == len(chunk) - 1, "chunks must end at a memento that is recomputed"
                    recompute[b] = tracked.recompute
            evictions.append(row_evictions)
            input_ids[b, : len(chunk)] = torch.tensor(list(chunk), dtype=torch.long)
            positions[b, : len(chunk)] = torch.arange(start, start + len(chunk))
        logits = self._run_model(cache, input_ids, positions, evictions)
        for row, live in zip(rows, cache.live_tokens(), strict=True):
            row.result.kv_tokens_peak = max(row.result.kv_tokens_peak, live)
        for b, row in enumerate(rows):
            spans = [span for _, span in evictions[b]]
            if not spans:
                continue
            cache.evict(b, spans)  # the tracker reports spans only when the config evicts (MementoConfig.evicts)
            for after, span in evictions[b]:
                row.result.evictions.append(Eviction(step, int(positions[b, after]), span))
                if self.config.debug:
                    logger.info(
                        "sequence %d step %d: evicted positions [%d, %d)", row.index, step, span.start, span.stop
                    )
        if recompute:
            self._recompute_mementos(cache, rows, recompute)
        cache.compact()
        return logits

    def _run_model(
        self,
        cache: EvictingKVCache,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        evictions: Sequence[Sequence[ChunkEviction]],
    ) -> torch.Tensor:
        """One forward. `input_ids` and `positions` [B, q] are host tensors: every decision here is
        taken from host bookkeeping, and tensors only travel host -> device (no sync)."""
        device = self.model.device
        on_device = positions.to(device, non_blocking=True)
        plain_causal = (
            self._windows is None and cache.all_visible() and bool((positions >= 0).all()) and not any(evictions)
        )
        if plain_causal:
            # Every slot live and in order: transformers' own causal mask (from physical offsets) is
            # the same, and lets sdpa take its fast path.
            attention_mask = None
        else:
            slots = cache.device_slots()
            allowed = chunk_visibility(slots, on_device, evictions)
            attention_mask = self._masks(allowed, torch.cat([slots, on_device], dim=1), on_device)
        with torch.no_grad():
            output = self.model(
                input_ids=input_ids.to(device, non_blocking=True),
                attention_mask=attention_mask,
                position_ids=on_device.clamp(min=0),
                past_key_values=cache.hf_cache,
                use_cache=True,
            )
        cache.append(positions, on_device)
        return output.logits

    def _recompute_mementos(self, cache: EvictingKVCache, rows: Sequence[Row], recompute: dict[int, range]) -> None:
        """restart_mode: replace each memento's KV by one computed without its (now evicted) block."""
        width = max(len(r) for r in recompute.values())
        input_ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        positions = torch.full((len(rows), width), -1, dtype=torch.long)
        for b, span in recompute.items():
            cache.evict(b, [EvictedSpan(-1, span.start, span.stop)])
            input_ids[b, : len(span)] = torch.tensor(rows[b].ids[span.start : span.stop])
            positions[b, : len(span)] = torch.arange(span.start, span.stop)
        cache.compact()
        self._run_model(cache, input_ids, positions, [[] for _ in rows])

    def split_for_restart(self, chunk: Sequence[int]) -> list[list[int]]:
        """In restart_mode a chunk must end at each ``<|summary_end|>`` (its memento is recomputed there)."""
        if not self.config.restart_mode:
            return [list(chunk)]
        pieces, current = [], []
        for token in chunk:
            current.append(token)
            if token == self.special_ids.summary_end:
                pieces.append(current)
                current = []
        return [*pieces, current] if current else pieces


def _mask_windows(model_config: Any) -> dict[str, int | None] | int | None:
    """How generation windows its masks, from `memento.kv.layer_windows` (the one parser).

    None: no layer has a window. An int: every layer has that window (Mistral-style; one mask for
    all layers). A dict: one mask per layer type, for models mixing full and sliding layers.
    """
    windows = layer_windows(model_config)
    if windows is None:
        return None
    if len(set(windows)) == 1:
        return windows[0]
    text_config = model_config.get_text_config()
    by_type: dict[str, int | None] = {}
    for kind, window in zip(text_config.layer_types, windows, strict=True):
        if kind not in ("full_attention", "sliding_attention"):
            raise NotImplementedError(f"memento inference supports full and sliding-window attention, not {kind!r}")
        by_type[kind] = window
    return by_type
