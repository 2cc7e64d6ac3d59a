"""Logits processors for memento generation (transformers' `LogitsProcessor` interface)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from memento.attention import BlockTracker
from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.inference.trackers import PrefixTrackers


class MaxBlockTokensProcessor(LogitsProcessor):
    """Force ``<|block_end|>`` once the open block holds `max_block_tokens` reasoning tokens.

    The open block and its length are the tracker's (`BlockTracker.in_block` /
    `open_block_tokens`, the one owner of the structure), each row followed incrementally by
    `PrefixTrackers`: it works inside `model.generate()` as well as in our own loop.
    """

    def __init__(
        self, special_ids: SpecialIds, max_block_tokens: int, *, require_assistant_section: bool = True
    ) -> None:
        if max_block_tokens <= 0:
            raise ValueError(f"max_block_tokens must be positive, got {max_block_tokens}")
        self.special_ids = special_ids
        self.max_block_tokens = max_block_tokens
        # Only the structure is followed: eviction options do not change where a block is open.
        structure = MementoConfig(enable=False, require_assistant_section=require_assistant_section)
        self._trackers = PrefixTrackers(special_ids, structure)

    @classmethod
    def from_config(cls, special_ids: SpecialIds, config: MementoConfig) -> MaxBlockTokensProcessor:
        """The cap of `config` (which must set max_block_tokens > 0), parsed with its assistant-section rule."""
        return cls(special_ids, config.max_block_tokens, require_assistant_section=config.require_assistant_section)

    def at_cap(self, tracker: BlockTracker) -> bool:
        """Whether a tracker that has read a row's every token sits in an open block at the cap."""
        return tracker.in_block and tracker.open_block_tokens >= self.max_block_tokens

    def force_block_end(self, scores: torch.FloatTensor, rows: Sequence[int]) -> torch.FloatTensor:
        """scores [B, vocab] with `rows` allowed only ``<|block_end|>`` (a copy; unchanged when `rows` is empty)."""
        if not rows:
            return scores
        scores = scores.clone()
        scores[list(rows)] = torch.finfo(scores.dtype).min
        scores[list(rows), self.special_ids.block_end] = 0.0
        return scores

    def open_block_tokens(self, token_ids: Sequence[int] | torch.Tensor) -> int | None:
        """Reasoning tokens of the open block after `token_ids` ([L]); None when no block is open."""
        row = torch.as_tensor(token_ids, dtype=torch.long).cpu()
        tracker = self._trackers.tracker(row)
        return tracker.open_block_tokens if tracker.in_block else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """input_ids [B, L], scores [B, vocab] -> scores with rows at the cap forced to block_end."""
        rows = input_ids.cpu()
        at_cap = [b for b in range(rows.shape[0]) if self.at_cap(self._trackers.tracker(rows[b]))]
        return self.force_block_end(scores, at_cap)


def sampling_warpers(
    temperature: float, top_p: float | None, top_k: int | None, min_p: float | None
) -> LogitsProcessorList:
    """transformers' temperature / top-k / top-p / min-p warpers, in generate()'s order."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    warpers = LogitsProcessorList()
    if temperature > 0 and temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    if min_p:
        warpers.append(MinPLogitsWarper(min_p))
    return warpers
