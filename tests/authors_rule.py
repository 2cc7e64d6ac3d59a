"""An independent reference of the authors' published block-masking behaviour, over token lists.

Written from the behaviour of microsoft/memento's vLLM overlay (`BlockMaskingProcessor.process_token`
and `BlockMaskingState`), every token handled as if generated one at a time. It shares no code with
`memento.attention`: it is what the rule is checked against.

Their behaviour, as published:

* assistant section (``require_assistant_section``): entered at the first ``assistant`` token that
  comes within two positions after an ``<|im_start|>``, never left; the ``assistant`` token itself
  and everything before it is skipped. Without the option every token is processed.
* ``<|block_start|>`` opens a block (a stack: a second one nests); ``<|block_end|>`` closes the
  innermost open block; ``<|summary_start|>`` attaches to the most recently opened block that is
  closed and has no summary yet; ``<|summary_end|>`` completes it (a pending compaction).
* ``</think>`` is not special: tracking goes on (later turns are tracked like the first).
* at a ``<|summary_end|>`` (with ``compact_on_summary_end``), the oldest pending block is compacted
  when more than N are pending; with ``keep_last_block_for_answer`` (and N = 0) that waits for the
  next ``<|block_start|>`` instead. One compaction per token at most.
* a compacted block's content (plus its delimiters with ``mask_delimiters``) is invisible to every
  token after the one that triggered the compaction.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Block:
    start: int
    end: int | None = None
    summary_start: int | None = None
    summary_end: int | None = None


def authors_hidden_from(
    tokens: list[int],
    *,
    block_start: int,
    block_end: int,
    summary_start: int,
    summary_end: int,
    im_start: int | None,
    assistant: int | None,
    keep_last_n_blocks: int = 0,
    mask_delimiters: bool = False,
    require_assistant_section: bool = True,
    keep_last_block_for_answer: bool = False,
    compact_on_summary_end: bool = True,
) -> list[int]:
    """For each key position, the first query position that may not see it (len(tokens) if none)."""
    hidden_from = [len(tokens)] * len(tokens)
    if require_assistant_section and (im_start is None or assistant is None):
        require_assistant_section = False  # theirs drops the requirement when the tokens are unknown
    blocks: list[_Block] = []
    open_stack: list[_Block] = []
    pending: list[_Block] = []
    summarising: _Block | None = None
    last_im_start: int | None = None
    assistant_at: int | None = None

    def compact_oldest(at: int) -> None:
        if keep_last_n_blocks < 0 or len(pending) <= keep_last_n_blocks:
            return
        block = pending.pop(0)
        assert block.end is not None
        keys = range(block.start, block.end + 1) if mask_delimiters else range(block.start + 1, block.end)
        for key in keys:
            hidden_from[key] = min(hidden_from[key], at + 1)

    for position, token in enumerate(tokens):
        if token == im_start:
            last_im_start = position
        if (
            require_assistant_section
            and assistant_at is None
            and token == assistant
            and last_im_start is not None
            and position - last_im_start <= 2
        ):
            assistant_at = position
        if require_assistant_section and (assistant_at is None or position <= assistant_at):
            continue
        if token == block_start:
            if keep_last_block_for_answer and keep_last_n_blocks == 0 and pending:
                compact_oldest(position)
            block = _Block(position)
            blocks.append(block)
            open_stack.append(block)
        elif token == block_end:
            if open_stack:
                open_stack.pop().end = position
        elif token == summary_start:
            for block in reversed(blocks):
                if block.end is not None and block.summary_start is None:
                    block.summary_start = position
                    summarising = block
                    break
        elif token == summary_end and summarising is not None:
            summarising.summary_end = position
            pending.append(summarising)
            summarising = None
            if compact_on_summary_end and not (keep_last_block_for_answer and keep_last_n_blocks == 0):
                compact_oldest(position)
    return hidden_from


def hidden_from_to_mask_rows(hidden_from: list[int]) -> list[list[int]]:
    """Row q of the mask: the keys k <= q with q < hidden_from[k]."""
    return [[k for k in range(q + 1) if q < hidden_from[k]] for q in range(len(hidden_from))]


def authors_block_cap_count(
    tokens: list[int], *, block_start: int, block_end: int, memento_ids: set[int]
) -> int | None:
    """The authors' `max_block_tokens` count after `tokens` (`BlockLengthCapLogitsProcessor`); None outside a block.

    Prompt and output alike: a ``<|block_start|>`` (re)starts the count at 0, a ``<|block_end|>``
    ends the block, and inside a block every token but the four memento markers counts.
    """
    count: int | None = None
    for token in tokens:
        if token == block_start:
            count = 0
        elif token == block_end:
            count = None
        elif count is not None and token not in memento_ids:
            count += 1
    return count
