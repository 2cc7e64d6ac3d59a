"""Logits processors for memento generation (transformers' `LogitsProcessor` interface)."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from memento.format import SpecialIds


class MaxBlockTokensProcessor(LogitsProcessor):
    """Force ``<|block_end|>`` once the open block holds `max_block_tokens` reasoning tokens.

    Stateless: each row's open block is found from its ids (the last ``<|block_start|>`` with
    no ``<|block_end|>`` after it), so it works inside `model.generate()` as well as in our loop.
    """

    def __init__(self, special_ids: SpecialIds, max_block_tokens: int) -> None:
        if max_block_tokens <= 0:
            raise ValueError(f"max_block_tokens must be positive, got {max_block_tokens}")
        self.special_ids = special_ids
        self.max_block_tokens = max_block_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """input_ids [B, L], scores [B, vocab] -> scores with rows at the cap forced to block_end."""
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device).expand_as(input_ids)
        last_start = torch.where(input_ids == self.special_ids.block_start, positions, -1).max(dim=1).values
        last_end = torch.where(input_ids == self.special_ids.block_end, positions, -1).max(dim=1).values
        open_tokens = length - 1 - last_start
        at_cap = (last_start > last_end) & (last_start >= 0) & (open_tokens >= self.max_block_tokens)
        if at_cap.any():
            scores = scores.clone()
            scores[at_cap] = torch.finfo(scores.dtype).min
            scores[at_cap, self.special_ids.block_end] = 0.0
        return scores


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
