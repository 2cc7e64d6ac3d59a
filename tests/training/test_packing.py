"""Packed rows compute every conversation exactly as if it were alone (block-diagonal masks, fresh positions)."""

from __future__ import annotations

import random

import pytest
import torch

from memento.attention import visibility_mask
from memento.config import MementoConfig
from memento.training import sparse_attention
from memento.training.collator import MementoCollator
from memento.training.data import IGNORE_INDEX, TrainingExample
from memento.training.masks import dense_mask
from memento.training.packing import pack_examples
from memento.training.trainer import ExampleDataset, memento_attention_mask
from tests.models import SPECIAL_IDS, memento_sequence, tiny_model

TOLERANCE = 1e-5


def _examples(count: int = 5, seed: int = 0) -> list[TrainingExample]:
    rng = random.Random(seed)
    examples = []
    for index in range(count):
        ids = memento_sequence(rng, blocks=rng.randint(1, 5))
        prompt = ids.index(SPECIAL_IDS.think_start)
        examples.append(TrainingExample(f"e{index}", ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return examples


def test_best_fit_decreasing_places_every_example_once_within_the_limit():
    examples = _examples(12, seed=3)
    limit = max(len(e.input_ids) for e in examples) + 20
    packed = pack_examples(examples, limit)
    assert sorted(name for row in packed for name in row.names) == sorted(e.name for e in examples)
    assert all(sum(row.segment_lengths) == len(row.input_ids) <= limit for row in packed)
    assert len(packed) < len(examples)  # it packs
    assert len(packed) >= -(-sum(len(e.input_ids) for e in examples) // limit)
    assert pack_examples(examples, limit) == packed  # deterministic
    with pytest.raises(ValueError, match="more than max_length"):
        pack_examples(examples, 10)


@pytest.mark.parametrize("config", [None, MementoConfig(mask_delimiters=False), MementoConfig(mask_delimiters=True)])
def test_packed_mask_is_block_diagonal_of_each_conversations_own(config):
    examples = _examples(4)
    (row,) = pack_examples(examples, 10_000)
    batch = MementoCollator(SPECIAL_IDS, config, pad_token_id=0)(ExampleDataset([row]))
    mask = dense_mask(batch["hidden_from"])[0, 0]
    offset = 0
    for size in row.segment_lengths:
        segment = row.input_ids[offset : offset + size]
        own = (
            visibility_mask(segment, SPECIAL_IDS, config) if config else torch.ones(size, size, dtype=torch.bool).tril()
        )
        assert torch.equal(mask[offset : offset + size, offset : offset + size], own)
        assert not mask[offset : offset + size, :offset].any()  # nothing from earlier conversations
        assert batch["position_ids"][0, offset : offset + size].tolist() == list(range(size))
        offset += size


@pytest.mark.parametrize("attention", ["sdpa", "eager", "block-sparse"])
@pytest.mark.parametrize("config", [None, MementoConfig(mask_delimiters=False)], ids=["stage1", "stage2"])
def test_packed_forward_equals_each_conversation_alone(attention, config):
    examples = _examples(4, seed=5)
    limit = sum(len(e.input_ids) for e in examples[:2]) + 5
    rows = pack_examples(examples, limit)
    assert any(len(row.segment_lengths) > 1 for row in rows)
    model = tiny_model("qwen3", "eager" if attention == "eager" else "sdpa")
    if attention == "block-sparse":
        model.set_attn_implementation(sparse_attention.register())
    packing = MementoCollator(SPECIAL_IDS, config, pad_token_id=0, packed=True)
    # alone, stage 1 is the plain forward (2-D padding mask), except that block-sparse attention takes no 2-D mask
    single = MementoCollator(SPECIAL_IDS, config, pad_token_id=0, packed=attention == "block-sparse")

    def logits(features, collator):
        batch = collator(features)
        hidden_from = batch.pop("hidden_from", None)
        if hidden_from is not None:
            batch["attention_mask"] = memento_attention_mask(model, hidden_from)
        with torch.no_grad():
            return model(**{k: v for k, v in batch.items() if k != "labels"}).logits

    packed = logits(ExampleDataset(rows), packing)  # all rows in one padded batch
    alone = {e.name: logits(ExampleDataset([e]), single)[0] for e in examples}
    for index, row in enumerate(rows):
        offset = 0
        for name, size in zip(row.names, row.segment_lengths, strict=True):
            difference = (packed[index, offset : offset + size] - alone[name][:size]).abs().max()
            assert difference < TOLERANCE, (name, float(difference))
            offset += size
