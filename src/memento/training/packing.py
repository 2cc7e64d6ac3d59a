"""Sequence packing: several conversations per row, each still computed exactly as if alone.

Rows are filled best-fit-decreasing (each example goes to the row with the least room that
still fits it). The collator gives every segment its own positions (restarting at 0) and a
block-diagonal mask: a key is hidden from every query after its own segment, and within a
segment the memento rule applies unchanged. Labels need no care: a segment's first label is
its prompt's (-100), so no token learns to predict the next conversation.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from memento.training.data import TrainingExample


@dataclass(frozen=True)
class PackedExample:
    """Several examples laid end to end; `segment_lengths` sum to len(input_ids)."""

    names: tuple[str, ...]
    input_ids: list[int]
    labels: list[int]
    segment_lengths: tuple[int, ...]


def pack_examples(examples: Sequence[TrainingExample], max_length: int) -> list[PackedExample]:
    """Best-fit-decreasing packing into rows of at most `max_length` tokens (deterministic)."""
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    rows: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (free tokens, row index), sorted
    for index in order:
        length = len(examples[index].input_ids)
        if length > max_length:
            raise ValueError(f"example {examples[index].name} has {length} tokens, more than max_length {max_length}")
        slot = bisect.bisect_left(room, (length, -1))
        if slot < len(room):
            free, row = room.pop(slot)
            rows[row].append(index)
            bisect.insort(room, (free - length, row))
        else:
            rows.append([index])
            bisect.insort(room, (max_length - length, len(rows) - 1))
    packed = []
    for members in rows:
        chosen = [examples[i] for i in members]
        packed.append(
            PackedExample(
                names=tuple(e.name for e in chosen),
                input_ids=[t for e in chosen for t in e.input_ids],
                labels=[t for e in chosen for t in e.labels],
                segment_lengths=tuple(len(e.input_ids) for e in chosen),
            )
        )
    return packed
