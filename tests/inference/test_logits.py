"""`MaxBlockTokensProcessor` asks the tracker where the open block is and how long it has grown."""

from __future__ import annotations

import pytest
import torch

from memento.attention import BlockTracker
from memento.config import MementoConfig
from memento.inference import MaxBlockTokensProcessor
from tests.block_cap_cases import CASES, spell
from tests.models import BE, SPECIAL_IDS, USER, VOCAB


def tracker_says(ids: list[int], require: bool, cap: int) -> bool:
    tracker = BlockTracker(SPECIAL_IDS, MementoConfig(mask_delimiters=False, require_assistant_section=require))
    tracker.feed_many(ids)
    return tracker.in_block and tracker.open_block_tokens >= cap


@pytest.mark.parametrize("require", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_processor_agrees_with_the_tracker_after_every_prefix(name, require):
    ids = spell(CASES[name], SPECIAL_IDS, text=5, user=USER)
    for cap in (1, 2, 3):
        processor = MaxBlockTokensProcessor(SPECIAL_IDS, cap, require_assistant_section=require)
        for length in range(1, len(ids) + 1):
            scores = torch.zeros(1, VOCAB)
            forced = processor(torch.tensor([ids[:length]]), scores)
            expected = tracker_says(ids[:length], require, cap)
            assert (int(forced[0].argmax()) == BE and forced[0].min() < 0) == expected, (cap, length)


def test_rows_in_any_order_and_batched_match_fresh_trackers():
    rows = [spell(CASES[name], SPECIAL_IDS, text=5, user=USER) for name in sorted(CASES)]
    processor = MaxBlockTokensProcessor(SPECIAL_IDS, 2)
    for length in range(1, max(map(len, rows)) + 1):
        # one row at a time, in reverse order (as a caller scoring rows separately would) ...
        for ids in reversed(rows):
            expected = tracker_says(ids[:length], True, 2)
            forced = processor(torch.tensor([ids[:length]]), torch.zeros(1, VOCAB))
            assert bool(forced[0].min() < 0) == expected
    # ... and a padded batch the way model.generate() passes it (equal lengths)
    width = min(map(len, rows))
    batch = torch.tensor([ids[:width] for ids in rows])
    forced = processor(batch, torch.zeros(len(rows), VOCAB))
    assert [bool(row.min() < 0) for row in forced] == [tracker_says(ids[:width], True, 2) for ids in rows]


def test_from_config_uses_the_assistant_section_rule():
    ids = spell(CASES["block start in the prompt"], SPECIAL_IDS, text=5, user=USER)[:5]
    config = MementoConfig(mask_delimiters=False, max_block_tokens=2)
    strict = MaxBlockTokensProcessor.from_config(SPECIAL_IDS, config)
    loose = MaxBlockTokensProcessor.from_config(SPECIAL_IDS, config.replace(require_assistant_section=False))
    assert strict.open_block_tokens(ids) is None  # the block start is in the user's turn
    assert loose.open_block_tokens(ids) == 2
