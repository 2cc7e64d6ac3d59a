"""Logits processors for memento generation (transformers' `LogitsProcessor` interface)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

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


class MaxBlockTokensProcessor(LogitsProcessor):
    """Force ``<|block_end|>`` once the open block holds `max_block_tokens` reasoning tokens.

    The open block and its length are the tracker's (`BlockTracker.in_block` /
    `open_block_tokens`, the one owner of the structure). Each row is followed by a tracker fed
    incrementally: a row is matched to the tracker that has seen its prefix (rows may come in
    any order, alone or batched, as in `model.generate()` or our own loop); a row with no match
    gets a tracker fed from its first token.
    """

    def __init__(
        self, special_ids: SpecialIds, max_block_tokens: int, *, require_assistant_section: bool = True
    ) -> None:
        if max_block_tokens <= 0:
            raise ValueError(f"max_block_tokens must be positive, got {max_block_tokens}")
        self.special_ids = special_ids
        self.max_block_tokens = max_block_tokens
        # Only the structure is followed: eviction options do not change where a block is open.
        self._structure_config = MementoConfig(enable=False, require_assistant_section=require_assistant_section)
        self._followed: OrderedDict[int, _Followed] = OrderedDict()  # least recently used first
        self._by_tail: dict[tuple[int, ...], list[_Followed]] = {}

    @classmethod
    def from_config(cls, special_ids: SpecialIds, config: MementoConfig) -> MaxBlockTokensProcessor:
        """The cap of `config` (which must set max_block_tokens > 0), parsed with its assistant-section rule."""
        return cls(special_ids, config.max_block_tokens, require_assistant_section=config.require_assistant_section)

    def open_block_tokens(self, token_ids: list[int]) -> int | None:
        """Reasoning tokens of the open block after `token_ids` (None when no block is open)."""
        tracker = self._follow(token_ids).tracker
        return tracker.open_block_tokens if tracker.in_block else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """input_ids [B, L], scores [B, vocab] -> scores with rows at the cap forced to block_end."""
        at_cap = []
        for b, row in enumerate(input_ids.tolist()):
            length = self.open_block_tokens(row)
            if length is not None and length >= self.max_block_tokens:
                at_cap.append(b)
        if at_cap:
            scores = scores.clone()
            scores[at_cap] = torch.finfo(scores.dtype).min
            scores[at_cap, self.special_ids.block_end] = 0.0
        return scores

    def _follow(self, token_ids: list[int]) -> _Followed:
        followed = self._find_prefix(token_ids)
        if followed is None:
            followed = _Followed(BlockTracker(self.special_ids, self._structure_config), [])
        else:
            self._forget(followed)
        for token in token_ids[len(followed.ids) :]:
            followed.tracker.feed(token)
        followed.ids.extend(token_ids[len(followed.ids) :])
        self._remember(followed)
        return followed

    def _find_prefix(self, token_ids: list[int]) -> _Followed | None:
        """The followed sequence that is the longest prefix of `token_ids`, if any."""
        lengths = sorted({len(f.ids) for f in self._followed.values() if len(f.ids) <= len(token_ids)}, reverse=True)
        for length in lengths:
            for candidate in self._by_tail.get(_tail(token_ids[:length]), ()):
                if len(candidate.ids) == length and candidate.ids == token_ids[:length]:
                    return candidate
        return None

    def _remember(self, followed: _Followed) -> None:
        self._followed[id(followed)] = followed
        self._by_tail.setdefault(_tail(followed.ids), []).append(followed)
        while len(self._followed) > _MAX_FOLLOWED:
            self._forget(next(iter(self._followed.values())))

    def _forget(self, followed: _Followed) -> None:
        del self._followed[id(followed)]
        same_tail = self._by_tail[_tail(followed.ids)]
        same_tail.remove(followed)
        if not same_tail:
            del self._by_tail[_tail(followed.ids)]


_MAX_FOLLOWED = 1024  # sequences followed at once; the least recently used is dropped beyond


@dataclass
class _Followed:
    tracker: BlockTracker
    ids: list[int]


def _tail(token_ids: list[int]) -> tuple[int, ...]:
    return (len(token_ids), *token_ids[-4:])


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
