"""Batch collation with dynamic padding and the memento-attention mask."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from memento.attention import key_hidden_from
from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.training.data import IGNORE_INDEX


@dataclass
class MementoCollator:
    """Pads a list of examples to the longest and adds what attention needs.

    Stage 1 (`config` None or disabled): ``attention_mask`` [B, L] padding mask, plain causal.
    Stage 2: ``hidden_from`` [B, L] (see `memento.attention.key_hidden_from`, padding keys get
    ``k + 1``); `MementoTrainer` turns it into a dense or block-sparse mask on the model's device.
    Always ``input_ids``, ``labels`` (-100 on padding) and ``position_ids`` [B, L].

    Packed rows (features with ``segment_lengths``, see `memento.training.packing`) get positions
    restarting per segment and a block-diagonal ``hidden_from`` in both stages; `packed` makes
    stage 1 always give ``hidden_from`` (the block-sparse attention takes no 2-D mask).

    `full_attention_fraction` (stage 2 only): each example is trained with plain causal attention
    with this probability, so that the model stays accurate when run without eviction. 0 (the
    paper) trains every example under the memento mask. The draw is a function of (`seed`,
    `epoch`, the example's ``index`` in the dataset, its segment), never of which process or batch
    it lands in: N processes train the same model as one at the same global batch. Features
    without an ``index`` count from 0 in each call. `MementoTrainer` sets `epoch` as it goes.
    """

    special_ids: SpecialIds
    config: MementoConfig | None
    pad_token_id: int
    full_attention_fraction: float = 0.0
    seed: int = 0
    packed: bool = False
    epoch: int = 0

    def __post_init__(self) -> None:
        if self.config is not None and self.config.restart_mode:
            raise ValueError("restart_mode is an inference ablation; train with restart_mode=False")
        if not 0 <= self.full_attention_fraction <= 1:
            raise ValueError(f"full_attention_fraction must be in [0, 1], got {self.full_attention_fraction}")

    @property
    def memento(self) -> bool:
        return self.config is not None and self.config.evicts

    def plain(self, index: int, segment: int = 0) -> bool:
        """Whether segment `segment` of dataset example `index` trains with plain causal attention this epoch."""
        if not self.memento:
            return True
        if not self.full_attention_fraction:
            return False
        draw = random.Random(f"{self.seed}:{self.epoch}:{index}:{segment}").random()  # str seeds hash with sha512
        return draw < self.full_attention_fraction

    def __call__(self, features: Sequence[Any]) -> dict[str, torch.Tensor]:
        rows = [(_get(f, "input_ids"), _get(f, "labels"), _segments(f)) for f in features]
        length = max(len(ids) for ids, _, _ in rows)
        batch = len(rows)
        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
        padding = torch.zeros(batch, length, dtype=torch.long)
        position_ids = torch.arange(length).repeat(batch, 1)
        for b, (ids, row_labels, segments) in enumerate(rows):
            input_ids[b, : len(ids)] = torch.as_tensor(ids)
            labels[b, : len(ids)] = torch.as_tensor(row_labels)
            padding[b, : len(ids)] = 1
            offset = 0
            for size in segments:  # packed segments count positions from 0 each
                position_ids[b, offset : offset + size] = torch.arange(size)
                offset += size
        result = {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
        if not self.memento and not self.packed and all(len(segments) == 1 for _, _, segments in rows):
            result["attention_mask"] = padding
            return result
        hidden_from = torch.arange(1, length + 1).repeat(batch, 1)  # padding keys: seen only by themselves
        for b, (ids, _, segments) in enumerate(rows):
            index = _index(features[b], b)
            offset = 0
            for number, size in enumerate(segments):
                # a key is never seen after its own segment; the last segment's keys stay visible to the padding
                end = length if number == len(segments) - 1 else offset + size
                span = slice(offset, offset + size)
                if self.plain(index, number):
                    hidden_from[b, span] = end
                else:
                    row = key_hidden_from(ids[span], self.special_ids, self.config)
                    hidden_from[b, span] = torch.where(row == size, end, row + offset)
                offset += size
        result["hidden_from"] = hidden_from
        return result


def _segments(feature: Any) -> tuple[int, ...]:
    """Lengths of the conversations packed in a row (one segment when not packed)."""
    lengths = feature.get("segment_lengths") if isinstance(feature, dict) else getattr(feature, "segment_lengths", None)
    return tuple(lengths) if lengths else (len(_get(feature, "input_ids")),)


def _index(feature: Any, position: int) -> int:
    """The example's index in its dataset (`ExampleDataset` gives it), else its position in the batch."""
    value = feature.get("index") if isinstance(feature, dict) else getattr(feature, "index", None)
    return position if value is None else int(value)


def _get(feature: Any, key: str) -> list[int]:
    return list(feature[key] if isinstance(feature, dict) else getattr(feature, key))
