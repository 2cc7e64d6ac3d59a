"""Multi-turn chats: every assistant turn's blocks are evicted like the first turn's.

Held against `tests.authors_rule`, an independent rewrite of the authors' published tracker,
through all four views of the rule: `visibility_mask`, `key_hidden_from`, `BlockTracker` and
`memento.kv.simulate`.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memento.attention import BlockTracker, key_hidden_from, visibility_mask
from memento.config import MementoConfig
from memento.format import SpecialIds
from memento.kv import KVGeometry, simulate
from tests.authors_rule import authors_hidden_from, hidden_from_to_mask_rows
from tests.models import ASSISTANT, BE, BS, END_THINK, IM_END, IM_START, SE, SPECIAL_IDS, SS, THINK, USER

PLAIN = SpecialIds(BS, BE, SS, SE, think_start=THINK, think_end=END_THINK)
GEOMETRY = KVGeometry(num_layers=1, num_kv_heads=1, head_dim=2, bytes_per_element=2)


def assistant_turn(blocks: list[tuple[int, int]], answer: int = 2) -> list[int]:
    """``<think>`` + blocks of (reasoning tokens, memento tokens) + ``</think>`` + answer tokens."""
    turn = [THINK]
    for reasoning, memento in blocks:
        turn += [BS, *[5] * reasoning, BE, SS, *[6] * memento, SE]
    return [*turn, END_THINK, *([7] * answer)]


def chat(turns: list[list[tuple[int, int]]]) -> list[int]:
    """A ChatML conversation: a user turn, then an assistant turn of the given blocks, repeated."""
    tokens: list[int] = []
    for blocks in turns:
        tokens += [IM_START, USER, 3, 4, IM_END, IM_START, ASSISTANT, *assistant_turn(blocks), IM_END]
    return tokens


THREE_TURNS = chat([[(3, 1), (2, 2)], [(4, 1), (1, 1), (2, 1)], [(2, 2)]])
BARE_TWO_TURNS = assistant_turn([(3, 1), (2, 1)]) + assistant_turn([(2, 1), (3, 2)])

CONFIGS = [
    MementoConfig(
        keep_last_n_blocks=keep,
        mask_delimiters=delimiters,
        keep_last_block_for_answer=for_answer,
        require_assistant_section=require,
    )
    for keep, delimiters, for_answer, require in itertools.product(
        (0, 1, 2, -1), (False, True), (False, True), (True, False)
    )
]


def authors(tokens: list[int], config: MementoConfig, special_ids: SpecialIds) -> list[int]:
    return authors_hidden_from(
        tokens,
        block_start=BS,
        block_end=BE,
        summary_start=SS,
        summary_end=SE,
        im_start=special_ids.im_start,
        assistant=special_ids.assistant_header[-1] if special_ids.assistant_header else None,
        keep_last_n_blocks=config.keep_last_n_blocks,
        mask_delimiters=bool(config.mask_delimiters),
        require_assistant_section=config.require_assistant_section,
        keep_last_block_for_answer=config.keep_last_block_for_answer,
        compact_on_summary_end=config.compact_on_summary_end,
    )


def check_all_views(tokens: list[int], config: MementoConfig, special_ids: SpecialIds) -> None:
    expected_hidden = authors(tokens, config, special_ids)
    expected_rows = hidden_from_to_mask_rows(expected_hidden)
    mask = visibility_mask(tokens, special_ids, config)
    assert [mask[q].nonzero().flatten().tolist() for q in range(len(tokens))] == expected_rows
    assert key_hidden_from(tokens, special_ids, config).tolist() == expected_hidden
    tracker = BlockTracker(special_ids, config)
    live: set[int] = set()
    for position, token in enumerate(tokens):
        step = tracker.feed(token)
        live.add(position)
        assert sorted(live) == expected_rows[position], f"tracker at position {position}"
        for span in step.evicted:
            live -= set(span.positions())
    report = simulate(tokens, special_ids, GEOMETRY, config, prompt_length=0)
    # the cache after each step holds exactly what the next token may see (minus that token)
    assert report.occupancy[:-1] == [len(row) - 1 for row in expected_rows[1:]]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_every_chatml_turn_is_evicted_like_the_first(config):
    check_all_views(THREE_TURNS, config, SPECIAL_IDS)


@pytest.mark.parametrize("config", [c for c in CONFIGS if not c.require_assistant_section], ids=str)
def test_turns_without_chatml_keep_being_tracked_after_think_end(config):
    check_all_views(BARE_TWO_TURNS, config, PLAIN)


def test_second_turn_blocks_are_hidden_concretely():
    config = MementoConfig(mask_delimiters=False)
    for tokens, special_ids in ((THREE_TURNS, SPECIAL_IDS), (BARE_TWO_TURNS, PLAIN)):
        for require in (True, False):
            chosen = config.replace(require_assistant_section=require)
            mask = visibility_mask(tokens, special_ids, chosen)
            starts = [i for i, t in enumerate(tokens) if t == BS]
            ends = [i for i, t in enumerate(tokens) if t == BE]
            last = len(tokens) - 1
            for start, end in zip(starts, ends, strict=True):
                assert not mask[last, start + 1 : end].any(), f"block at {start} still visible at the end"
                assert mask[last, start] and mask[last, end]


@st.composite
def conversations(draw) -> tuple[list[int], bool]:
    """Well-formed chats: 1-3 turns of 0-3 blocks each; ChatML or bare assistant turns."""
    chatml = draw(st.booleans())
    blocks = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), max_size=3)
    turns = draw(st.lists(blocks, min_size=1, max_size=3))
    if chatml:
        return chat(turns), True
    return [token for turn in turns for token in assistant_turn(turn, answer=1)], False


@settings(max_examples=120, deadline=None)
@given(conversation=conversations(), config=st.sampled_from(CONFIGS))
def test_random_conversations_match_the_authors(conversation, config):
    tokens, chatml = conversation
    if not chatml and config.require_assistant_section:
        config = config.replace(require_assistant_section=False)  # see test_config_parity: header-less prompts
    check_all_views(tokens, config, SPECIAL_IDS if chatml else PLAIN)


def test_compact_on_summary_end_false_never_evicts_like_the_authors():
    config = MementoConfig(mask_delimiters=False, compact_on_summary_end=False)
    check_all_views(THREE_TURNS, config, SPECIAL_IDS)
    assert torch.equal(
        visibility_mask(THREE_TURNS, SPECIAL_IDS, config), torch.ones(len(THREE_TURNS), len(THREE_TURNS)).bool().tril()
    )
