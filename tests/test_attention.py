"""The one rule: hand-checked cases, and the incremental tracker held against `visibility_mask`."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memento.attention import BlockTracker, analyze, find_assistant_start, visibility_mask
from memento.config import MementoConfig
from memento.format import SpecialIds, TokenRole
from tests.models import ASSISTANT, BE, BS, END_THINK, IM_END, IM_START, SE, SPECIAL_IDS, SS, THINK, USER

# The tests' toy vocabulary (tests/models.py); text ids 0-9 are used here.
IDS = SPECIAL_IDS
PLAIN = SpecialIds(BS, BE, SS, SE)


def cfg(**options) -> MementoConfig:
    return MementoConfig(**{"mask_delimiters": False, **options})


def visible(mask: torch.Tensor, query: int) -> list[int]:
    return mask[query].nonzero().flatten().tolist()


#            0  1   2  3  4   5  6  7   8   9 10  11  12 13  14  15
SEQUENCE = [1, BS, 2, 3, BE, SS, 4, SE, BS, 5, BE, SS, 6, SE, END_THINK, 7]


def test_roles_and_blocks():
    layout = analyze(SEQUENCE, PLAIN, cfg())
    R = TokenRole
    assert layout.roles == [
        R.OTHER,
        R.BLOCK_DELIMITER,
        R.BLOCK,
        R.BLOCK,
        R.BLOCK_DELIMITER,
        R.SUMMARY_DELIMITER,
        R.SUMMARY,
        R.SUMMARY_DELIMITER,
        R.BLOCK_DELIMITER,
        R.BLOCK,
        R.BLOCK_DELIMITER,
        R.SUMMARY_DELIMITER,
        R.SUMMARY,
        R.SUMMARY_DELIMITER,
        R.OTHER,
        R.OTHER,
    ]
    assert layout.block_ids == [-1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -1, -1]
    first, second = layout.blocks
    assert (first.start, first.end, first.summary_start, first.summary_end) == (1, 4, 5, 7)
    assert first.hidden_after == 7 and second.hidden_after == 13


def test_keep_last_zero_without_delimiters():
    mask = visibility_mask(SEQUENCE, PLAIN, cfg())
    assert visible(mask, 7) == list(range(8))  # <|summary_end|> still sees its block
    assert visible(mask, 8) == [0, 1, 4, 5, 6, 7, 8]  # block 0's content gone, delimiters stay
    assert visible(mask, 15) == [0, 1, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]


def test_mask_delimiters_hides_them_too():
    mask = visibility_mask(SEQUENCE, PLAIN, cfg(mask_delimiters=True))
    assert visible(mask, 8) == [0, 5, 6, 7, 8]


def test_keep_last_one_and_never():
    mask = visibility_mask(SEQUENCE, PLAIN, cfg(keep_last_n_blocks=1))
    assert visible(mask, 13) == list(range(14))  # block 0 still visible until block 1's memento closes
    assert visible(mask, 14) == [0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    assert torch.equal(visibility_mask(SEQUENCE, PLAIN, cfg(keep_last_n_blocks=-1)), causal)
    assert torch.equal(visibility_mask(SEQUENCE, PLAIN, MementoConfig.disabled()), causal)


def test_keep_last_block_for_answer_defers_to_next_block_start():
    mask = visibility_mask(SEQUENCE, PLAIN, cfg(keep_last_block_for_answer=True))
    assert 2 in visible(mask, 8)  # block 0 still seen by the next <|block_start|> ...
    assert 2 not in visible(mask, 9)  # ... and hidden after it
    assert 9 in visible(mask, 15)  # the last block is kept for the answer


def test_restart_mode_memento_rows_are_blind_to_their_block():
    mask = visibility_mask(SEQUENCE, PLAIN, cfg(restart_mode=True))
    assert visible(mask, 5) == [0, 5]  # memento recomputed without block 0 and its delimiters
    assert visible(mask, 8) == [0, 5, 6, 7, 8]
    tracker = BlockTracker(PLAIN, cfg(restart_mode=True))
    steps = tracker.feed_many(SEQUENCE)
    assert [(s.start, s.stop) for s in steps[7].evicted] == [(1, 5)]
    assert steps[7].recompute == range(5, 8)


def test_prompt_special_tokens_are_ignored_with_require_assistant_section():
    prompt = [IM_START, USER, BS, 1, BE, SS, 2, SE, IM_END, IM_START, ASSISTANT]
    sequence = prompt + SEQUENCE
    assert find_assistant_start(sequence, IDS) == len(prompt)
    layout = analyze(sequence, IDS, cfg())
    assert layout.roles[: len(prompt)] == [TokenRole.PROMPT] * len(prompt)
    assert len(layout.blocks) == 2 and layout.blocks[0].start == len(prompt) + 1
    honoured = analyze(sequence, IDS, cfg(require_assistant_section=False))
    assert len(honoured.blocks) == 3
    overridden = analyze(sequence, IDS, cfg(), assistant_start=0)
    assert len(overridden.blocks) == 3
    # No ChatML at all: the whole sequence is the assistant's.
    assert len(analyze(SEQUENCE, IDS, cfg()).blocks) == 2


def test_tolerates_malformed_streams():
    # stray summary markers outside blocks, a nested block_start, a block with no memento
    sequence = [SS, 1, SE, BS, 2, BS, 3, BE, BS, 4, BE, SS, 5, SE, 6]
    layout = analyze(sequence, PLAIN, cfg())
    assert [(b.start, b.end, b.summary_end) for b in layout.blocks] == [(3, 7, None), (8, 10, 13)]
    mask = visibility_mask(sequence, PLAIN, cfg())
    assert visible(mask, 14) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14]


def test_tracker_open_block_length():
    tracker = BlockTracker(PLAIN, cfg())
    tracker.feed_many([1, BS, 2, 3, 4])
    assert tracker.in_block and tracker.open_block_tokens == 3
    tracker.feed(BE)
    assert not tracker.in_block and tracker.open_block_tokens == 0


def test_tensor_input():
    assert torch.equal(visibility_mask(torch.tensor([SEQUENCE]), PLAIN, cfg()), visibility_mask(SEQUENCE, PLAIN, cfg()))


# ---------------------------------------------------------------------------------------------
# Property tests: the tracker's live set equals the mask row at every step.


@st.composite
def memento_sequences(draw) -> list[int]:
    """Well-formed memento sequences (optionally with a ChatML prompt holding markers), then
    truncated anywhere; some get random marker noise."""
    text = st.lists(st.integers(0, 9), max_size=4)
    sequence: list[int] = []
    if draw(st.booleans()):
        noise = draw(st.lists(st.sampled_from([1, 2, BS, BE, SS, SE]), max_size=6))
        sequence += [IM_START, USER, *noise, IM_END, IM_START, ASSISTANT]
    if draw(st.booleans()):
        sequence.append(THINK)
    for _ in range(draw(st.integers(0, 5))):
        sequence += [BS, *draw(text), BE, *draw(st.lists(st.just(0), max_size=1)), SS, *draw(text), SE]
        sequence += draw(st.lists(st.integers(0, 9), max_size=1))
    if draw(st.booleans()):
        sequence += [END_THINK, *draw(text)]
        if draw(st.booleans()):
            sequence += [BS, 1, BE, SS, 2, SE]  # a block after </think> is tracked too
    if draw(st.booleans()) and sequence:
        sequence = sequence[: draw(st.integers(0, len(sequence)))]
    if draw(st.integers(0, 4)) == 0:
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(sequence)))
            sequence.insert(at, draw(st.sampled_from([BS, BE, SS, SE, END_THINK, IM_START])))
    return sequence


ALL_CONFIGS = (
    [
        MementoConfig(
            keep_last_n_blocks=keep,
            mask_delimiters=delimiters,
            keep_last_block_for_answer=for_answer,
            require_assistant_section=require,
        )
        for keep, delimiters, for_answer, require in itertools.product(
            (-1, 0, 1, 2), (False, True), (False, True), (False, True)
        )
    ]
    + [
        MementoConfig(mask_delimiters=d, restart_mode=True, require_assistant_section=r)
        for d, r in itertools.product((False, True), repeat=2)
    ]
    + [MementoConfig.disabled(), MementoConfig(mask_delimiters=False, compact_on_summary_end=False)]
)


def _replay_against_mask(sequence: list[int], special_ids: SpecialIds, config: MementoConfig) -> None:
    mask = visibility_mask(sequence, special_ids, config)
    layout = analyze(sequence, special_ids, config)
    memento_rows = {q: b for b in layout.blocks for q in b.summary_range if b.hidden_after is not None}
    tracker = BlockTracker(special_ids, config)
    live: set[int] = set()
    for position, token in enumerate(sequence):
        step = tracker.feed(token)
        assert step.position == position
        assert step.role == layout.roles[position] and step.block_index == layout.block_ids[position]
        live.add(position)
        expected = set(visible(mask, position))
        if config.restart_mode and position in memento_rows:
            # generation writes the memento while its block is visible; the mask row is the recomputed stream
            expected |= set(memento_rows[position].masked_range(config))
        assert live == expected, f"position {position}"
        for span in step.evicted:
            assert set(span.positions()) <= live
            live -= set(span.positions())
        if config.restart_mode and step.evicted:
            assert step.recompute == layout.blocks[step.evicted[0].block_index].summary_range
    evicted_blocks = {span.block_index for span in tracker.evicted_spans}
    assert evicted_blocks == {b.index for b in layout.blocks if b.hidden_after is not None and b.masked_range(config)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=memento_sequences(), config=st.sampled_from(ALL_CONFIGS), chatml=st.booleans())
def test_tracker_matches_visibility_mask(sequence, config, chatml):
    _replay_against_mask(sequence, IDS if chatml else PLAIN, config)


@settings(max_examples=100, deadline=None)
@given(
    sequence=st.lists(st.sampled_from([0, 1, BS, BE, SS, SE, THINK, END_THINK, IM_START, ASSISTANT]), max_size=40),
    config=st.sampled_from(ALL_CONFIGS),
)
def test_tracker_matches_visibility_mask_on_arbitrary_streams(sequence, config):
    _replay_against_mask(sequence, IDS, config)


@pytest.mark.parametrize("config", ALL_CONFIGS[:4], ids=str)
def test_mask_is_causal_and_keeps_diagonal(config):
    mask = visibility_mask(SEQUENCE * 3, PLAIN, config)
    assert not mask.triu(1).any() and mask.diagonal().all()
