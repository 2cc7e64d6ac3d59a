"""An independent statement of the memento attention rule, over plain token lists.

Written from DESIGN.md's text alone ("Memento attention" and "Options"), sharing no code with
`memento.attention`: the property tests hold `visibility_mask` and `BlockTracker` (which share
one parser) against it, so a bug in that parser cannot pass both. Deliberately naive: one pass
to find the blocks, one to decide each (query, key) pair.

Covered: keep_last_n_blocks, mask_delimiters, require_assistant_section,
keep_last_block_for_answer, restart_mode, enable, compact_on_summary_end. Sequences are single-turn prefixes of the
format (prompt, blocks with mementos, optionally ``</think>`` and an answer without markers):
what a ``</think>`` does to later blocks (multi-turn) is being redefined and is not stated here.
"""

from __future__ import annotations

from dataclasses import dataclass

from memento.config import MementoConfig
from memento.format import SpecialIds


@dataclass
class Block:
    """Positions of one block's markers; None where the sequence has not reached them."""

    start: int
    end: int | None = None
    summary_start: int | None = None
    summary_end: int | None = None


def assistant_start(tokens: list[int], ids: SpecialIds) -> int:
    """Where the assistant's turn begins: right after the last assistant header (0 without one)."""
    header = list(ids.assistant_header or ())
    found = 0
    for i in range(len(tokens) - len(header) + 1):
        if header and tokens[i : i + len(header)] == header:
            found = i + len(header)
    return found


def find_blocks(tokens: list[int], ids: SpecialIds, config: MementoConfig) -> list[Block]:
    """The blocks of a well-formed sequence, markers in the prompt ignored when the option says so."""
    first = assistant_start(tokens, ids) if config.require_assistant_section else 0
    blocks: list[Block] = []
    for position in range(first, len(tokens)):
        token = tokens[position]
        if token == ids.block_start:
            blocks.append(Block(position))
        elif token == ids.block_end:
            blocks[-1].end = position
        elif token == ids.summary_start:
            blocks[-1].summary_start = position
        elif token == ids.summary_end:
            blocks[-1].summary_end = position
    return blocks


def first_blind_query(block: Block, blocks: list[Block], config: MementoConfig) -> int | None:
    """The first query position that may not see this block's masked range (None: never).

    Block j is hidden from every token after the ``<|summary_end|>`` of block j+N; with
    keep_last_block_for_answer, also not before the next ``<|block_start|>`` has been written
    (and never if no block follows). In restart_mode the memento is recomputed without its block.
    """
    completed = [b for b in blocks if b.summary_end is not None]
    if block not in completed:
        return None
    trigger = completed.index(block) + config.keep_last_n_blocks
    if trigger >= len(completed):
        return None
    after = completed[trigger].summary_end
    if config.keep_last_block_for_answer:
        later_starts = [b.start for b in blocks if b.start > block.summary_end]
        if not later_starts:
            return None
        after = max(after, later_starts[0])
    if config.restart_mode:
        return block.summary_start
    return after + 1


def masked_keys(block: Block, config: MementoConfig) -> range:
    """Strictly between the delimiters; delimiters included with mask_delimiters (and in restart_mode)."""
    assert block.end is not None
    if config.mask_delimiters or config.restart_mode:
        return range(block.start, block.end + 1)
    return range(block.start + 1, block.end)


def reference_mask(tokens: list[int], ids: SpecialIds, config: MementoConfig) -> list[list[bool]]:
    """[L][L]: may query q attend key k. Plain causal when disabled, keep_last_n_blocks = -1, or
    compact_on_summary_end = False (the summary end is the only eviction trigger, as in the authors' engine)."""
    length = len(tokens)
    allowed = [[k <= q for k in range(length)] for q in range(length)]
    if not config.enable or config.keep_last_n_blocks < 0 or not config.compact_on_summary_end:
        return allowed
    blocks = find_blocks(tokens, ids, config)
    for block in blocks:
        blind_from = first_blind_query(block, blocks, config)
        if blind_from is None:
            continue
        for q in range(blind_from, length):
            for k in masked_keys(block, config):
                allowed[q][k] = False
    return allowed
