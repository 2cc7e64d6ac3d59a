"""`visibility_mask` and `BlockTracker` against the independent reference in tests/reference_rule.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memento.attention import BlockTracker, visibility_mask
from memento.config import MementoConfig
from tests.models import ASSISTANT, BE, BS, END_THINK, IM_END, IM_START, SE, SPECIAL_IDS, SS, THINK, USER
from tests.reference_rule import find_blocks, reference_mask

text = st.lists(st.integers(0, 49), max_size=6)


@st.composite
def sequences(draw: st.DrawFn, stray_markers: bool) -> list[int]:
    """A single-turn prefix of the format: prompt (maybe holding markers), blocks, maybe an answer."""
    tokens: list[int] = []
    if draw(st.booleans()):  # a ChatML prompt; with require_assistant_section its markers are text
        stray = draw(st.lists(st.sampled_from([BS, BE, SS, SE, 7, 8] if stray_markers else [7, 8]), max_size=4))
        tokens += [IM_START, USER, *draw(text), *stray, IM_END, IM_START, ASSISTANT]
    prompt = len(tokens)
    tokens += [THINK] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 6))):
        tokens += [BS, *draw(text), BE]
        tokens += draw(st.lists(st.integers(0, 49), max_size=1))  # e.g. a newline between the two
        tokens += [SS, *draw(st.lists(st.integers(0, 49), max_size=4)), SE]
    if draw(st.booleans()):
        tokens += [END_THINK, *draw(text)]
    cut = draw(st.integers(prompt + 1, max(prompt + 1, len(tokens))))  # generation may stop anywhere
    return tokens[:cut] or [1]


@st.composite
def configs(draw: st.DrawFn) -> MementoConfig:
    restart = draw(st.booleans())
    return MementoConfig(
        enable=draw(st.booleans()) or restart,
        keep_last_n_blocks=0 if restart else draw(st.integers(-1, 3)),
        mask_delimiters=draw(st.booleans()),
        compact_on_summary_end=draw(st.booleans()),
        require_assistant_section=draw(st.booleans()),
        restart_mode=restart,
        keep_last_block_for_answer=not restart and draw(st.booleans()),
    )


def _tracker_mask(tokens: list[int], config: MementoConfig) -> list[list[bool]]:
    """What the tracker lets each query see: keys at or before it, minus spans evicted by earlier tokens."""
    tracker = BlockTracker(SPECIAL_IDS, config)
    gone: set[int] = set()
    rows = []
    for q, token in enumerate(tokens):
        step = tracker.feed(token)
        rows.append([k <= q and k not in gone for k in range(len(tokens))])
        gone.update(k for span in step.evicted for k in range(span.start, span.stop))
    return rows


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), data=st.data())
def test_mask_and_tracker_follow_the_reference(config, data):
    tokens = data.draw(sequences(stray_markers=config.require_assistant_section), label="tokens")
    expected = reference_mask(tokens, SPECIAL_IDS, config)
    assert visibility_mask(tokens, SPECIAL_IDS, config).tolist() == expected
    tracked = _tracker_mask(tokens, config)
    # restart_mode: a memento's rows are recomputed without its block; the tracker's first pass saw it
    recomputed = {
        q
        for block in find_blocks(tokens, SPECIAL_IDS, config)
        if config.restart_mode and block.summary_end is not None
        for q in range(block.summary_start, block.summary_end + 1)
    }
    for q, row in enumerate(tracked):
        if q not in recomputed:
            assert row == expected[q], f"query {q}"


@pytest.mark.parametrize("mask_delimiters", [False, True])
def test_the_reference_hides_what_the_design_text_says(mask_delimiters):
    """The reference itself, on a hand-written case: N=0 hides block 0 right after its memento."""
    prompt = [IM_START, USER, 5, BS, 6, BE, IM_END, IM_START, ASSISTANT]  # markers in the prompt are text
    tokens = [*prompt, BS, 1, 2, BE, SS, 3, SE, 4]
    config = MementoConfig(mask_delimiters=mask_delimiters)
    mask = torch.tensor(reference_mask(tokens, SPECIAL_IDS, config))
    block_start, summary_end = len(prompt), len(prompt) + 6
    assert mask[summary_end].sum() == summary_end + 1  # the <|summary_end|> token still sees its block
    hidden = {block_start + 1, block_start + 2} | ({block_start, block_start + 3} if mask_delimiters else set())
    assert {k for k in range(len(tokens)) if not mask[-1, k]} == hidden
    assert mask[-1, 3] and mask[-1, 5]  # the prompt's block stays visible
    keep_one = reference_mask(tokens, SPECIAL_IDS, config.replace(keep_last_n_blocks=1))
    assert all(keep_one[-1])  # N=1: the only completed block stays visible
