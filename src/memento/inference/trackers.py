"""Block trackers for sequences that arrive as whole, growing token rows (as logits processors see them).

A row is matched to the tracker that has already seen its longest prefix, which is then fed only
the new tokens; rows may come in any order, alone or batched. Prefixes are compared as tensors
(C speed); only new tokens are handled in Python.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from memento.attention import BlockTracker
from memento.config import MementoConfig
from memento.format import SpecialIds

_TAIL = 4  # tokens of a prefix's end used as its index key


@dataclass(eq=False)
class _Followed:
    tracker: BlockTracker
    ids: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))  # capacity >= length
    length: int = 0

    def key(self) -> tuple[int, ...]:
        return _key(self.ids, self.length)

    def extend(self, row: torch.Tensor) -> None:
        """Feed row[length:] to the tracker and keep it."""
        new = row[self.length :]
        for token in new.tolist():
            self.tracker.feed(token)
        end = self.length + len(new)
        if end > len(self.ids):
            grown = torch.empty(max(2 * len(self.ids), end, 64), dtype=torch.long)
            grown[: self.length] = self.ids[: self.length]
            self.ids = grown
        self.ids[self.length : end] = new
        self.length = end


def _key(ids: torch.Tensor, length: int) -> tuple[int, ...]:
    return (length, *ids[max(length - _TAIL, 0) : length].tolist())


class PrefixTrackers:
    """One `BlockTracker` per sequence, found again from the sequence's tokens.

    Args:
        special_ids: the marker ids.
        config: the structure options (only `require_assistant_section` matters here).
        capacity: sequences followed at once; the least recently used is dropped beyond it.
    """

    def __init__(self, special_ids: SpecialIds, config: MementoConfig, *, capacity: int = 1024) -> None:
        self.special_ids = special_ids
        self.config = config
        self.capacity = capacity
        self._followed: OrderedDict[int, _Followed] = OrderedDict()  # least recently used first
        self._by_key: dict[tuple[int, ...], list[_Followed]] = {}

    def tracker(self, row: torch.Tensor) -> BlockTracker:
        """The tracker of the sequence `row` ([L] token ids, on the CPU), fed up to its last token."""
        followed = self._find_prefix(row)
        if followed is None:
            followed = _Followed(BlockTracker(self.special_ids, self.config))
        else:
            self._forget(followed)
        followed.extend(row)
        self._remember(followed)
        return followed.tracker

    def _find_prefix(self, row: torch.Tensor) -> _Followed | None:
        lengths = sorted({f.length for f in self._followed.values() if f.length <= len(row)}, reverse=True)
        for length in lengths:
            for candidate in self._by_key.get(_key(row, length), ()):
                if torch.equal(candidate.ids[:length], row[:length]):
                    return candidate
        return None

    def _remember(self, followed: _Followed) -> None:
        self._followed[id(followed)] = followed
        self._by_key.setdefault(followed.key(), []).append(followed)
        while len(self._followed) > self.capacity:
            self._forget(next(iter(self._followed.values())))

    def _forget(self, followed: _Followed) -> None:
        del self._followed[id(followed)]
        same = self._by_key[followed.key()]
        same.remove(followed)
        if not same:
            del self._by_key[followed.key()]
