"""Where our rule differs from the authors' engine on purpose (docs/config_parity.md), shown on tokens.

Each test runs the same tokens through `tests.authors_rule` (their published behaviour) and
through ours, and asserts the documented difference, so that a change on either side is seen.
"""

from __future__ import annotations

from memento.attention import BlockTracker, key_hidden_from
from memento.config import MementoConfig
from tests.authors_rule import authors_block_cap_count, authors_hidden_from
from tests.models import ASSISTANT, BE, BS, END_THINK, IM_END, IM_START, SE, SPECIAL_IDS, SS, THINK, USER

CONFIG = MementoConfig(mask_delimiters=False)
MARKERS = {"block_start": BS, "block_end": BE, "summary_start": SS, "summary_end": SE}


def theirs(tokens: list[int]) -> list[int]:
    return authors_hidden_from(tokens, **MARKERS, im_start=IM_START, assistant=ASSISTANT)


def ours(tokens: list[int]) -> list[int]:
    return key_hidden_from(tokens, SPECIAL_IDS, CONFIG).tolist()


BLOCKS = [THINK, BS, 1, 2, BE, SS, 3, SE, BS, 4, BE, SS, 5, SE, END_THINK, 6]


def test_a_prompt_without_chatml_header_is_all_assistant_here_and_all_prompt_there():
    # require_assistant_section with no <|im_start|>assistant: theirs never enters the assistant
    # section and evicts nothing; ours takes header-less text as the assistant's and evicts.
    assert theirs(BLOCKS) == [len(BLOCKS)] * len(BLOCKS)
    hidden = ours(BLOCKS)
    assert hidden[2:4] == [8, 8] and hidden[9] == 14
    # with the header both agree
    chat = [IM_START, ASSISTANT, *BLOCKS]
    assert theirs(chat) == ours(chat)


def test_markers_in_a_later_user_turn_are_prompt_here_and_blocks_there():
    # theirs enters the assistant section at the first header and never leaves it
    first = [IM_START, USER, 1, IM_END, IM_START, ASSISTANT, *BLOCKS, IM_END]
    second_user = [IM_START, USER, BS, 7, BE, SS, 8, SE, IM_END]
    tokens = first + second_user + [IM_START, ASSISTANT, 9]
    user_block = len(first) + 3  # the 7 inside the user's <|block_start|> ... <|block_end|>
    assert theirs(tokens)[user_block] < len(tokens)  # hidden: treated as a block
    assert ours(tokens)[user_block] == len(tokens)  # prompt text: never hidden
    assert theirs(tokens)[: len(first)] == ours(tokens)[: len(first)]


def test_max_block_tokens_counts_differ_only_on_malformed_blocks_and_prompt_blocks():
    def our_count(tokens: list[int]) -> int | None:
        tracker = BlockTracker(SPECIAL_IDS, CONFIG)
        tracker.feed_many(tokens)
        return tracker.open_block_tokens if tracker.in_block else None

    def their_count(tokens: list[int]) -> int | None:
        return authors_block_cap_count(tokens, block_start=BS, block_end=BE, memento_ids={BS, BE, SS, SE})

    header = [IM_START, ASSISTANT]
    well_formed = [*header, THINK, BS, 1, 2, BE, SS, 3, SE, BS, 4, 5, 6]
    for length in range(len(well_formed) + 1):
        assert our_count(well_formed[:length]) == their_count(well_formed[:length])
    nested = [*header, BS, 1, 2, BS, 3]
    assert (our_count(nested), their_count(nested)) == (4, 1)  # ours: one block since the first start
    markers_inside = [*header, BS, 1, SS, 2, SE, 3]
    assert (our_count(markers_inside), their_count(markers_inside)) == (5, 3)  # ours counts the markers
    prompt_block = [IM_START, USER, BS, 1, 2, IM_END, *header, 3]
    assert (our_count(prompt_block), their_count(prompt_block)) == (None, 6)  # ours: the user's text
